"""What the mail intake channels (IMAP, Maildir) share: raw bytes → :class:`Delivery`.

This module owns the type of the parse callable the channels take (the signature of
:func:`inbox_daemon.channels.email.parse.parse_message`), a default that imports the real parser
on first use, and :func:`make_delivery`, which parses one message off the event loop and turns a
rejection into a delivery that carries its reason (the pipeline quarantines it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from inbox_daemon.channels.base import Checkpoint, Delivery
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import InboundMessage

CHANNEL = "email"


class ParseMessage(Protocol):
    """``parse_message(raw, *, channel_mailbox, external_id, our_addresses, received_at)``."""

    def __call__(
        self,
        raw: bytes,
        *,
        channel_mailbox: str,
        external_id: str,
        our_addresses: Collection[str] = (),
        received_at: datetime | None = None,
    ) -> InboundMessage: ...


def parse_lazily(
    raw: bytes,
    *,
    channel_mailbox: str,
    external_id: str,
    our_addresses: Collection[str] = (),
    received_at: datetime | None = None,
) -> InboundMessage:
    """The real parser, imported on first use."""
    from inbox_daemon.channels.email.parse import parse_message

    return parse_message(
        raw,
        channel_mailbox=channel_mailbox,
        external_id=external_id,
        our_addresses=our_addresses,
        received_at=received_at,
    )


async def make_delivery(
    raw: bytes,
    *,
    parse: ParseMessage,
    mailbox: str,
    external_id: str,
    our_addresses: Collection[str],
    log: Any,
    received_at: datetime | None = None,
    checkpoint: Checkpoint | None = None,
) -> Delivery:
    """Parse ``raw`` in a worker thread; a rejection (or a parser crash) becomes ``error``.

    A parser crash is treated like a rejection so that one odd message cannot stop a mailbox:
    the pipeline keeps the raw bytes in quarantine with the reason.
    """
    error: str | None = None
    message: InboundMessage | None = None
    try:
        message = await asyncio.to_thread(
            parse,
            raw,
            channel_mailbox=mailbox,
            external_id=external_id,
            our_addresses=our_addresses,
            received_at=received_at,
        )
    except RejectedMessage as exc:
        error = str(exc) or "rejected by the parser"
        log.info("mail.rejected", external_id=external_id, reason=error)
    except Exception as exc:
        error = f"parser failed: {type(exc).__name__}: {exc}"
        log.error("mail.parser_failed", external_id=external_id, exc_info=True)
    return Delivery(
        channel=CHANNEL,
        mailbox=mailbox,
        external_id=external_id,
        raw=raw,
        message=message,
        error=error,
        checkpoint=checkpoint,
    )
