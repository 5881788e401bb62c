"""The out-folder: where a mailbox without ``[mailbox.smtp]`` "sends" its mail.

Each outgoing mail is written as an ``.eml`` file into ``<storage>/outgoing/<mailbox>/``, named
by its sanitised Message-ID, so a first run needs no mail server and an admin (or a cron job
with ``sendmail``) can see and pass on what the daemon would have sent. A file is written to a
temporary name in the same folder, flushed to disk and renamed: a crash never leaves half a
mail under a real name, and writing the same Message-ID again replaces the file (a resend after
a crash is idempotent).
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inbox_daemon.channels.email.compose import compose, to_bytes
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.errors import PermanentDeliveryError, TransientDeliveryError
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import DeliveryReceipt, OutboundMessage

__all__ = ["OutFolder", "eml_name", "outgoing_folder"]

log = get_logger("inbox_daemon.channels.email.outfolder")

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
MAX_NAME = 200


def outgoing_folder(storage: Path, mailbox: str) -> Path:
    """``<storage>/outgoing/<mailbox>``."""
    return storage / "outgoing" / mailbox


def eml_name(message_id: str) -> str:
    """A file name for a Message-ID: ``<a/b@c>`` -> ``a_b@c.eml``; never a path or a dot file."""
    stem = _UNSAFE.sub("_", message_id.strip().strip("<>"))[:MAX_NAME].lstrip(".")
    if not stem:
        raise PermanentDeliveryError("email", f"no usable file name in {message_id!r}")
    return f"{stem}.eml"


def _write_atomically(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".sending-", suffix=".tmp", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        final = folder / name
        tmp.replace(final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


class OutFolder:
    """Delivers one mailbox's mail into its out-folder."""

    name = "email"

    def __init__(
        self,
        mailbox: MailboxSettings,
        storage: Path,
        *,
        daemon_name: str = "inbox-daemon",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.mailbox = mailbox
        self.folder = outgoing_folder(storage, mailbox.name)
        self.daemon_name = daemon_name
        self.clock = clock

    def path_for(self, message_id: str) -> Path:
        return self.folder / eml_name(message_id)

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        now = self.clock()
        smtp = self.mailbox.smtp
        mail = await asyncio.to_thread(  # attachments may be read from files
            compose,
            msg,
            from_address=self.mailbox.address,
            from_name=smtp.from_name if smtp else "",
            reply_to=smtp.reply_to if smtp else None,
            daemon_name=self.daemon_name,
            date=now,
        )
        name = eml_name(msg.message_id)
        try:
            path = await asyncio.to_thread(_write_atomically, self.folder, name, to_bytes(mail))
        except OSError as exc:
            raise TransientDeliveryError(
                "email", f"cannot write {self.folder / name}: {exc.strerror or exc}"
            ) from None
        log.info("mail written to the out-folder", mailbox=self.mailbox.name,
                 message_id=msg.message_id, path=str(path))  # fmt: skip
        return DeliveryReceipt(external_id=msg.message_id, sent_at=now)
