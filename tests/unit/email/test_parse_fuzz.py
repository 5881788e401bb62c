"""Fuzzing parse_message: whatever the bytes, the only exception is RejectedMessage.

Three kinds of input: arbitrary bytes, header blocks of random names and values, and mutations
(byte flips, inserted MIME/encoding tokens, deletions, truncation) of valid mails built here and,
when the shared corpus is present, of a few small real ones.
"""

from __future__ import annotations

import base64
import os
from email.message import EmailMessage
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inbox_daemon.channels.email.parse import parse_message, strip_quoted_reply
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import InboundMessage

CORPUS = Path(__file__).resolve().parents[3].parent / "shared" / "corpus"
CORPUS_SEEDS = (
    "nodemailer-mailparser/delivery-status.eml",
    "django-helpdesk/utf-nondecodable.eml",
    "sisimai-set-of-emails/maildir/mac/lhost-postfix-01.eml",
    "sisimai-set-of-emails/maildir/bsd/lhost-ezweb-02.eml",
    "spamscope-mail-parser/mail_test_18",
)


def _built_seeds() -> list[bytes]:
    rich = EmailMessage()
    rich["From"] = "=?utf-8?Q?Zo=C3=AB?= <zoe@example.com>"
    rich["To"] = "support@shop.example, other@example.org"
    rich["Subject"] = "Réclamation commande 77"
    rich["Date"] = "Tue, 24 May 2016 13:09:41 +0100"
    rich["References"] = "<a@x> <b@y>"
    rich.set_content("Bonjour,\n\nmon colis est abîmé.\n\n-- \nZoë\n")
    rich.add_alternative("<p>Bonjour, <b>colis</b> abîmé</p>", subtype="html")
    rich.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="facture é.pdf"
    )
    inner = EmailMessage()
    inner["Subject"] = "Original"
    inner.set_content("inner")
    rich.add_attachment(inner)
    plain = (
        b"From: a@example.com\r\nSubject: =?iso-8859-1?Q?Gr=FC=DFe?=\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n\r\ncaf\xe9\r\n"
    )
    dsn = (
        b"From: MAILER-DAEMON@mx.example\r\nSubject: failure\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--B\r\n"
        b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"\r\n--B--\r\n"
    )
    return [rich.as_bytes(), plain, dsn]


def _corpus_seeds() -> list[bytes]:
    return [(CORPUS / name).read_bytes() for name in CORPUS_SEEDS if (CORPUS / name).is_file()]


SEEDS = _built_seeds() + _corpus_seeds()
TOKENS = [
    b"\r",
    b"\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"--",
    b"--B--\r\n",
    b"=?utf-8?B?",
    b"=?x-unknown?Q?=FF=?=",
    b"?=",
    b"\xff\xfe",
    b"\x00",
    b"\x1b$B",
    b'Content-Type: multipart/mixed; boundary="B"\r\n',
    b"Content-Type: message/rfc822\r\n",
    b'Content-Type: text/plain; charset="unicode-1-1-utf-7"\r\n',
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: x-uuencode\r\n",
    b"filename*=utf-8''%E2%9C%94%ZZ.txt",
    b"<![if !supportLists]>",
    b"=\r\n",
    base64.b64encode(b"\x00" * 12),
]

MUTATION = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.sampled_from(TOKENS)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.integers(1, 64)),
)


def _mutate(seed: bytes, mutations: list[tuple[str, int, object]], cut: int | None) -> bytes:
    data = bytearray(seed)
    for kind, position, arg in mutations:
        pos = position % (len(data) + 1)
        if kind == "flip" and data:
            data[min(pos, len(data) - 1)] = int(arg)  # type: ignore[call-overload]
        elif kind == "insert":
            data[pos:pos] = arg  # type: ignore[assignment]
        elif kind == "delete":
            del data[pos : pos + int(arg)]  # type: ignore[call-overload]
    if cut is not None:
        del data[cut % (len(data) + 1) :]
    return bytes(data)


def _check(raw: bytes) -> None:
    try:
        message = parse_message(raw, channel_mailbox="fuzz", external_id="1")
    except RejectedMessage as exc:
        reason = str(exc)
        assert reason.strip(), "a rejection must carry its reason"
        return
    assert isinstance(message, InboundMessage)
    assert message.message_id
    assert message.message_id.startswith("<")
    assert "\x00" not in message.text
    assert "\x00" not in message.subject
    message.text.encode("utf-8")  # no lone surrogates
    message.subject.encode("utf-8")
    for attachment in message.attachments:
        assert attachment.filename
        assert "/" not in attachment.filename
        assert "\\" not in attachment.filename
        assert attachment.size == len(attachment.content or b"")
    strip_quoted_reply(message.text)


FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "800")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(st.binary(max_size=4000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw)


HEADER_NAME = st.sampled_from(
    ["From", "To", "Cc", "Subject", "Date", "Message-ID", "References", "Content-Type",
     "Content-Transfer-Encoding", "Content-Disposition", "Auto-Submitted", "Precedence",
     "X-Failed-Recipients", "List-Id", "Return-Path", "X-Whatever"]
)  # fmt: skip


@FUZZ
@given(
    st.lists(st.tuples(HEADER_NAME, st.text(max_size=80)), min_size=1, max_size=12),
    st.binary(max_size=600),
)
def test_random_headers(headers: list[tuple[str, str]], body: bytes) -> None:
    head = b"".join(
        f"{name}: {value}".encode("utf-8", "surrogatepass") + b"\r\n" for name, value in headers
    )
    _check(head + b"\r\n" + body)


@FUZZ
@given(
    st.sampled_from(range(len(SEEDS))),
    st.lists(MUTATION, max_size=8),
    st.one_of(st.none(), st.integers(min_value=0)),
)
def test_mutated_mails(
    seed: int, mutations: list[tuple[str, int, object]], cut: int | None
) -> None:
    _check(_mutate(SEEDS[seed], mutations, cut))


def test_seeds_parse() -> None:
    for seed in SEEDS:
        assert isinstance(
            parse_message(seed, channel_mailbox="fuzz", external_id="1"), InboundMessage
        )
