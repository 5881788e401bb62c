"""What the IMAP and Maildir channel tests share."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime

from inbox_daemon.channels.base import Delivery, IngestResult
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


class Sink:
    """Collects deliveries; ``hook`` runs inside the sink (before it returns); ``fail`` makes
    it raise after collecting, as a database that is down would."""

    def __init__(
        self, hook: Callable[[Delivery], Awaitable[None]] | None = None, *, fail: bool = False
    ) -> None:
        self.deliveries: list[Delivery] = []
        self.hook = hook
        self.fail = fail
        self._changed = asyncio.Event()

    async def __call__(self, delivery: Delivery) -> IngestResult:
        self.deliveries.append(delivery)
        self._changed.set()
        if self.hook is not None:
            await self.hook(delivery)
        if self.fail:
            raise RuntimeError("database is down")
        return IngestResult("created", case_number=f"C-{len(self.deliveries)}")

    @property
    def ids(self) -> list[str]:
        return [d.external_id for d in self.deliveries]

    async def wait_for(self, count: int, within: float = 5.0) -> list[Delivery]:
        async with asyncio.timeout(within):
            while len(self.deliveries) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.deliveries
