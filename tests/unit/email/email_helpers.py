"""Builders shared by the parser tests."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from email.message import EmailMessage

from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.messages import InboundMessage


def parse(
    raw: bytes, *, our_addresses: Collection[str] = (), received_at: datetime | None = None
) -> InboundMessage:
    return parse_message(
        raw,
        channel_mailbox="support",
        external_id="42:7",
        our_addresses=our_addresses,
        received_at=received_at,
    )


def mail(
    subject: str = "Order 1234 is late",
    body: str = "Hello, where is my order?\n",
    *,
    sender: str = "Jane Doe <jane@example.com>",
    **headers: str,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@shop.example"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 May 2016 13:09:41 +0100"
    msg["Message-ID"] = "<order-1234@example.com>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg
