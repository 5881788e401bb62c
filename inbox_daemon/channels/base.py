"""What every channel offers, and what it hands to the ingestion pipeline.

A channel turns its source into :class:`Delivery` values and passes each to a :class:`Sink`
(the ingestion pipeline). It acknowledges a message at its source (IMAP ``\\Seen`` or a move,
Maildir ``new/`` → ``cur/``) only after the sink has returned, that is after the message is
committed: a crash in between means the message is offered again and the receipt recognises it.
Channels never touch the database or the rules. The delivery and sink types are defined in the
leaf module :mod:`inbox_daemon.sinks` and re-exported here.
"""

from __future__ import annotations

from typing import Protocol

from inbox_daemon.messages import Checkpoint, DeliveryReceipt, OutboundMessage
from inbox_daemon.sinks import BatchingSink, BatchSink, Delivery, IngestResult, Sink, take_batch

__all__ = [
    "BatchSink",
    "BatchingSink",
    "Checkpoint",
    "Delivery",
    "InboundChannel",
    "IngestResult",
    "OutboundChannel",
    "Sink",
    "take_batch",
]


class InboundChannel(Protocol):
    name: str

    async def run(self, sink: Sink) -> None:
        """Feed deliveries to the sink until cancelled; acknowledge each after the sink returns."""

    async def run_once(self, sink: Sink) -> int:
        """Feed what is waiting now, acknowledge it, and return how many messages that was."""


class OutboundChannel(Protocol):
    name: str

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        """Deliver one message or raise a DeliveryError."""
