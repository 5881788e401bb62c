"""The parser's shortcuts give the results of the long way.

parse_message condenses base64 runs before parsing (parse._condense / parse._restore), lets
mail-parser compute only the header fields it reads (parse._HeaderMailParser), decodes clean
base64 bodies directly (mime._clean_base64), and quotes.py tests cheap necessary conditions
before its costly regular expressions. Each is checked here against the way it replaces.
"""

from __future__ import annotations

import email
import re
import sys
from datetime import datetime, timedelta, timezone
from email.message import Message
from typing import Any

import mailparser
import pytest
from email_helpers import mail, parse
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.channels.email import mime, quotes
from inbox_daemon.channels.email import parse as parse_module
from inbox_daemon.messages import Address

# -- condensing base64 runs --------------------------------------------------------------------


def tree(message: Message) -> Any:
    """Everything the email package's parser decides about a message, recursively."""
    payload = message.get_payload()
    return (
        message.get_unixfrom(),
        message.items(),
        getattr(message, "_payload", None) if not isinstance(payload, list) else None,
        [tree(part) for part in payload] if isinstance(payload, list) else None,
        message.preamble,
        message.epilogue,
        [type(defect) for defect in message.defects],
        message.get_default_type(),
    )


def condensed_tree(raw: bytes) -> tuple[Any, int]:
    condensed, runs = parse_module._condense(raw)
    message = email.message_from_bytes(condensed)
    parse_module._restore(message, runs)
    return tree(message), len(runs)


B64 = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo+/w==\r\n"
HEAD = b"From: a@example.com\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
MIXED = b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
PART = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"

CASES = {
    "attachment": HEAD + MIXED + b"--B\r\n" + PART + B64 * 40 + b"--B--\r\n",
    "lf only": (HEAD + MIXED + b"--B\r\n" + PART + B64 * 40 + b"--B--\n").replace(b"\r\n", b"\n"),
    "cr only": (HEAD + MIXED + b"--B\r\n" + PART + B64 * 40 + b"--B--\n").replace(b"\r\n", b"\r"),
    "mixed line endings": HEAD + b"\n" + B64 * 3 + B64.replace(b"\r\n", b"\r") * 3 + b"AAAA\n",
    "blank line before boundary": HEAD + MIXED + b"--B\r\n" + PART + B64 * 9 + b"\r\n--B--\r\n",
    "run at the end": HEAD + b"\r\n" + B64 * 9,
    "run without final line ending": HEAD + b"\r\n" + B64 * 9 + b"QUJD",
    "two runs split by a blank line": HEAD + b"\r\n" + B64 * 5 + b"\r\n" + B64 * 5,
    "preamble and epilogue": HEAD + MIXED + B64 * 5 + b"\r\n--B\r\n\r\nx\r\n--B--\r\n\r\n" + B64,
    "no part headers": HEAD + MIXED + b"--B\r\n\r\n" + B64 * 5 + b"--B--\r\n",
    "rfc822 without headers": HEAD + b"Content-Type: message/rfc822\r\n\r\n" + B64 * 5,
    "delivery-status": HEAD
    + b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
    + b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
    + B64 * 3
    + b"\r\n"
    + B64 * 3
    + b"\r\n--B--\r\n",
    "missing boundary": HEAD + MIXED + b"--C\r\n" + PART + B64 * 5 + b"--C--\r\n",
    "8-bit bytes around": HEAD + b"\r\ncaf\xe9\r\n\r\n" + B64 * 5 + b"\xff\r\n",
    "cr cr lf": HEAD + b"\r\r\n" + B64 * 5 + b"\r\r\n" + B64 * 5,
    "stray characters": HEAD + b"\r\n" + B64 * 3 + b"QU JD\r\n" + B64 * 3 + b"\x0bQUJD\r\n" + B64,
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_condensing_gives_the_tree_of_the_plain_parse(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parse_module, "_CONDENSE_MIN", 1)
    got, runs = condensed_tree(raw)
    assert runs
    assert got == tree(email.message_from_bytes(raw))


def test_a_mail_with_the_marker_text_is_parsed_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "_CONDENSE_MIN", 1)
    marker = parse_module._CONDENSED.encode() + b"0Z"
    raw = CASES["attachment"].replace(b"Subject: s", b"Subject: " + marker)
    assert parse_module._condense(raw) == (raw, [])
    # In a run of its own, the marker text is condensed and put back like any other.
    raw = CASES["attachment"] + b"\r\n" + marker + b"\r\n"
    got, runs = condensed_tree(raw)
    assert runs == 2
    assert got == tree(email.message_from_bytes(raw))


def test_an_attachment_reaches_the_parser_condensed_and_the_message_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    msg = mail()
    msg.add_attachment(bytes(range(256)) * 400, maintype="application", subtype="pdf")
    raw = msg.as_bytes()
    condensed, runs = parse_module._condense(raw)
    assert len(runs) == 1
    assert len(condensed) < 2000 < len(raw)
    fast = parse(raw)
    monkeypatch.setattr(parse_module, "_CONDENSE_MIN", sys.maxsize)
    assert parse_module._condense(raw) == (raw, [])
    assert parse(raw) == fast
    assert fast.attachments[0].content == bytes(range(256)) * 400


