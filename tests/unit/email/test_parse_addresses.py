"""The addresses we answer (From, Sender, Reply-To) are read strictly: nothing but the
customer's own address can become the case's contact."""

from __future__ import annotations

import pytest
from email_helpers import parse

from inbox_daemon.messages import Address


def with_from(value: bytes, reply_to: bytes | None = None) -> bytes:
    extra = b"Reply-To: " + reply_to + b"\r\n" if reply_to else b""
    return (
        b"From: " + value + b"\r\n" + extra + b"To: support@shop.example\r\nSubject: help\r\n"
        b"Message-ID: <m@example.com>\r\n\r\nIt smokes.\r\n"
    )


@pytest.mark.parametrize(
    ("value", "sender"),
    [
        (b"Ann <ann@example.com>", Address("ann@example.com", "Ann")),
        (b"Ann (Sales) <ann@example.com>", Address("ann@example.com", "Ann (Sales)")),
        (b'"Ann (Sales)" <ann@example.com>', Address("ann@example.com", "Ann (Sales)")),
        (b"ann@example.com (Ann Example)", Address("ann@example.com", "Ann Example")),
        (b"=?utf-8?q?Zo=C3=AB?= <zoe@example.com>", Address("zoe@example.com", "Zoë")),
        (b"<ann@example.com>", Address("ann@example.com")),
    ],
)
def test_a_well_formed_sender_is_read_as_written(value: bytes, sender: Address) -> None:
    msg = parse(with_from(value))
    assert msg.sender == sender
    assert msg.unparsed_headers == ()


def test_a_group_in_from_cannot_put_another_address_in_the_customers_place() -> None:
    # getaddresses read the unquoted colon as a group and took evil@x.example.
    msg = parse(with_from(b"Eve Bcc: evil@x.example <eve@example.com>"))
    assert msg.sender.email == "eve@example.com"
    assert msg.unparsed_headers == ("from",)


def test_an_invalid_address_is_no_contact_but_the_mail_is_kept() -> None:
    msg = parse(with_from(b"test test@example.com"))
    assert msg.sender == Address(None, "test test@example.com")  # shown, never answered
    assert msg.unparsed_headers == ("from",)
    assert msg.text.strip() == "It smokes."


def test_reply_to_is_read_strictly_too() -> None:
    msg = parse(with_from(b"Ann <ann@example.com>", reply_to=b"Desk: evil@x.example;"))
    assert msg.reply_to == ()
    assert msg.unparsed_headers == ("reply-to",)
    msg = parse(with_from(b"Ann <ann@example.com>", reply_to=b"Desk <desk@example.com>"))
    assert msg.reply_to == (Address("desk@example.com", "Desk"),)
