"""The case service's activity verbs: notes, agents' answers, automatic answers, and a
customer's edit of a message taken in (tasks and phone calls: :mod:`.tasks`).

Every outgoing activity is built here, by :meth:`ActivityVerbs.queue_outgoing_in`: pending
delivery, its Message-ID fixed when it is queued, answering the customer's last message, its
References kept whole (the channel that sends it trims them to what its protocol wants).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import (
    ActivityKind,
    ActivityState,
    DeliveryState,
    Direction,
)
from inbox_daemon.cases.model import Actor
from inbox_daemon.errors import CaseRuleError
from inbox_daemon.kinds import ChannelKindSpec, UnknownChannelKind, kind_of, kinds
from inbox_daemon.service import records
from inbox_daemon.service.changes import ChangeVerbs
from inbox_daemon.service.core import Source, StoredFile, norm_number
from inbox_daemon.store import cases as repo
from inbox_daemon.store import ids
from inbox_daemon.store import slack as slack_store
from inbox_daemon.store.tables import ActivityRow, AttachmentRow, CaseRow, ReceiptRow


class ActivityVerbs(ChangeVerbs):
    # --- internal activities -------------------------------------------------------------

    async def note(
        self,
        number: str,
        text: str,
        actor: Actor,
        *,
        source: Source | None = None,
        spent_minutes: int | None = None,
    ) -> ActivityRow:
        """An internal note: stays on the case, never reaches the customer; with the time the
        work it records took, when given.

        ``source`` (channel, workspace, message id) makes it idempotent: the same source
        message noted twice (a retried Slack event) gives the first note back.
        """
        if not text.strip():
            raise CaseRuleError("a note needs some text")
        return await self._once(
            source, lambda session: self._note_in(session, number, text, actor, spent_minutes)
        )

    async def _note_in(
        self,
        session: AsyncSession,
        number: str,
        text: str,
        actor: Actor,
        spent_minutes: int | None = None,
    ) -> ActivityRow:
        row = await repo.get_case_row(session, norm_number(number), for_update=True)
        await self.change_in(session, row, lifecycle.AgentReplied(internal=True), actor)
        return await records.logged_activity_in(
            session, row, actor, ActivityKind.NOTE, now=self.clock(), text=text,
            spent_minutes=spent_minutes,
        )  # fmt: skip

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
        return await records.logged_activity_in(
            session, row, actor, kind, now=self.clock(), text=text, subject=subject, state=state
        )

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

    # --- answers to the customer ---------------------------------------------------------

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
        row = await repo.get_case_row(session, norm_number(number), for_update=True)
        await self.change_in(session, row, lifecycle.AgentReplied(), actor)
        activity = await self.outgoing_in(session, row, text, actor)
        detail: dict[str, object] = {"activity": activity.id, "message_id": activity.message_id}
        if files and kind_of(activity.channel).carries_files:
            add_files(session, activity.id, files)
            detail["files"] = [f.filename for f in files]
        repo.audit(
            session, row.id, at=activity.created_at, actor=actor, action="reply", detail=detail
        )
        return activity

    async def outgoing_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        text: str,
        actor: Actor,
        *,
        automatic: bool = False,
    ) -> ActivityRow:
        """Queue an outgoing message to the case's customer through the channel of their last
        message (or the case's origin, or the first kind the case has a contact for)."""
        last_in = await repo.last_incoming(session, row.id)
        spec = _answering_kind(row, last_in)
        if spec.needs_conversation and (last_in is None or last_in.slack_channel is None):
            raise CaseRuleError(
                f"case {row.number} has no {spec.name.capitalize()} conversation to answer in"
            )
        recipient = _contact(row, spec)
        if not recipient:
            raise CaseRuleError(f"case {row.number} has no customer address to reply to")
        activity = await self.queue_outgoing_in(
            session, row, last_in, text, actor, kind=spec.activity_kind, channel=spec.name,
            recipients=[recipient], automatic=automatic,
            cc=[c for c in row.cc_contacts if c != recipient] if spec.contact == "email" else [],
        )  # fmt: skip
        await session.flush()
        return activity

    async def queue_outgoing_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        answering: ActivityRow | None,
        text: str,
        actor: Actor,
        *,
        kind: ActivityKind,
        channel: str,
        recipients: Sequence[str],
        cc: Sequence[str] = (),
        automatic: bool = False,
        automatic_to: str | None = None,
        now: datetime | None = None,
    ) -> ActivityRow:
        """The one builder of outgoing activities: a message to the customer answering
        ``answering`` (their last message, or None), pending delivery, in the caller's
        transaction. ``automatic_to``: the address an automatic answer counts against."""
        now = now or self.clock()
        references: list[str] = []
        in_reply_to = None
        if answering is not None and answering.message_id:
            in_reply_to = answering.message_id
            references = [*answering.references, answering.message_id]
        elif answering is not None:
            references = list(answering.references)
        subject = answering.subject if answering is not None and answering.subject else row.title
        activity = ActivityRow(
            id=await ids.new_id(session, ActivityRow),
            case_id=row.id,
            kind=kind.value,
            direction=Direction.OUTGOING.value,
            state=ActivityState.COMPLETED.value,
            channel=channel,
            mailbox=answering.mailbox if answering is not None else None,
            subject=subject,
            body_text=text,
            recipients=list(recipients),
            cc=list(cc),
            automatic_to=automatic_to,
            message_id=self.new_message_id(row.number),
            in_reply_to=in_reply_to,
            references=references,
            slack_channel=answering.slack_channel if answering is not None else None,
            slack_thread_ts=(
                (answering.slack_thread_ts or answering.slack_ts) if answering is not None else None
            ),
            automatic=automatic,
            actor=str(actor),
            delivery_state=DeliveryState.PENDING.value,
            next_attempt_at=now,
            created_at=now,
            updated_at=now,
        )
        session.add(activity)
        return activity

    # --- a customer's edit -----------------------------------------------------------------

    async def revise(self, channel: str, ts: str, *, deleted: bool, text: str) -> str | None:
        """Record a customer's edit or deletion of a Slack message on the activity it made.

        The activity keeps every earlier text in ``flags["revisions"]``; an edit replaces its
        text, a deletion marks it deleted. Returns the case number, or None if no activity has
        that ts.
        """
        at = self.clock()
        async with self.db.transaction() as session:
            found = await slack_store.incoming_by_ts(session, channel, ts)
            if found is None:
                return None
            activity, number = found
            revisions = [*activity.flags.get("revisions", [])]
            revisions.append({"at": at.isoformat(), "kind": "deleted" if deleted else "edited",
                              "previous_text": activity.body_text})  # fmt: skip
            flags = {**activity.flags, "revisions": revisions}
            if deleted:
                flags["deleted"] = True
            else:
                activity.body_text = text
                activity.body_new = text
            activity.flags = flags
            activity.updated_at = at
            return number


def _answering_kind(row: CaseRow, last_in: ActivityRow | None) -> ChannelKindSpec:
    for name in (last_in.channel if last_in is not None else None, row.origin):
        try:
            return kind_of(name)
        except UnknownChannelKind:
            continue
    for spec in kinds():  # a case logged by hand: the first way the customer can be reached
        if _contact(row, spec):
            return spec
    raise CaseRuleError(f"case {row.number} has no customer address to reply to")


def _contact(row: CaseRow, spec: ChannelKindSpec) -> str | None:
    return row.contact_slack if spec.contact == "slack" else row.contact_email


def add_files(session: AsyncSession, activity_id: int, files: Sequence[StoredFile]) -> None:
    """The attachment rows of an activity's files (already in the file store)."""
    session.add_all(
        AttachmentRow(
            activity_id=activity_id, sha256=f.sha256, size=f.size,
            filename=f.filename[:255], content_type=f.content_type[:255],
            content_id=f.content_id, inline=f.inline,
        )
        for f in files
    )  # fmt: skip


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
