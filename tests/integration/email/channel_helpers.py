"""What the IMAP and Maildir channel tests share."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Collection
from datetime import datetime

from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import Address, ChannelKind, InboundMessage


def simple_parse(
    raw: bytes,
    *,
    channel_mailbox: str,
    external_id: str,
    our_addresses: Collection[str] = (),
    received_at: datetime | None = None,
) -> InboundMessage:
    """A stand-in for parse_message: subject and Message-ID are enough here."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    if not msg.keys():
        raise RejectedMessage("no headers")
    return InboundMessage(
        channel=ChannelKind.EMAIL,
        mailbox=channel_mailbox,
        external_id=external_id,
        sender=Address(email=str(msg["From"] or "")),
        subject=str(msg["Subject"] or ""),
        message_id=str(msg["Message-ID"] or "") or None,
        received_at=received_at,
    )
