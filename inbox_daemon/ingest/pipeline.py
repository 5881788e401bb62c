"""The channel-agnostic intake pipeline: the transaction a channel's messages are taken in.

receipt (idempotency) → threading → create / append / reopen / follow-up → route → persist,
in one transaction per batch (or per message), together with the mailbox checkpoint. The
channel acknowledges the messages at their source only after this returns. What each message
becomes is decided in :mod:`.placement`; this module owns the transaction (what is written
when: :meth:`Ingestor._transaction`), the duplicates, the retries of a failing message and
quarantine: unparseable or unstorable messages are kept with their raw bytes
(:mod:`.setaside`), never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.acknowledge import AckTemplates
from inbox_daemon.channels.base import Delivery, IngestResult
from inbox_daemon.errors import CaseRuleError, NotFoundError
from inbox_daemon.ingest.lookups import BatchLookups, lookups_of
from inbox_daemon.ingest.placement import Placement, keeps
from inbox_daemon.ingest.setaside import HELD, IGNORED, set_aside
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import InboundMessage
from inbox_daemon.router.loader import LoadedRules
from inbox_daemon.service import CaseService
from inbox_daemon.store import intake
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import QuarantineRow

log = get_logger("inbox_daemon.ingest")


@dataclass(frozen=True)
class IntakeOptions:
    our_addresses: frozenset[str] = frozenset()
    #: Acknowledgement templates; None: new cases are not acknowledged.
    acknowledgements: AckTemplates | None = None
    #: At most this many automatic answers to one sender per hour.
    auto_answers_per_hour: int = 3
    #: A larger attachment is not kept; the activity's text says so instead.
    max_attachment_bytes: int = 25 * 1024 * 1024
    #: A reply to a case resolved longer ago than this opens a follow-up case.
    reopen_window: timedelta | None = None
    #: Failures of one message before it is set aside in quarantine.
    max_attempts: int = 3


class Ingestor:
    """The sink every channel feeds: ``await ingestor(delivery) -> IngestResult``."""

    def __init__(
        self,
        service: CaseService,
        *,
        files: FileStore,
        quarantine: FileStore,
        rules: Callable[[], LoadedRules | None] = lambda: None,
        options: IntakeOptions | None = None,
    ) -> None:
        self.service = service
        self.db = service.db
        self.files = files
        self.quarantine_files = quarantine
        self.rules = rules
        self._failures: dict[tuple[str, str, str], int] = {}
        self.placement = Placement(service, rules, options or IntakeOptions(), quarantine)

    @property
    def options(self) -> IntakeOptions:
        return self.placement.options

    @options.setter
    def options(self, options: IntakeOptions) -> None:
        """New options (a reloaded config) hold from the next message on, placement included."""
        self.placement.options = options

    async def __call__(self, delivery: Delivery) -> IngestResult:
        key = (delivery.channel, delivery.mailbox, delivery.external_id)
        try:
            result = (await self._ingest([delivery]))[0]
        except IntegrityError:
            # Another instance committed the same message first: that is a duplicate.
            async with self.db.transaction() as session:
                if await intake.receipt_for_source(session, *key) is not None:
                    return IngestResult("duplicate")
            return await self._failed(delivery, key, "integrity error")
        except Exception as exc:
            return await self._failed(delivery, key, f"{type(exc).__name__}: {exc}")
        self._taken(delivery, result)
        return result

    async def batch(self, deliveries: Sequence[Delivery]) -> list[IngestResult]:
        """Take several deliveries of one mailbox in one transaction (see :class:`BatchSink`).

        If the transaction fails, nothing of it is kept and the deliveries are taken again one
        at a time, each with its own retries and quarantine: one bad message costs its
        batch-mates a second try, never their place.
        """
        if len(deliveries) <= 1:
            return [await self(delivery) for delivery in deliveries]
        try:
            results = await self._ingest(deliveries)
        except Exception as exc:
            log.warning(
                "batch could not be stored, taking its messages one at a time",
                mailbox=deliveries[0].mailbox,
                messages=len(deliveries),
                error=f"{type(exc).__name__}: {exc}",
            )
            return [await self(delivery) for delivery in deliveries]
        for delivery, result in zip(deliveries, results, strict=True):
            self._taken(delivery, result)
        return results

    def _taken(self, delivery: Delivery, result: IngestResult) -> None:
        """After the commit: forget failures, wake the outbox, log."""
        self._failures.pop((delivery.channel, delivery.mailbox, delivery.external_id), None)
        if result.queued_outgoing:  # committed: the outbox may send the acknowledgement now
            self.service.outgoing_queued()
        log.info(
            "message taken in",
            channel=delivery.channel,
            mailbox=delivery.mailbox,
            external_id=delivery.external_id,
            message_id=delivery.message.message_id if delivery.message else None,
            outcome=result.outcome,
            case=result.case_number,
        )

    async def _failed(
        self, delivery: Delivery, key: tuple[str, str, str], reason: str
    ) -> IngestResult:
        count = self._failures.get(key, 0) + 1
        self._failures[key] = count
        log.warning(
            "message could not be stored",
            channel=delivery.channel,
            mailbox=delivery.mailbox,
            external_id=delivery.external_id,
            attempt=count,
            error=reason,
        )
        if count < self.options.max_attempts:
            raise
        self._failures.pop(key, None)
        async with self._transaction([]) as session:
            return await self._quarantine(
                session, delivery, f"could not be stored after {count} attempts: {reason}"
            )

    # --- the transaction -----------------------------------------------------------------

    async def retry_quarantined(self, quarantine_id: int, delivery: Delivery) -> IngestResult:
        """Take a quarantined message in again (``delivery`` carries it freshly parsed).

        A message set aside as ignored (automatic, or from us, answering nothing) becomes a
        case: a person looked at it and asked for one.
        """
        async with self._transaction([delivery.message] if delivery.message else []) as session:
            row = await session.get(QuarantineRow, quarantine_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no quarantined message #{quarantine_id}")
            if row.state not in (HELD, IGNORED):
                raise CaseRuleError(f"quarantined message #{quarantine_id} was already {row.state}")
            as_case = row.state == IGNORED
            if delivery.message is None:
                row.reason = delivery.error or row.reason
                row.updated_at = self.service.clock()
                return IngestResult("quarantined", detail=row.reason)
            await intake.forget_receipt(session, row.channel, row.mailbox, row.external_id)
            lookups_of(session).forget(delivery.message)
            result = await self._take(session, delivery, delivery.message, as_case=as_case)
            row.state = "retried"
            row.updated_at = self.service.clock()
            return result

    @contextlib.asynccontextmanager
    async def _transaction(self, messages: Sequence[InboundMessage]) -> AsyncIterator[AsyncSession]:
        """The transaction that takes ``messages`` in, and what is written when:

        1. before it, the messages' attachments are stored and synced (content-addressed);
        2. at its start, what the messages need to know is looked up once
           (:class:`BatchLookups`, attached to the transaction's unit of work);
        3. while the steps run nothing is flushed: new cases and activities get their ids and
           case numbers at once (:mod:`inbox_daemon.store.ids`, ``next_case_number``), audit
           rows wait in the unit of work (``repo.audit``), receipts in the lookups;
        4. at its end, the batch's rows: the receipts' INSERT flushes the session first (one
           multi-row INSERT per table, after which the unit of work writes the audit rows and
           the case counter: :mod:`inbox_daemon.store.unit`), then the receipts in one
           INSERT, then the commit.

        Every way into the pipeline goes through here, so its steps have one way of asking.
        """
        stored = await self._store_attachments(messages)
        async with self.db.transaction() as session:
            lookups = await BatchLookups.load(
                session, messages, self.service.clock(), from_us=self.placement.from_us
            )
            lookups.attachments = stored
            lookups.attach(session)
            yield session
            await self.service.record_receipts_in(session, lookups.receipts)

    async def _ingest(self, deliveries: Sequence[Delivery]) -> list[IngestResult]:
        """One transaction: every delivery's receipt and case changes, then the checkpoint."""
        async with self._transaction([d.message for d in deliveries if d.message]) as session:
            taken = await intake.sources_taken(
                session, [(d.channel, d.mailbox, d.external_id) for d in deliveries]
            )
            results: list[IngestResult] = []
            for delivery in deliveries:
                msg = delivery.message
                if (delivery.channel, delivery.mailbox, delivery.external_id) in taken:
                    result = IngestResult("duplicate", detail="already taken in from this source")
                elif msg is None:
                    result = await self._quarantine(
                        session, delivery, delivery.error or "unparseable"
                    )
                else:
                    result = await self._take(session, delivery, msg)
                results.append(result)
            checkpoints = [d for d in deliveries if d.checkpoint is not None]
            for delivery in checkpoints[-1:]:
                assert delivery.checkpoint is not None
                await intake.save_checkpoint(
                    session, delivery.mailbox, delivery.checkpoint, self.service.clock()
                )
            return results

    async def _take(
        self, session: AsyncSession, delivery: Delivery, msg: InboundMessage, as_case: bool = False
    ) -> IngestResult:
        now = self.service.clock()
        lookups = lookups_of(session)
        prior = lookups.prior(msg)
        if prior is not None:
            external_id, activity_id = prior
            self._receipt(session, delivery, None, "duplicate", activity_id, now)
            return IngestResult("duplicate", detail=f"same message as {external_id}")
        result = await self.placement.place(session, delivery, msg, now, as_case)
        self._receipt(session, delivery, msg, result.outcome, result.activity_id, now)
        lookups.taken(msg, delivery.external_id, result.activity_id)
        return result

    def _receipt(
        self,
        session: AsyncSession,
        delivery: Delivery,
        msg: InboundMessage | None,
        outcome: str,
        activity_id: int | None,
        now: datetime,
    ) -> None:
        """Record that this delivery was taken in: with the transaction's other receipts, in
        one INSERT when it is done (see :meth:`_transaction`)."""
        values = {
            "channel": delivery.channel,
            "mailbox": delivery.mailbox,
            "external_id": delivery.external_id,
            "message_id": msg.message_id if msg else None,
            "content_hash": msg.content_hash if msg else None,
            "activity_id": activity_id,
            "outcome": outcome,
            "created_at": now,
        }
        lookups_of(session).receipts.append(values)

    async def _quarantine(
        self, session: AsyncSession, delivery: Delivery, reason: str
    ) -> IngestResult:
        now = self.service.clock()
        await set_aside(session, self.quarantine_files, delivery, reason, now)
        source = (delivery.channel, delivery.mailbox, delivery.external_id)
        if await intake.receipt_for_source(session, *source) is None:
            self._receipt(session, delivery, None, "quarantined", None, now)
        return IngestResult("quarantined", detail=reason)

    async def _store_attachments(
        self, messages: Sequence[InboundMessage]
    ) -> dict[int, tuple[str, int]]:
        """Store the attachments of a batch's messages, all at once, before its transaction.

        Each file is synced to disk before the transaction that refers to it commits; synced
        one after the other they kept the batch waiting a few ms each, while many syncs in
        flight together cost about one. Content-addressed: storing a file twice (a duplicate
        message, a retried batch) keeps one copy. Keys: ``id()`` of each attachment.
        """
        limit = self.options.max_attachment_bytes
        kept = [att for msg in messages for att in msg.attachments if keeps(att, limit)]
        if not kept:
            return {}
        put = self.files.put_attachment
        stored = await asyncio.gather(*(asyncio.to_thread(put, att) for att in kept))
        return {id(att): found for att, found in zip(kept, stored, strict=True)}
