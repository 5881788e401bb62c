"""What a channel hands to the ingestion pipeline, and what the pipeline answers.

This module owns :class:`Delivery` (one message as a channel received it), :class:`IngestResult`
(what the pipeline did with it), the :data:`Sink` that takes one and the :class:`BatchSink` that
also takes several in one transaction (:class:`BatchingSink`, :func:`take_batch`). It is a leaf
beside :mod:`inbox_daemon.messages`, so that the channels that feed a sink, the pipeline behind
it and the metrics that wrap it share these types without importing one another;
:mod:`inbox_daemon.channels.base` re-exports them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from inbox_daemon.messages import Checkpoint, InboundMessage

__all__ = ["BatchSink", "BatchingSink", "Delivery", "IngestResult", "Sink", "take_batch"]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message as a channel received it.

    ``message`` is None when the channel could not parse it; ``error`` then says why and the
    pipeline quarantines ``raw``. A large mail is not held in memory: ``raw_path`` names the file
    that holds its bytes (``raw`` is then empty), valid until the sink returns.
    """

    channel: str
    mailbox: str
    external_id: str
    raw: bytes
    message: InboundMessage | None
    error: str | None = None
    #: For IMAP: the position to record with the receipt in the same transaction.
    checkpoint: Checkpoint | None = None
    raw_path: Path | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What the pipeline did with a delivery."""

    outcome: str  # created | appended | reopened | follow_up | duplicate | ignored | quarantined
    case_number: str | None = None
    activity_id: int | None = None
    detail: str = ""
    #: An outgoing message (an acknowledgement) was queued in the same transaction.
    queued_outgoing: bool = False


Sink = Callable[[Delivery], Awaitable[IngestResult]]


@runtime_checkable
class BatchSink(Protocol):
    """A sink that can also take several deliveries at once, in one transaction.

    ``batch`` returns one result per delivery, in order, once all of them are committed; if it
    raises, some may be committed and some not (a channel offers them all again, and the
    committed ones come back as duplicates).
    """

    async def __call__(self, delivery: Delivery) -> IngestResult: ...

    async def batch(self, deliveries: Sequence[Delivery]) -> list[IngestResult]: ...


@dataclass(frozen=True, slots=True)
class BatchingSink:
    """A :class:`BatchSink` made of two functions: one delivery, and several."""

    one: Sink
    many: Callable[[Sequence[Delivery]], Awaitable[list[IngestResult]]]

    async def __call__(self, delivery: Delivery) -> IngestResult:
        return await self.one(delivery)

    async def batch(self, deliveries: Sequence[Delivery]) -> list[IngestResult]:
        return await self.many(deliveries)


async def take_batch(sink: Sink, deliveries: Sequence[Delivery]) -> list[IngestResult]:
    """Hand ``deliveries`` to ``sink``: as one batch if it is a :class:`BatchSink`, else in turn."""
    if isinstance(sink, BatchSink):
        return await sink.batch(deliveries)
    return [await sink(delivery) for delivery in deliveries]
