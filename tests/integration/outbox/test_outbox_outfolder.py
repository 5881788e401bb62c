"""The out-folder: a mailbox without [mailbox.smtp] writes its mail as .eml files."""

from __future__ import annotations

import email
import os
from email.policy import default as default_policy
from pathlib import Path

import pytest
from outbox_helpers import ALICE, Clock, activity, email_case, mailbox_for

from inbox_daemon.cases.enums import DeliveryState
from inbox_daemon.channels.email.outfolder import OutFolder, eml_name
from inbox_daemon.channels.email.smtp import EmailSender
from inbox_daemon.errors import PermanentDeliveryError, TransientDeliveryError
from inbox_daemon.messages import Address, ChannelKind, OutboundMessage
from inbox_daemon.outbox import Outbox
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import AttachmentRow


async def test_outbox_writes_the_reply_into_the_out_folder(
    db: Database, svc: CaseService, clock: Clock, tmp_path: Path
) -> None:
    case, incoming = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    storage = tmp_path / "storage"
    sender = EmailSender.from_settings([mailbox_for(None)], storage, clock=clock)
    outbox = Outbox(db, {"email": sender}, clock=clock)
    assert await outbox.run_once() == 1

    folder = storage / "outgoing" / "support"
    [path] = list(folder.iterdir())
    assert reply.message_id is not None
    assert path.name == reply.message_id.strip("<>") + ".eml"
    raw = path.read_bytes()
    mail = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=default_policy)
    assert mail["Message-ID"] == reply.message_id
    assert mail["In-Reply-To"] == incoming.message_id
    assert mail["From"] == "support@example.com"
    assert mail["To"] == "Ann Example <ann@example.com>"
    assert mail["Subject"] == "Re: Printer on fire [CAS-000001]"
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.sent_at) == (DeliveryState.SENT.value, clock.now)


def outbound(**kw: object) -> OutboundMessage:
    args: dict[str, object] = {
        "channel": ChannelKind.EMAIL,
        "mailbox": "support",
        "message_id": "<0a1b.cas-000001@support.example.com>",
        "to": (Address("ann@example.com"),),
        "subject": "Printer",
        "text": "first version",
        "case_number": "CAS-000001",
    }
    args.update(kw)
    return OutboundMessage(**args)  # type: ignore[arg-type]


async def test_same_message_id_twice_overwrites(tmp_path: Path) -> None:
    folder = OutFolder(mailbox_for(None), tmp_path)
    await folder.send(outbound())
    await folder.send(outbound(text="second version"))
    files = os.listdir(tmp_path / "outgoing" / "support")
    assert files == ["0a1b.cas-000001@support.example.com.eml"]  # no temporary files left
    body = folder.path_for("<0a1b.cas-000001@support.example.com>").read_bytes()
    assert b"second version" in body
    assert b"first version" not in body


@pytest.mark.parametrize(
    ("message_id", "name"),
    [
        ("<a.b@c.example>", "a.b@c.example.eml"),
        ("<../../etc/passwd@x>", "_.._etc_passwd@x.eml"),
        ("<a/b\\c d@x>", "a_b_c_d@x.eml"),
        ("<.hidden@x>", "hidden@x.eml"),
    ],
)
def test_file_names_stay_inside_the_folder(message_id: str, name: str) -> None:
    assert eml_name(message_id) == name


def test_nothing_usable_in_the_id() -> None:
    with pytest.raises(PermanentDeliveryError):
        eml_name("<>")


async def test_unwritable_folder_is_transient(tmp_path: Path) -> None:
    (tmp_path / "outgoing").write_text("a file where the folder should be")
    with pytest.raises(TransientDeliveryError, match="cannot write"):
        await OutFolder(mailbox_for(None), tmp_path).send(outbound())


async def test_attachments_of_the_activity_go_with_the_mail(
    db: Database, svc: CaseService, clock: Clock, tmp_path: Path
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "The manual is attached.", ALICE)
    files = FileStore(tmp_path / "files")
    sha, size = files.put(b"%PDF-1.4 manual")
    async with db.transaction() as session:
        session.add(
            AttachmentRow(
                activity_id=reply.id,
                sha256=sha,
                size=size,
                filename="manual.pdf",
                content_type="application/pdf",
            )
        )
    storage = tmp_path / "storage"
    sender = EmailSender.from_settings([mailbox_for(None)], storage, clock=clock)
    assert await Outbox(db, {"email": sender}, clock=clock, files=files).run_once() == 1
    [path] = list((storage / "outgoing" / "support").iterdir())
    mail = email.message_from_bytes(path.read_bytes(), policy=default_policy)
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "manual.pdf"
    assert attachment.get_content() == b"%PDF-1.4 manual"
