"""The channel-agnostic intake pipeline.

receipt (idempotency) → threading → create / append / reopen / follow-up → route → persist,
all in one transaction per message, together with the mailbox checkpoint. The channel
acknowledges the message at its source only after this returns.

Loop safety and fidelity: no heuristic makes a mail vanish. Auto-replies and bounces (by their
headers) are recorded on the case they answer (a bounce marks our outgoing message failed) and
never reopen it; answering nothing, they follow rules.yaml's ``automatic_mail`` policy (by
default set aside for an admin, no case). A subject that merely looks automatic only keeps the
mail from being answered. Mail from our own addresses is never a customer's: an agent's answer
sent from their mail client is recorded on its case as an outgoing activity by that agent, one
of our own messages coming back is ignored, the rest is set aside. Unparseable or unstorable
messages go to quarantine with their raw bytes (:mod:`.setaside`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypedDict

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.acknowledge import AckTemplates, queue_acknowledgement
from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import AutomaticMail, Status
from inbox_daemon.cases.model import Actor, find_case_number
from inbox_daemon.channels.base import Delivery, IngestResult
from inbox_daemon.channels.kinds import kind_of
from inbox_daemon.errors import CaseRuleError, NotFoundError
from inbox_daemon.ingest.lookups import BatchLookups, lookups_of
from inbox_daemon.ingest.routing import CaseRouting, new_text
from inbox_daemon.ingest.setaside import HELD, IGNORED, set_aside
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import Attachment, InboundMessage
from inbox_daemon.router.engine import RoutingDecision, ThreadFacts, evaluate
from inbox_daemon.router.loader import LoadedRules
from inbox_daemon.service import CaseService, StoredFile
from inbox_daemon.store import intake
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import ActivityRow, CaseRow, QuarantineRow

#: Outcomes of a message that made no activity: answered nothing and set aside, or ignored.
SET_ASIDE = "set_aside"

log = get_logger("inbox_daemon.ingest")


class _Contents(TypedDict):
    new_text: str
    files: list[StoredFile]
    note: str


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
        self.options = options or IntakeOptions()
        self._failures: dict[tuple[str, str, str], int] = {}
        self.routing = CaseRouting(service, rules)

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
                session, messages, self.service.clock(), from_us=self._from_us
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
        result = await self._place(session, delivery, msg, now, as_case)
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

    # --- threading and the case --------------------------------------------------------------

    async def _thread(self, session: AsyncSession, msg: InboundMessage) -> CaseRow | None:
        """The case a message belongs to: by Message-ID, Slack thread, or case number."""
        lookups = lookups_of(session)
        row = lookups.thread_case(msg)
        if row is None and msg.slack_channel and msg.slack_thread_ts:
            row = await intake.case_by_slack_thread(session, msg.slack_channel, msg.slack_thread_ts)
        if row is None:
            number = find_case_number(msg.subject)
            if number is not None:
                row = lookups.numbered_case(number)
        return row

    async def _place(
        self,
        session: AsyncSession,
        delivery: Delivery,
        msg: InboundMessage,
        now: datetime,
        as_case: bool = False,
    ) -> IngestResult:
        """Where the message goes; ``as_case``: a person asked for a case of it (see
        :meth:`retry_quarantined`), whatever it is."""
        actor = Actor.channel(f"{msg.channel}:{msg.mailbox}")
        case_row = await self._thread(session, msg)
        automatic = msg.flags.auto_reply or msg.flags.bounce
        if not as_case and self._from_us(msg):
            return await self._ours(session, delivery, msg, case_row, actor, now)
        agent = self._agent_answering(msg, case_row)
        if agent is not None and not automatic and case_row is not None:
            return await self._agent_mail(session, msg, case_row, Actor.user(agent), now)
        if automatic and case_row is not None:
            return await self._automatic(session, msg, case_row, actor, now)
        if case_row is None:
            decision = self._decide(session, msg, now)
            if automatic and not as_case:
                policy = decision.automatic_mail or AutomaticMail.RECORD
                kind = "bounce" if msg.flags.bounce else "auto-reply"
                if policy is not AutomaticMail.CASE:
                    why = f"{kind} that answers none of our messages"
                    return await self._unfiled(session, delivery, msg, why, policy, now)
            case_row, decision = await self._new_case(session, msg, actor, now, decision=decision)
            activity = await self._activity(session, case_row, msg, actor, now)
            acked = await self._acknowledge(session, case_row, activity, decision, now)
            return IngestResult("created", case_row.number, activity.id, queued_outgoing=acked)
        outcome = await self.service.change_in(
            session,
            case_row,
            lifecycle.CustomerReplied(self.options.reopen_window),
            actor,
            detail={"message_id": msg.message_id},
        )
        if any(isinstance(e, lifecycle.OpenFollowUp) for e in outcome.effects):
            parent = case_row
            case_row, decision = await self._new_case(session, msg, actor, now, parent=parent)
            activity = await self._activity(session, case_row, msg, actor, now)
            acked = await self._acknowledge(session, case_row, activity, decision, now)
            return IngestResult(
                "follow_up", case_row.number, activity.id, parent.number, queued_outgoing=acked
            )
        activity = await self._activity(session, case_row, msg, actor, now)
        if outcome.case.status is Status.REOPENED and outcome.changed:
            await self.routing.reroute(session, case_row, msg, now)
            lookups_of(session).case_open(case_row)
            return IngestResult("reopened", case_row.number, activity.id)
        return IngestResult("appended", case_row.number, activity.id)

    def _from_us(self, msg: InboundMessage) -> bool:
        sender = (msg.sender.email or "").lower()
        return msg.flags.from_us or bool(sender and sender in self.options.our_addresses)

    def _agent_answering(self, msg: InboundMessage, case_row: CaseRow | None) -> str | None:
        """The agent who wrote ``msg`` on a case (an answer from their own mail client, the
        support mailbox in copy), unless they are the case's customer themselves."""
        rules = self.rules()
        sender = (msg.sender.email or "").lower()
        if rules is None or not sender or case_row is None:
            return None
        if sender == (case_row.contact_email or "").lower():
            return None
        user = rules.directory.by_email(sender)
        return user.id if user is not None else None

    async def _ours(
        self,
        session: AsyncSession,
        delivery: Delivery,
        msg: InboundMessage,
        case_row: CaseRow | None,
        actor: Actor,
        now: datetime,
    ) -> IngestResult:
        """Mail from one of our own addresses: never a customer's, never answered."""
        if msg.message_id and lookups_of(session).holds_message(msg.message_id):
            return IngestResult("ignored", detail="one of our own messages came back")
        if msg.flags.auto_reply or msg.flags.bounce:
            if case_row is not None:
                return await self._automatic(session, msg, case_row, actor, now)
            why = "automatic mail from one of our own addresses that answers no case"
            return await self._unfiled(session, delivery, msg, why, AutomaticMail.RECORD, now)
        if case_row is None:
            why = "sent from one of our own addresses and answers no case"
            return await self._unfiled(session, delivery, msg, why, AutomaticMail.RECORD, now)
        agent = self._agent_answering(msg, case_row)
        return await self._agent_mail(
            session, msg, case_row, Actor.user(agent) if agent else actor, now
        )

    async def _agent_mail(
        self, session: AsyncSession, msg: InboundMessage, case_row: CaseRow, actor: Actor,
        now: datetime,
    ) -> IngestResult:  # fmt: skip
        """An agent's answer sent from their mail client (see the service's verb)."""
        activity = await self.service.record_answer_by_mail_in(
            session, case_row, msg, actor, **self._contents(session, msg), now=now
        )
        lookups_of(session).activity_added(activity.id, activity.message_id, case_row)
        return IngestResult("recorded", case_row.number, activity.id, "answer sent by mail")

    async def _unfiled(
        self,
        session: AsyncSession,
        delivery: Delivery,
        msg: InboundMessage,
        why: str,
        policy: AutomaticMail,
        now: datetime,
    ) -> IngestResult:
        """A message that answers no case and opens none: set aside (kept) or ignored."""
        if policy is AutomaticMail.IGNORE:
            log.info("message ignored by rule", reason=why, message_id=msg.message_id,
                     mailbox=msg.mailbox)  # fmt: skip
            return IngestResult("ignored", detail=why)
        await set_aside(session, self.quarantine_files, delivery, why, now, state=IGNORED)
        return IngestResult(SET_ASIDE, detail=why)

    async def _automatic(
        self,
        session: AsyncSession,
        msg: InboundMessage,
        case_row: CaseRow,
        actor: Actor,
        now: datetime,
    ) -> IngestResult:
        kind = "bounce" if msg.flags.bounce else "auto-reply"
        activity = await self.service.record_automatic_in(
            session, case_row, msg, actor, **self._contents(session, msg), now=now
        )
        lookups_of(session).activity_added(activity.id, activity.message_id, case_row)
        return IngestResult("recorded", case_row.number, activity.id, kind)

    def _decide(self, session: AsyncSession, msg: InboundMessage, now: datetime) -> RoutingDecision:
        """The routing decision for a message that opens a case."""
        lookups = lookups_of(session)
        has_open = lookups.has_open_cases(email=msg.sender.email, slack=msg.sender.slack_user)
        facts = ThreadFacts(is_reply=bool(msg.thread_ids), customer_has_open_cases=has_open)
        rules = self.rules()
        return evaluate(rules.rules, msg, facts, now) if rules else RoutingDecision()

    async def _new_case(
        self,
        session: AsyncSession,
        msg: InboundMessage,
        actor: Actor,
        now: datetime,
        parent: CaseRow | None = None,
        decision: RoutingDecision | None = None,
    ) -> tuple[CaseRow, RoutingDecision]:
        lookups = lookups_of(session)
        rules = self.rules()
        if decision is None:
            decision = self._decide(session, msg, now)
        # The number first: a transaction then always takes the case counter's lock before a
        # team's rotation lock, and two instances' batches cannot wait for each other in a
        # circle (one holding the counter, the other a rotation).
        number = await self.service.next_case_number(session)
        draft = replace(self.routing.draft(msg, decision, rules, now), number=number)
        draft = await self.routing.assignee(session, draft, decision, rules, now)
        _case, row = await self.service.create_in(
            session, draft, actor, parent_id=parent.id if parent else None, tags=decision.tags
        )
        if rules is not None:
            self.service.routed_in(
                session, row, Actor.rule(", ".join(decision.rules_fired) or "default"),
                rules_fired=decision.rules_fired, rules_version=decision.rules_version,
                tags=decision.tags, at=now,
            )  # fmt: skip
        await self.routing.after_routing(session, row, decision)
        lookups.case_added(row)
        return row, decision

    async def _acknowledge(
        self,
        session: AsyncSession,
        case_row: CaseRow,
        activity: ActivityRow,
        decision: RoutingDecision,
        now: datetime,
    ) -> bool:
        """Queue the acknowledgement of a new case from email, unless it must not be sent."""
        templates = self.options.acknowledgements
        if templates is None or not kind_of(activity.channel).acknowledges:
            return False
        lookups = lookups_of(session)
        sender = activity.sender or ""
        queued = await queue_acknowledgement(
            session,
            case_row,
            activity,
            template=templates.for_mailbox(activity.mailbox),
            our_address=self.options.our_addresses,
            now=now,
            service=self.service,
            limit=self.options.auto_answers_per_hour,
            skip=decision.skip_acknowledgement,
            recent_count=lookups.automatic_count(sender),
        )
        if queued is not None:
            lookups.answered(sender)
            lookups.activity_added(queued.id, queued.message_id, case_row)
        return queued is not None

    async def _activity(
        self,
        session: AsyncSession,
        case_row: CaseRow,
        msg: InboundMessage,
        actor: Actor,
        now: datetime,
    ) -> ActivityRow:
        """The activity of a customer's message taken in, through the case service."""
        activity = await self.service.record_incoming_in(
            session, case_row, msg, actor, **self._contents(session, msg), now=now
        )
        lookups_of(session).activity_added(activity.id, activity.message_id, case_row)
        return activity

    def _contents(self, session: AsyncSession, msg: InboundMessage) -> _Contents:
        """What the activity of ``msg`` holds besides the message: the new text, the files
        stored before the transaction, and a note on any attachment too large to keep."""
        stored = lookups_of(session).attachments
        files = [
            StoredFile(*stored[id(att)], att.filename, att.content_type, att.content_id, att.inline)
            for att in msg.attachments
            if self._keeps(att)  # else _oversize_note told the agent of one too large
        ]
        return {
            "new_text": new_text(msg),
            "files": files,
            "note": _oversize_note(msg, self.options.max_attachment_bytes),
        }

    def _keeps(self, att: Attachment) -> bool:
        """Whether an attachment is stored (not too large, and with its bytes at hand)."""
        return att.size <= self.options.max_attachment_bytes and (
            att.content is not None or att.path is not None
        )

    async def _store_attachments(
        self, messages: Sequence[InboundMessage]
    ) -> dict[int, tuple[str, int]]:
        """Store the attachments of a batch's messages, all at once, before its transaction.

        Each file is synced to disk before the transaction that refers to it commits; synced
        one after the other they kept the batch waiting a few ms each, while many syncs in
        flight together cost about one. Content-addressed: storing a file twice (a duplicate
        message, a retried batch) keeps one copy. Keys: ``id()`` of each attachment.
        """
        kept = [att for msg in messages for att in msg.attachments if self._keeps(att)]
        if not kept:
            return {}
        put = self.files.put_attachment
        stored = await asyncio.gather(*(asyncio.to_thread(put, att) for att in kept))
        return {id(att): found for att, found in zip(kept, stored, strict=True)}


def _oversize_note(msg: InboundMessage, limit: int) -> str:
    notes = [
        f"[attachment {att.filename!r} ({att.size / 2**20:.1f} MB) not kept: larger than the "
        f"{limit / 2**20:.0f} MB limit]"
        for att in msg.attachments
        if att.size > limit
    ]
    return "\n\n" + "\n".join(notes) if notes else ""
