"""Composing outgoing mail: subjects, headers, bodies, references and header injection."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from inbox_daemon.channels.email.compose import compose, reply_subject, to_bytes, trim_references
from inbox_daemon.errors import PermanentDeliveryError
from inbox_daemon.messages import Address, Attachment, ChannelKind, OutboundMessage

MID = "<3f2a9c.cas-000001@support.example.com>"
CUSTOMER_MID = "<CAF123@mail.example.com>"
DATE = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def message(**kw: object) -> OutboundMessage:
    args: dict[str, object] = {
        "channel": ChannelKind.EMAIL,
        "mailbox": "support",
        "message_id": MID,
        "to": (Address("ann@example.com", "Ann Example"),),
        "subject": "Printer on fire",
        "text": "Please restart it.\n",
        "in_reply_to": CUSTOMER_MID,
        "references": ("<root@mail.example.com>", CUSTOMER_MID),
        "case_number": "CAS-000001",
    }
    args.update(kw)
    return OutboundMessage(**args)  # type: ignore[arg-type]


def sent(msg: OutboundMessage, **kw: object) -> tuple[bytes, EmailMessage]:
    """Compose, flatten as it goes over the wire, and parse back with the stdlib."""
    args: dict[str, object] = {"from_address": "support@example.com", "date": DATE}
    args.update(kw)
    raw = to_bytes(compose(msg, **args))  # type: ignore[arg-type]
    # As a mail store would keep it: local line endings.
    parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    return raw, parsed


def header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return [line.split(":", 1)[0] for line in head.split("\r\n") if not line[:1].isspace()]


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Printer", "Re: Printer [CAS-000001]"),
        ("Re: RE: Printer", "Re: Printer [CAS-000001]"),
        ("Re: Printer [CAS-000001]", "Re: Printer [CAS-000001]"),
        ("RE: Re: Printer [CAS-000001]", "Re: Printer [CAS-000001]"),
        ("Printer [cas-000001]", "Re: Printer [cas-000001]"),
        ("Printer CAS-000001 again", "Re: Printer CAS-000001 again"),
        ("AW: Drucker", "Re: Drucker [CAS-000001]"),
        ("Fwd: Printer", "Re: Printer [CAS-000001]"),
        ("FW: AW: SV: Re[2]: Printer", "Re: Printer [CAS-000001]"),
        ("[CAS-000001] Re: Printer", "Re: Printer [CAS-000001]"),
        ("  Printer\r\n  on fire ", "Re: Printer on fire [CAS-000001]"),
        ("Printer [CAS-0000012]", "Re: Printer [CAS-0000012] [CAS-000001]"),
        ("Printer CAS-000002", "Re: Printer CAS-000002 [CAS-000001]"),
        ("Reorder toner", "Re: Reorder toner [CAS-000001]"),
        ("", "Re: [CAS-000001]"),
        ("Re: ", "Re: [CAS-000001]"),
    ],
)
def test_reply_subject(original: str, expected: str) -> None:
    assert reply_subject(original, "CAS-000001") == expected
    assert reply_subject(expected, "CAS-000001") == expected  # stable: never stacks


def test_headers_and_bodies_exactly() -> None:
    raw, parsed = sent(
        message(html="<p>Please <b>restart</b> it.</p>", cc=(Address("bob@example.com"),)),
        from_name="Example Support",
        reply_to="help@example.com",
    )
    assert parsed["From"] == "Example Support <support@example.com>"
    assert parsed["To"] == "Ann Example <ann@example.com>"
    assert parsed["Cc"] == "bob@example.com"
    assert parsed["Reply-To"] == "help@example.com"
    assert parsed["Subject"] == "Re: Printer on fire [CAS-000001]"
    assert parsed["Message-ID"] == MID
    assert parsed["In-Reply-To"] == CUSTOMER_MID
    assert parsed["References"] == f"<root@mail.example.com> {CUSTOMER_MID}"
    assert parsed["Date"].datetime == DATE
    assert parsed["X-Loop"] == "inbox-daemon"
    assert parsed["X-Inbox-Daemon-Case"] == "CAS-000001"
    assert parsed["Auto-Submitted"] is None  # a person wrote it
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert text is not None
    assert html is not None
    assert text.get_content() == "Please restart it.\n"
    assert html.get_content() == "<p>Please <b>restart</b> it.</p>\n"
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only


def test_automatic_message_says_so_and_names_the_daemon() -> None:
    _, parsed = sent(message(automatic=True), daemon_name="inbox-daemon@host1")
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["X-Loop"] == "inbox-daemon@host1"
    assert parsed.get_content_type() == "text/plain"


def test_non_ascii_text_is_7bit_safe() -> None:
    raw, parsed = sent(message(subject="Drucker brennt – schnell!", text="Grüße\n"))
    assert raw.isascii()
    assert parsed["Subject"] == "Re: Drucker brennt – schnell! [CAS-000001]"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "Grüße\n"


def test_references_keep_root_and_last_ten() -> None:
    refs = tuple(f"<r{i}@mail.example.com>" for i in range(30))
    _, parsed = sent(message(references=refs, in_reply_to="<r29@mail.example.com>"))
    ids = str(parsed["References"]).split()
    assert ids == ["<r0@mail.example.com>", *(f"<r{i}@mail.example.com>" for i in range(20, 30))]
    assert trim_references(["<a@x>", "<a@x>", "<b@x>"]) == ["<a@x>", "<b@x>"]


def test_references_end_with_the_parent_even_if_missing() -> None:
    _, parsed = sent(message(references=("<root@x>",), in_reply_to="<parent@x>"))
    assert str(parsed["References"]).split() == ["<root@x>", "<parent@x>"]


def test_long_ids_fold_between_ids_and_are_never_encoded() -> None:
    long_ids = tuple(f"<{'x' * 150}.{i}@mail.example.com>" for i in range(12))
    too_long = "<" + "y" * 950 + "@mail.example.com>"
    raw, parsed = sent(message(references=(*long_ids, too_long), in_reply_to=long_ids[-1]))
    assert b"=?" not in raw  # no RFC 2047 encoded word anywhere in the headers
    assert max(len(line) for line in raw.split(b"\r\n")) < 990
    ids = str(parsed["References"]).split()
    assert ids == [long_ids[0], *long_ids[2:]]  # the root and the last ten; the giant dropped
    assert parsed["In-Reply-To"] == long_ids[-1]


def test_malformed_customer_ids_are_dropped() -> None:
    _, parsed = sent(
        message(
            in_reply_to="<a@x>\r\nBcc: evil@example.net",
            references=("no-brackets@x", "<ok@x>", "<sp ace@x>"),
        )
    )
    assert parsed["In-Reply-To"] is None
    assert parsed["References"] == "<ok@x>"
    assert parsed["Bcc"] is None


@pytest.mark.parametrize(
    "subject",
    [
        "Printer\r\nBcc: evil@example.net",
        "Printer\nBcc: evil@example.net",
        "Printer\rBcc: evil@example.net",
        "Printer\u2028Bcc: evil@example.net",
        "Printer\x00\x0bBcc: evil@example.net",
    ],
)
def test_subject_cannot_inject_headers(subject: str) -> None:
    raw, parsed = sent(message(subject=subject))
    assert parsed["Bcc"] is None
    assert "Bcc" not in header_names(raw)
    assert parsed["Subject"] == "Re: Printer Bcc: evil@example.net [CAS-000001]"


@pytest.mark.parametrize(
    "name",
    [
        "Ann\r\nBcc: evil@example.net",
        "Änn Bcc: <evil@example.net>",
        'Änn "x" <evil@example.net>,',
        "Ann, evil@example.net",
        "Ann: evil@example.net;",
    ],
)
def test_display_names_cannot_add_recipients_or_headers(name: str) -> None:
    raw, parsed = sent(
        message(to=(Address("ann@example.com", name),), cc=(Address("bob@example.com", name),)),
        from_name=name,
    )
    assert "Bcc" not in header_names(raw)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["ann@example.com"]
    assert [a.addr_spec for a in parsed["Cc"].addresses] == ["bob@example.com"]
    assert [a.addr_spec for a in parsed["From"].addresses] == ["support@example.com"]
    assert "evil@example.net" in parsed["To"].addresses[0].display_name


@pytest.mark.parametrize(
    "address",
    [
        "ann@example.com\r\nBcc: evil@example.net",
        "ann@example.com\nBcc: evil@example.net",
        "ann@example.com, evil@example.net",
        "Ann <ann@example.com>",
        "ann@example.com>\r\nRCPT TO:<evil@example.net",
        "",
        "not-an-address",
    ],
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(PermanentDeliveryError, match="not a plain email address"):
        compose(message(to=(Address(address),)), from_address="support@example.com")
    with pytest.raises(PermanentDeliveryError):
        compose(message(), from_address="support@example.com", reply_to=address or "x")


def test_non_ascii_local_part_is_refused() -> None:
    with pytest.raises(PermanentDeliveryError, match="non-ASCII local part"):
        compose(message(to=(Address("jörg@bücher.de"),)), from_address="support@example.com")


def test_international_domain_alone_is_fine() -> None:
    _, parsed = sent(message(to=(Address("joerg@bücher.de"),)))
    assert parsed["To"] == "joerg@xn--bcher-kva.de"


@pytest.mark.parametrize(
    "mid", ["", "no-brackets@x", "<a@x>\r\nBcc: evil@example.net", "<no-at-sign>", "<a b@x>"]
)
def test_our_message_id_must_be_valid(mid: str) -> None:
    with pytest.raises(PermanentDeliveryError, match="Message-ID"):
        compose(message(message_id=mid), from_address="support@example.com")


def test_no_recipient_is_refused() -> None:
    with pytest.raises(PermanentDeliveryError, match="no recipient"):
        compose(message(to=()), from_address="support@example.com")


def test_attachments_from_bytes_and_files(tmp_path: Path) -> None:
    report = tmp_path / "report.pdf"
    report.write_bytes(b"%PDF-1.4 fake")
    _, parsed = sent(
        message(
            html='<p><img src="cid:logo@x"></p>',
            attachments=(
                Attachment("notes\r\nBcc: x.txt", "text/plain", 5, content=b"hello"),
                Attachment("report.pdf", "application/pdf", 13, path=report),
                Attachment("logo.png", "image/png", 4, content=b"\x89PNG", content_id="logo@x",
                           inline=True),
                Attachment("weird.bin", "not a type", 1, content=b"\x00"),
            ),
        )
    )  # fmt: skip
    assert parsed.get_content_type() == "multipart/mixed"
    files = {part.get_filename(): part for part in parsed.iter_attachments()}
    assert set(files) == {"notes Bcc: x.txt", "report.pdf", "weird.bin"}
    assert files["report.pdf"].get_content() == b"%PDF-1.4 fake"
    assert files["notes Bcc: x.txt"].get_content() == "hello"
    assert files["weird.bin"].get_content_type() == "application/octet-stream"
    related = [p for p in parsed.walk() if p.get_content_type() == "multipart/related"]
    assert len(related) == 1
    logo = [p for p in parsed.walk() if p.get_content_type() == "image/png"]
    assert logo[0]["Content-ID"] == "<logo@x>"
    assert parsed.get_body(("plain",)) is not None


def test_missing_attachment_file_is_permanent(tmp_path: Path) -> None:
    gone = Attachment("gone.pdf", "application/pdf", 1, path=tmp_path / "gone.pdf")
    with pytest.raises(PermanentDeliveryError, match=r"gone\.pdf"):
        compose(message(attachments=(gone,)), from_address="support@example.com")


def test_subject_without_case_number_is_left_alone() -> None:
    _, parsed = sent(message(case_number=None, subject="Hello"))
    assert parsed["Subject"] == "Hello"
    assert parsed["X-Inbox-Daemon-Case"] is None
    assert re.fullmatch(r"<[^<>]+>", str(parsed["Message-ID"]))
