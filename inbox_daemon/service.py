"""The case service: the only code that writes cases and activities.

Each operation is one transaction: load the case (locked), apply a lifecycle event, write the
new snapshot, the audit events and the effects (settled activities, outgoing messages).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle, sla
from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.directory import Directory
from inbox_daemon.cases.enums import (
    ActivityKind,
    ActivityState,
    DeliveryState,
    Direction,
    Origin,
    Priority,
    Status,
)
from inbox_daemon.cases.model import Actor, Case, diff
from inbox_daemon.errors import CaseRuleError, NotFoundError
from inbox_daemon.messages import new_message_id
from inbox_daemon.store import cases as repo
from inbox_daemon.store import ids
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, AttachmentRow, AuditRow, CaseRow, ReceiptRow

Clock = Callable[[], datetime]
#: Where an agent's action came from: (channel, workspace, message id), e.g. a Slack message.
Source = tuple[str, str, str]
SlaLookup = Callable[[str], "tuple[sla.SlaPolicy, BusinessCalendar] | None"]


def _no_sla(_name: str) -> tuple[sla.SlaPolicy, BusinessCalendar] | None:
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredFile:
    """A file already in the attachment store, to go with an outgoing message."""

    sha256: str
    size: int
    filename: str
    content_type: str


@dataclass(frozen=True)
class CaseView:
    """A case with its activities and audit trail, for `cases show`."""

    case: Case
    activities: list[ActivityRow]
    audit: list[AuditRow]


def parse_contact(contact: str) -> tuple[str | None, str | None, str]:
    """``Ann <ann@example.com>``, ``ann@example.com`` or a Slack user id -> (email, slack, name)."""
    text = contact.strip()
    if not text:
        raise CaseRuleError("a case needs a customer contact (an email address or a Slack user)")
    name, address = parseaddr(text)
    if "@" in address and "." in address.rsplit("@", 1)[1]:
        return address.lower(), None, name
    if text.startswith(("U", "W")) and text.isalnum() and text.isupper():
        return None, text, ""
    raise CaseRuleError(
        f"contact {contact!r} is neither an email address nor a Slack user id (like U0123ABCD)"
    )


def _norm_number(number: str) -> str:
    return number.strip().upper()


class CaseService:
    def __init__(
        self,
        db: Database,
        *,
        directory: Directory | None = None,
        clock: Clock = utcnow,
        message_domain: str = "inbox-daemon.invalid",
        auto_close_after: timedelta = lifecycle.DEFAULT_AUTO_CLOSE_AFTER,
        on_outgoing: Callable[[], None] | None = None,
        sla_lookup: SlaLookup = _no_sla,
    ) -> None:
        self.db = db
        #: The SLA policy (and its calendar) of a name from rules.yaml, or None.
        self.sla_lookup = sla_lookup
        #: Called after a transaction that queued an outgoing message commits (wakes the outbox).
        self.on_outgoing = on_outgoing
        self.directory = directory or Directory()
        self.clock = clock
        self.message_domain = message_domain
        self.auto_close_after = auto_close_after

    # --- reading ---------------------------------------------------------------------------

    async def get(self, number: str) -> Case:
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, _norm_number(number))
            return repo.to_domain(row, await repo.parent_number(session, row))

    async def show(self, number: str) -> CaseView:
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, _norm_number(number))
            case = repo.to_domain(row, await repo.parent_number(session, row))
            return CaseView(
                case,
                await repo.activities_of(session, row.id),
                await repo.audit_of(session, row.id),
            )

    async def find(
        self,
        *,
        status: Sequence[Status] = (),
        queue: str | None = None,
        owner: str | None = None,
        limit: int = 200,
    ) -> list[Case]:
        async with self.db.transaction() as session:
            rows = await repo.list_cases(
                session, status=status, queue=queue, owner=owner, limit=limit
            )
            return [repo.to_domain(row) for row in rows]

    # --- creating --------------------------------------------------------------------------

    async def create(
        self,
        *,
        title: str,
        contact: str,
        actor: Actor,
        priority: Priority = Priority.MEDIUM,
        origin: Origin = Origin.PHONE,
        description: str = "",
        queue: str | None = None,
    ) -> Case:
        """An agent logs a case by hand (a phone call, as in the seeds' New Case form)."""
        if not title.strip():
            raise CaseRuleError("a case needs a title (--title)")
        email, slack, name = parse_contact(contact)
        if queue is not None:
            self.directory.queue(queue)
        async with self.db.transaction() as session:
            case, _row = await self.create_in(
                session,
                Case(
                    number="",
                    title=title.strip(),
                    priority=priority,
                    origin=origin,
                    description=description,
                    contact_email=email,
                    contact_slack=slack,
                    contact_name=name,
                    queue=queue,
                ),
                actor,
            )
            return case

    async def create_in(
        self,
        session: AsyncSession,
        draft: Case,
        actor: Actor,
        parent_id: int | None = None,
        tags: Sequence[str] = (),
    ) -> tuple[Case, CaseRow]:
        """Create a case inside the caller's transaction (used by ingestion too); a draft that
        has a number already (from :func:`repo.next_case_number`, earlier in the same
        transaction) keeps it."""
        now = self.clock()
        number = draft.number or await repo.next_case_number(session)
        outcome = lifecycle.new_case(replace(draft, number=number, created_at=now), now)
        row = repo.new_row(outcome.case, parent_id)
        row.id = await ids.new_id(session, CaseRow)  # written with the transaction's next flush
        row.tags = sorted(set(tags))
        session.add(row)
        repo.audit(session, row.id, at=now, actor=actor, action="create", changes=outcome.changes)
        return outcome.case, row

    # --- changing --------------------------------------------------------------------------

    async def change(self, number: str, event: lifecycle.Event, actor: Actor) -> lifecycle.Outcome:
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, _norm_number(number), for_update=True)
            return await self.change_in(session, row, event, actor)

    async def change_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        event: lifecycle.Event,
        actor: Actor,
        detail: dict[str, object] | None = None,
    ) -> lifecycle.Outcome:
        """Apply a lifecycle event to a locked case row inside the caller's transaction."""
        now = self.clock()
        open_ids = (
            await repo.open_activity_ids(session, row.id)
            if lifecycle.needs_open_activities(event)
            else ()
        )
        ctx = lifecycle.Context(now=now, open_activities=open_ids)
        case = repo.to_domain(row, await repo.parent_number(session, row))
        outcome = await self._with_sla(session, row, case, lifecycle.apply(case, event, ctx), now)
        repo.write_back(row, outcome.case)
        for effect in outcome.effects:
            if isinstance(effect, lifecycle.SettleActivities):
                await repo.settle_activities(session, effect.activity_ids, effect.state, now)
                repo.audit(
                    session,
                    row.id,
                    at=now,
                    actor=actor,
                    action=f"activities_{effect.state.value}",
                    detail={"activities": list(effect.activity_ids)},
                )
        if outcome.changes or event.action not in ("customer_replied", "agent_replied"):
            repo.audit(
                session,
                row.id,
                at=now,
                actor=actor,
                action=outcome.action,
                changes=outcome.changes,
                detail={k: v for k, v in (detail or {}).items() if v is not None},
            )
        return outcome

    async def _with_sla(
        self,
        session: AsyncSession,
        row: CaseRow,
        before: Case,
        outcome: lifecycle.Outcome,
        now: datetime,
    ) -> lifecycle.Outcome:
        """Keep the due dates true to the SLA: pauses stop the clock, a new priority recounts."""
        after = outcome.case
        found = self.sla_lookup(after.sla_policy) if after.sla_policy else None
        if found is None:
            return outcome
        policy, calendar = found
        if after.priority is not before.priority:
            transitions = await repo.status_history(session, row.id)
            due = sla.recalculate(
                policy,
                after.created_at or now,
                after.priority,
                calendar,
                sla.pauses_from_history(transitions, now),
            )
            after = replace(
                after, first_response_due=due.first_response_due, resolve_by_due=due.resolve_by_due
            )
        else:
            for effect in outcome.effects:
                if isinstance(effect, lifecycle.Resumed):
                    after = replace(
                        after,
                        first_response_due=_extend(
                            after.first_response_due, effect, policy, calendar
                        ),
                        resolve_by_due=_extend(after.resolve_by_due, effect, policy, calendar),
                    )
        if after == outcome.case:
            return outcome
        return replace(outcome, case=after, changes=diff(before, after))

    async def assign(
        self,
        number: str,
        actor: Actor,
        *,
        user: str | None = None,
        team: str | None = None,
        queue: str | None = None,
    ) -> lifecycle.Outcome:
        if user is not None:
            self.directory.active_user(user)
        if team is not None:
            self.directory.team(team)
        if queue is not None:
            self.directory.queue(queue)
        return await self.change(number, lifecycle.Assign(user=user, team=team, queue=queue), actor)

    async def pick(self, number: str, user: str, actor: Actor | None = None) -> lifecycle.Outcome:
        """Queue Pick: the user works the case. They must be a member of the queue's team."""
        self.directory.active_user(user)
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, _norm_number(number), for_update=True)
            if row.queue is not None and not self.directory.may_work(user, row.queue):
                raise CaseRuleError(
                    f"{user} cannot pick {row.number}: not a member of queue {row.queue}'s team"
                )
            return await self.change_in(
                session, row, lifecycle.Pick(user), actor or Actor.user(user)
            )

    async def resolve(
        self, number: str, resolution: str, actor: Actor, *, cancel_open_activities: bool = False
    ) -> lifecycle.Outcome:
        policy: lifecycle.OpenActivityPolicy = "cancel" if cancel_open_activities else "fail"
        return await self.change(number, lifecycle.Resolve(resolution, policy), actor)

    async def close_resolved(self, actor: Actor | None = None) -> list[str]:
        """The auto-close job: close every case resolved longer ago than the waiting period."""
        actor = actor or Actor.system("auto-close")
        cutoff = self.clock() - self.auto_close_after
        async with self.db.transaction() as session:
            numbers = await repo.resolved_before(session, cutoff)
        closed = []
        for number in numbers:
            async with self.db.transaction() as session:
                row = await repo.get_case_row(session, number, for_update=True)
                if not lifecycle.due_for_auto_close(
                    repo.to_domain(row), self.clock(), self.auto_close_after
                ):
                    continue  # changed since we looked
                await self.change_in(session, row, lifecycle.Close(), actor)
                closed.append(number)
        return closed

    # --- activities ------------------------------------------------------------------------

    def new_message_id(self, number: str) -> str:
        return new_message_id(number, self.message_domain)

    async def note(
        self, number: str, text: str, actor: Actor, *, source: Source | None = None
    ) -> ActivityRow:
        """An internal note: stays on the case, never reaches the customer.

        ``source`` (channel, workspace, message id) makes it idempotent: the same source
        message noted twice (a retried Slack event) gives the first note back.
        """
        if not text.strip():
            raise CaseRuleError("a note needs some text")
        return await self._once(source, lambda session: self._note_in(session, number, text, actor))

    async def _note_in(
        self, session: AsyncSession, number: str, text: str, actor: Actor
    ) -> ActivityRow:
        row = await repo.get_case_row(session, _norm_number(number), for_update=True)
        await self.change_in(session, row, lifecycle.AgentReplied(internal=True), actor)
        return await self.internal_activity_in(session, row, actor, ActivityKind.NOTE, text=text)

    async def _once(
        self,
        source: Source | None,
        work: Callable[[AsyncSession], Awaitable[ActivityRow]],
    ) -> ActivityRow:
        """Run ``work`` in a transaction, at most once per ``source`` (kept as a receipt)."""
        if source is None:
            async with self.db.transaction() as session:
                return await work(session)
        try:
            async with self.db.transaction() as session:
                done = await _done_before(session, source)
                if done is not None:
                    return done
                activity = await work(session)
                session.add(
                    ReceiptRow(
                        channel=source[0], mailbox=source[1], external_id=source[2],
                        activity_id=activity.id, outcome="agent", created_at=self.clock(),
                    )
                )  # fmt: skip
                await session.flush()
                return activity
        except IntegrityError:
            async with self.db.transaction() as session:  # a twin committed first
                done = await _done_before(session, source)
            if done is None:
                raise
            return done

    async def internal_activity_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        actor: Actor,
        kind: ActivityKind,
        *,
        text: str = "",
        subject: str = "",
        state: ActivityState = ActivityState.COMPLETED,
    ) -> ActivityRow:
        """A note or task on the case, audited, inside the caller's transaction."""
        now = self.clock()
        activity = ActivityRow(
            id=await ids.new_id(session, ActivityRow),
            case_id=row.id,
            kind=kind.value,
            direction=Direction.INTERNAL.value,
            state=state.value,
            subject=subject,
            body_text=text,
            actor=str(actor),
            created_at=now,
            updated_at=now,
        )
        session.add(activity)
        detail: dict[str, object] = {"activity": activity.id}
        if subject:
            detail["subject"] = subject
        repo.audit(session, row.id, at=now, actor=actor, action=kind.value, detail=detail)
        return activity

    async def reply(
        self,
        number: str,
        text: str,
        actor: Actor,
        *,
        source: Source | None = None,
        files: Sequence[StoredFile] = (),
    ) -> ActivityRow:
        """An agent's answer: an outgoing activity, pending delivery, its Message-ID fixed now.

        ``source`` makes it idempotent, as for :meth:`note`. ``files`` (already in the file
        store) go with an answer by email; an answer in Slack carries text only.
        """
        if not text.strip():
            raise CaseRuleError("a reply needs some text")
        activity = await self._once(
            source, lambda session: self._reply_in(session, number, text, actor, files)
        )
        self.outgoing_queued()
        return activity

    async def _reply_in(
        self,
        session: AsyncSession,
        number: str,
        text: str,
        actor: Actor,
        files: Sequence[StoredFile] = (),
    ) -> ActivityRow:
        row = await repo.get_case_row(session, _norm_number(number), for_update=True)
        await self.change_in(session, row, lifecycle.AgentReplied(), actor)
        activity = await self.outgoing_in(session, row, text, actor)
        detail: dict[str, object] = {"activity": activity.id, "message_id": activity.message_id}
        if files and activity.kind == ActivityKind.EMAIL.value:
            session.add_all(
                AttachmentRow(
                    activity_id=activity.id, sha256=f.sha256, size=f.size,
                    filename=f.filename[:255], content_type=f.content_type[:255],
                )
                for f in files
            )  # fmt: skip
            detail["files"] = [f.filename for f in files]
        repo.audit(
            session, row.id, at=activity.created_at, actor=actor, action="reply", detail=detail
        )
        return activity

    def outgoing_queued(self) -> None:
        """Tell the outbox (if any) that a committed transaction queued a message."""
        if self.on_outgoing is not None:
            self.on_outgoing()

    async def outgoing_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        text: str,
        actor: Actor,
        *,
        automatic: bool = False,
    ) -> ActivityRow:
        """Queue an outgoing message to the case's customer through the channel it came from."""
        now = self.clock()
        last_in = await repo.last_incoming(session, row.id)
        if row.origin == Origin.SLACK.value or (row.contact_email is None and row.contact_slack):
            if last_in is None or last_in.slack_channel is None:
                raise CaseRuleError(f"case {row.number} has no Slack conversation to answer in")
            kind, channel = ActivityKind.SLACK_MESSAGE, "slack"
            recipients = [row.contact_slack or ""]
        elif row.contact_email:
            kind, channel = ActivityKind.EMAIL, "email"
            recipients = [row.contact_email]
        else:
            raise CaseRuleError(f"case {row.number} has no customer address to reply to")
        references: list[str] = []
        in_reply_to = None
        if last_in is not None and last_in.message_id:
            in_reply_to = last_in.message_id
            references = [*last_in.references, last_in.message_id]
        subject = last_in.subject if last_in is not None and last_in.subject else row.title
        activity = ActivityRow(
            case_id=row.id,
            kind=kind.value,
            direction=Direction.OUTGOING.value,
            state=ActivityState.COMPLETED.value,
            channel=channel,
            mailbox=last_in.mailbox if last_in is not None else None,
            subject=subject,
            body_text=text,
            recipients=recipients,
            message_id=self.new_message_id(row.number),
            in_reply_to=in_reply_to,
            references=references,
            slack_channel=last_in.slack_channel if last_in is not None else None,
            slack_thread_ts=(last_in.slack_thread_ts or last_in.slack_ts) if last_in else None,
            automatic=automatic,
            actor=str(actor),
            delivery_state=DeliveryState.PENDING.value,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(activity)
        await session.flush()
        return activity

    async def add_task(self, number: str, subject: str, actor: Actor) -> ActivityRow:
        """An open task on the case (it keeps the case from being resolved until settled)."""
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, _norm_number(number), for_update=True)
            lifecycle.require_editable(repo.to_domain(row), "add task")
            return await self.internal_activity_in(
                session, row, actor, ActivityKind.TASK, subject=subject, state=ActivityState.OPEN
            )


def _extend(
    due: datetime | None,
    pause: lifecycle.Resumed,
    policy: sla.SlaPolicy,
    calendar: BusinessCalendar,
) -> datetime | None:
    if due is None:
        return None
    return sla.extend_for_pause(
        due, pause.paused_from, pause.resumed_at, calendar, policy.business_time
    )


async def _done_before(session: AsyncSession, source: Source) -> ActivityRow | None:
    """The activity a source message already made, if it made one."""
    stmt = (
        select(ActivityRow)
        .join(ReceiptRow, ReceiptRow.activity_id == ActivityRow.id)
        .where(
            ReceiptRow.channel == source[0],
            ReceiptRow.mailbox == source[1],
            ReceiptRow.external_id == source[2],
        )
    )
    return (await session.execute(stmt)).scalar_one_or_none()


__all__ = ["CaseService", "CaseView", "NotFoundError", "parse_contact", "utcnow"]
