"""Raw mail → :class:`Delivery`: what every email source (IMAP, Maildir, stdin) hands the sink."""

from __future__ import annotations

from collections.abc import Collection

from inbox_daemon.channels.base import Delivery
from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import Checkpoint


def email_delivery(
    raw: bytes,
    mailbox: str,
    external_id: str,
    our_addresses: Collection[str] = (),
    checkpoint: Checkpoint | None = None,
) -> Delivery:
    """Parse a raw mail; a mail that cannot be parsed becomes a Delivery to quarantine."""
    try:
        message = parse_message(
            raw, channel_mailbox=mailbox, external_id=external_id, our_addresses=our_addresses
        )
    except RejectedMessage as exc:
        return Delivery("email", mailbox, external_id, raw, None, str(exc), checkpoint)
    return Delivery("email", mailbox, external_id, raw, message, None, checkpoint)