PIECES = [
    b"QUJD",
    b"+/==",
    b"A",
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"--B",
    b"--B--",
    b"X: y\r\n",
    b" ",
    b":",
    b"\x0b",
    b"\xff",
    b"From ",
    b'Content-Type: multipart/mixed; boundary="B"\r\n',
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: message/delivery-status\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    parse_module._CONDENSED.encode() + b"0Z",
]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=80))
def test_condensing_never_changes_the_tree(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    original = parse_module._CONDENSE_MIN
    parse_module._CONDENSE_MIN = 1  # condense every run (not a fixture: Hypothesis reruns)
    try:
        got, _ = condensed_tree(raw)
    finally:
        parse_module._CONDENSE_MIN = original
    assert got == tree(email.message_from_bytes(raw))


# -- the header block limit ---------------------------------------------------------------------


def header_block_size(raw: bytes) -> int:
    """The former definition: the earliest blank line of any kind, else the whole length."""
    ends = [i for i in (raw.find(b"\n\n"), raw.find(b"\n\r\n"), raw.find(b"\r\r")) if i >= 0]
    return min(ends) if ends else len(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=30).map(lambda b: bytes(b"\r\na"[x % 3] for x in b)), st.integers(0, 12))
def test_header_limit_stops_at_the_first_blank_line(raw: bytes, limit: int) -> None:
    original = parse_module._MAX_MAILPARSER_HEADERS
    parse_module._MAX_MAILPARSER_HEADERS = limit
    try:
        assert parse_module._headers_too_large(raw) == (header_block_size(raw) > limit)
    finally:
        parse_module._MAX_MAILPARSER_HEADERS = original


# -- mail-parser, header fields only ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        mail(sender="=?utf-8?Q?Zo=C3=AB?= <zoe@example.com>", Cc="a@x.example, B <b@y.example>")
        .as_bytes()
        .replace(b"+0100", b"+0530"),
        mail(Reply_To="Team <team@example.com>").as_bytes().replace(b"Tue, 24 May", b"Tue 24 Mai"),
        CASES["delivery-status"],
    ],
)
def test_header_only_mail_parser_reads_what_the_full_one_does(raw: bytes) -> None:
    full = mailparser.parse_from_bytes(raw)
    ours = parse_module._HeaderMailParser.from_bytes(raw)
    for name in ("from_", "to_", "cc_", "reply_to_", "date", "timezone"):
        assert getattr(ours, name) == getattr(full, name), name


def test_failure_of_the_header_only_mail_parser_falls_back_to_the_email_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(raw: bytes) -> None:
        raise AttributeError("'NoneType' object has no attribute 'index'")

    monkeypatch.setattr(parse_module._HeaderMailParser, "from_bytes", boom)
    msg = parse(mail(sender="=?utf-8?Q?Zo=C3=AB?= <zoe@example.com>").as_bytes())
    assert msg.subject == "Order 1234 is late"
    assert msg.sender == Address(email="zoe@example.com", name="Zoë")
    assert msg.sent_at == datetime(2016, 5, 24, 13, 9, 41, tzinfo=timezone(timedelta(hours=1)))


# -- base64 bodies --------------------------------------------------------------------------------


BODY_PIECES = ["QUJD", "QQ==", "QUI=", "A", "=", "\r\n", "\n", "\r", " ", "!", "-"]
BODY_PIECES += ["\udcff", "\udc81"]  # 8-bit bytes, as the parser stores them


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(BODY_PIECES), max_size=40), st.sampled_from(["utf-8", "cp037"]))
def test_base64_bodies_decode_as_the_email_package_decodes_them(
    pieces: list[str], charset: str
) -> None:
    part = Message()
    part["Content-Type"] = f"application/octet-stream; charset={charset}"
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload("".join(pieces))
    assert mime._payload_bytes(part) == part.get_payload(decode=True)


# -- quote stripping ------------------------------------------------------------------------------


def test_reply_above_letters_have_no_case_variants_outside_ascii() -> None:
    """What makes the substring test in quotes._reply_above a safe shortcut."""
    every_char = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c < 0xE000)
    matched = set(re.findall(r"[reply abovth]", every_char, re.IGNORECASE))
    assert all(ch.isascii() for ch in matched)


def reference_on_wrote_at(lines: list[str], index: int, *, strict: bool) -> int:
    """quotes._on_wrote_at without its shortcut."""
    joined = ""
    for span in range(1, 4):
        if index + span > len(lines):
            break
        part = lines[index + span - 1][: quotes._MAX_LINE]
        if span > 1 and (not part.strip() or quotes._quoted(part)):
            break
        joined = f"{joined} {part.strip()}" if joined else part.strip()
        if quotes._ON_WROTE.match(joined) is not None:
            return span
        if span == 1 and not strict and quotes._ANY_WROTE.match(joined) is not None:
            return span
    return 0


WORDS = ["On", "on", "W", "w", "dniu", "Am", "Le", "den", "PÅ", "dne", "dnia", "Mon", "2024,"]
WORDS += ["Ann", "wrote:", "schrieb", "a écrit :", "skrev", "napisał:", "napsal:", ":", ">", "İ"]


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.lists(st.sampled_from([*WORDS, " ", ""]), max_size=8).map(" ".join), max_size=4),
    st.booleans(),
)
def test_on_wrote_detection_is_unchanged_by_its_shortcut(lines: list[str], strict: bool) -> None:
    for index in range(len(lines)):
        expected = reference_on_wrote_at(lines, index, strict=strict)
        assert quotes._on_wrote_at(lines, index, strict=strict) == expected
