"""Mail whose header block is damaged is read as mail clients read it, never refused whole.

A UTF-8 byte-order mark before the headers, a stray line above them, a continuation line that
lost its indent, one header that cannot be parsed: the sender, subject and body come out right.
"""

from __future__ import annotations

import time

from email_helpers import mail, parse

from inbox_daemon.channels.email.parse import repair_header_block

GOOD = (
    b"From: Ann <ann@example.com>\r\nTo: support@shop.example\r\nSubject: Printer broken\r\n"
    b"Date: Mon, 2 Mar 2026 09:00:00 +0000\r\nMessage-ID: <p1@example.com>\r\n\r\nIt smokes.\r\n"
)


def test_a_utf8_byte_order_mark_before_the_headers_is_skipped() -> None:
    msg = parse(b"\xef\xbb\xbf" + GOOD)
    assert (msg.sender.email, msg.subject, msg.text) == (
        "ann@example.com",
        "Printer broken",
        "It smokes.\n",
    )
    # the hash is that of the bytes as delivered (what the receipt and quarantine keep)
    assert msg.content_hash != parse(GOOD).content_hash


def test_a_stray_line_above_the_headers_is_dropped() -> None:
    msg = parse(b"---- Original message ----\r\n" + GOOD)
    assert (msg.sender.email, msg.subject) == ("ann@example.com", "Printer broken")
    assert [a.email for a in msg.to] == ["support@shop.example"]
    assert msg.text == "It smokes.\n"
    assert "Original message" not in msg.text


def test_a_continuation_line_without_indent_joins_its_header() -> None:
    raw = GOOD.replace(
        b"Subject: Printer broken\r\n", b"Subject: Printer broken on the\r\nthird floor\r\n"
    )
    msg = parse(raw)
    assert msg.subject == "Printer broken on the third floor"
    assert msg.message_id == "<p1@example.com>"  # the headers after it are headers still
    assert msg.text == "It smokes.\n"


def test_a_body_without_the_blank_line_before_it_stays_the_body() -> None:
    msg = parse(b"From: Ann <ann@example.com>\nSubject: Printer\nHello there,\nit smokes.\n")
    assert (msg.subject, msg.text) == ("Printer", "Hello there,\nit smokes.\n")


def test_a_quoted_outlook_header_block_in_a_headerless_body_is_not_taken_for_headers() -> None:
    body = (
        b"Thanks, that works\n________________________________________\n"
        b"From: CRM Comments [crm-comment@example.com]\nSent: Friday, 23 March 2012 5:08 p.m.\n"
        b"To: John Greene\nSubject: [contact:106] John Greene\n\nA new comment\n"
    )
    assert repair_header_block(body).startswith(b"Thanks, that works\n")


def test_a_sound_header_block_is_left_byte_for_byte() -> None:
    raw = mail(subject="Question", body="Where is my parcel?\n").as_bytes()
    assert repair_header_block(raw) is raw
    assert repair_header_block(GOOD) is GOOD


def test_one_header_that_cannot_be_parsed_does_not_reject_the_mail() -> None:
    # group syntax nested thousands deep: email.utils.getaddresses recurses until it fails
    to = "To: " + "g:" * 20000 + "p@example.com" + ";" * 20000
    raw = GOOD.replace(b"To: support@shop.example\r\n", to.encode() + b"\r\n")
    started = time.monotonic()
    msg = parse(raw)
    assert time.monotonic() - started < 5
    assert (msg.sender.email, msg.subject, msg.text) == (
        "ann@example.com",
        "Printer broken",
        "It smokes.\n",
    )
    assert msg.unparsed_headers == ("to",)
    assert [a.email for a in msg.to] == ["p@example.com"]  # its bare addresses
    assert msg.headers["to"][0].startswith("g:g:")  # kept raw
    assert parse(GOOD).unparsed_headers == ()
