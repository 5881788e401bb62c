"""parse_message: headers, addresses, ids, dates, rejection and fallbacks (mails built in code).

Bodies, charsets and attachments are in test_parse_mime.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from email_helpers import mail, parse

from inbox_daemon.channels.email import parse as parse_module
from inbox_daemon.channels.email.parse import SYNTHETIC_ID_DOMAIN
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import Address, ChannelKind


def raw_mail(headers: str, body: bytes = b"Hello\r\n") -> bytes:
    """A message from literal header lines, for encodings EmailMessage would rewrite."""
    head = headers.strip("\n").replace("\n", "\r\n").encode("latin-1")
    return head + b"\r\n\r\n" + body


# -- subjects and header decoding ------------------------------------------------------------


def _b(text: str, charset: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (_b("Échantillon ✓ livré", "utf-8"), "Échantillon ✓ livré"),
        ("=?UTF-8?Q?Caf=C3=A9_cr=C3=A8me?=", "Café crème"),
        (_b("Grüße aus Köln", "iso-8859-1"), "Grüße aus Köln"),
        ("=?ISO-8859-1?Q?Gr=FC=DFe_aus_K=F6ln?=", "Grüße aus Köln"),
        ("Re: =?utf-8?q?caf=c3=a9?= ok", "Re: café ok"),
        ("=?utf-8?Q?Cyklozam=C4?= =?utf-8?B?m3N0bmF2YXRlbA==?=", "Cyklozaměstnavatel"),
        (_b("代开各地增值税发票", "gb2312"), "代开各地增值税发票"),
        ("=?UTF-8?Q?AutoRespons?= :Nyaan?", "AutoRespons :Nyaan?"),
    ],
)
def test_encoded_word_subjects_are_decoded(encoded: str, expected: str) -> None:
    raw = raw_mail(f"From: a@example.com\nSubject: {encoded}\nMessage-ID: <s@x>")
    assert parse(raw).subject == expected


def test_folded_subject_is_unfolded() -> None:
    raw = raw_mail("From: a@example.com\nSubject: =?utf-8?Q?first_part?=\n =?utf-8?Q?_second?=")
    assert parse(raw).subject == "first part second"


def test_raw_8bit_subjects_are_decoded() -> None:
    utf8 = b"From: a@example.com\r\nSubject: Pr\xc3\xbcfung f\xc3\xbcr Sie\r\n\r\nhi\r\n"
    latin1 = b"From: a@example.com\r\nSubject: Pr\xfcfung\r\n\r\nhi\r\n"
    assert parse(utf8).subject == "Prüfung für Sie"
    assert parse(latin1).subject == "Prüfung"


def test_headers_map_is_lowercased_decoded_and_ordered() -> None:
    raw = raw_mail(
        "Received: from a by b; Tue, 24 May 2016 13:10:00 +0000\n"
        "Received: from c by a; Tue, 24 May 2016 13:09:50 +0000\n"
        "From: a@example.com\n"
        "X-Customer-Tier: =?utf-8?Q?Gold_=E2=98=85?=\n"
        "Subject: hi"
    )
    headers = parse(raw).headers
    assert headers["x-customer-tier"] == ("Gold ★",)
    assert headers["received"] == (
        "from a by b; Tue, 24 May 2016 13:10:00 +0000",
        "from c by a; Tue, 24 May 2016 13:09:50 +0000",
    )
    assert headers["subject"] == ("hi",)
    assert all(key == key.lower() for key in headers)


# -- addresses -------------------------------------------------------------------------------


def test_addresses_are_parsed_with_decoded_names_and_lowercased_domains() -> None:
    raw = raw_mail(
        "From: =?utf-8?Q?J=C3=BCrgen_M=C3=BCller?= <Juergen.Mueller@Example.DE>\n"
        'To: support@Shop.Example, "Sales Team" <sales@shop.example>\n'
        "Cc: =?iso-8859-1?Q?Last=DFlName=2C_FirstName?= <comma.name@example.com>\n"
        "Reply-To: replies@example.de\n"
        "Subject: hi"
    )
    msg = parse(raw)
    assert msg.sender == Address(email="Juergen.Mueller@example.de", name="Jürgen Müller")
    assert msg.to == (
        Address(email="support@shop.example"),
        Address(email="sales@shop.example", name="Sales Team"),
    )
    assert msg.cc == (Address(email="comma.name@example.com", name="LastßlName, FirstName"),)
    assert msg.reply_to == (Address(email="replies@example.de"),)


def test_address_used_as_display_name_keeps_the_real_address() -> None:
    raw = raw_mail("From: alice@example.com <bob@example.com>\nSubject: hi")
    assert parse(raw).sender.email == "bob@example.com"


def test_sender_falls_back_to_sender_header_then_keeps_a_name_only_from() -> None:
    with_sender = raw_mail("Sender: agent@example.org\nSubject: hi")
    assert parse(with_sender).sender == Address(email="agent@example.org")
    name_only = raw_mail("From: MAILER-DAEMON <>\nSubject: failure notice")
    assert parse(name_only).sender == Address(email=None, name="MAILER-DAEMON")


# -- dates and ids ---------------------------------------------------------------------------


def test_date_is_timezone_aware_and_keeps_the_offset() -> None:
    sent = parse(mail().as_bytes()).sent_at
    assert sent == datetime(2016, 5, 24, 12, 9, 41, tzinfo=UTC)
    assert sent is not None
    assert sent.utcoffset() == timedelta(hours=1)


@pytest.mark.parametrize("value", ["not a date", "Tue, 99 Foo 2016 99:99:99 +0100", ""])
def test_unparseable_date_is_none(value: str) -> None:
    assert parse(raw_mail(f"From: a@example.com\nDate: {value}\nSubject: x")).sent_at is None


def test_received_at_comes_from_argument_or_newest_received_header() -> None:
    raw = raw_mail(
        "Received: from a by mx; Tue, 24 May 2016 13:10:00 +0000\nFrom: a@example.com\nSubject: x"
    )
    assert parse(raw).received_at == datetime(2016, 5, 24, 13, 10, tzinfo=UTC)
    given = datetime(2020, 1, 2, 3, 4, 5)  # naive: taken as UTC
    assert parse(raw, received_at=given).received_at == given.replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("  <abc.123@mail.example>  ", "<abc.123@mail.example>"),
        ("abc@bare.example", "<abc@bare.example>"),
    ],
)
def test_message_id_is_normalised(header: str, expected: str) -> None:
    assert parse(raw_mail(f"From: a@example.com\nMessage-ID: {header}")).message_id == expected


def test_missing_message_id_gets_a_stable_synthetic_id() -> None:
    first = raw_mail("From: a@example.com\nSubject: no id", b"body one\r\n")
    second = raw_mail("From: a@example.com\nSubject: no id", b"body two\r\n")
    id_one = parse(first).message_id
    assert id_one == parse(first).message_id
    assert id_one == f"<{hashlib.sha256(first).hexdigest()[:32]}@{SYNTHETIC_ID_DOMAIN}>"
    assert re.fullmatch(r"<[0-9a-f]{32}@inbox-daemon\.invalid>", id_one or "")
    assert parse(second).message_id != id_one


def test_references_and_in_reply_to_tolerate_garbage() -> None:
    raw = raw_mail(
        "From: a@example.com\n"
        "In-Reply-To: <parent@x.example> (message from Jane of Tue)\n"
        "References: <root@x.example> garbage, <mid@y.example>\n"
        "\t<parent@x.example> <root@x.example>"
    )
    msg = parse(raw)
    assert msg.in_reply_to == ("<parent@x.example>",)
    assert msg.references == ("<root@x.example>", "<mid@y.example>", "<parent@x.example>")
    assert msg.thread_ids == ("<parent@x.example>", "<mid@y.example>", "<root@x.example>")


def test_identity_fields_and_content_hash() -> None:
    raw = mail().as_bytes()
    msg = parse(raw)
    assert msg.channel is ChannelKind.EMAIL
    assert (msg.mailbox, msg.external_id) == ("support", "42:7")
    assert msg.content_hash == hashlib.sha256(raw).hexdigest()
    assert msg.message_id == "<order-1234@example.com>"
    assert msg.subject == "Order 1234 is late"
    assert msg.text == "Hello, where is my order?\n"
    assert msg.html is None


# -- rejection and robustness ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"  \r\n\t\n", "empty"),
        (b"Just a line of text\nand another one\n", "no mail headers"),
        (b"Hi John: the meeting moved\n\nsee you\n", "no mail headers"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 64, "Outlook .msg"),
    ],
)
def test_broken_input_is_rejected(raw: bytes, reason: str) -> None:
    with pytest.raises(RejectedMessage, match=reason):
        parse(raw)


def test_non_bytes_input_is_rejected() -> None:
    with pytest.raises(RejectedMessage, match="must be bytes"):
        parse("From: a@example.com\n\nhi")  # type: ignore[arg-type]


def test_bytearray_input_is_accepted() -> None:
    assert parse(bytearray(mail().as_bytes())).subject == "Order 1234 is late"


def test_failure_while_building_retries_with_the_email_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = parse_module.sender_address
    calls: list[object] = []

    def flaky(message: object, parsed: object, charset: str | None, unparsed: object) -> Address:
        calls.append(parsed)
        if parsed is not None:
            raise KeyError("mail-parser result without the expected shape")
        return real(message, parsed, charset, unparsed)  # type: ignore[arg-type]

    monkeypatch.setattr(parse_module, "sender_address", flaky)
    assert parse(mail().as_bytes()).sender.email == "jane@example.com"
    assert len(calls) == 2
    assert calls[1] is None


def test_unexpected_error_everywhere_becomes_rejected_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("walker exploded")

    monkeypatch.setattr(parse_module, "extract_content", broken)
    with pytest.raises(RejectedMessage, match="ValueError: walker exploded"):
        parse(mail().as_bytes())


def test_date_helper_matches_email_utils_output() -> None:
    when = datetime(2024, 2, 29, 23, 59, 1, tzinfo=timezone(timedelta(hours=-5)))
    raw = raw_mail(f"From: a@example.com\nDate: {format_datetime(when)}")
    sent = parse(raw).sent_at
    assert sent == when
    assert sent is not None
    assert sent.utcoffset() == timedelta(hours=-5)


def test_a_reply_keeps_its_whole_body_and_the_new_text_above_the_quote() -> None:
    body = (
        "Still broken after the update.\r\n\r\n"
        "On Mon, 6 Jan 2025 at 10:00, Support <support@shop.example> wrote:\r\n"
        "> Please update the firmware.\r\n> Thanks\r\n"
    )
    msg = parse(mail("Re: Order 1234 is late", body).as_bytes())
    assert msg.new_text == "Still broken after the update."
    assert msg.text.startswith("Still broken after the update.\n\nOn Mon, 6 Jan 2025")
    assert "> Please update the firmware." in msg.text
    assert "\r" not in msg.text
