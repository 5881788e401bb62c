"""Where a message taken in goes: threading, then the case it joins, opens or reopens.

:meth:`Placement.place` finds the case a message belongs to (by Message-ID, Slack thread or
case number) and decides: a new case (routed, acknowledged), an activity on the case (which
may reopen it or open a follow-up), an agent's answer sent from their mail client, an
automatic mail recorded on the case it answers, or — answering nothing and opening nothing —
set aside or ignored as rules.yaml's ``automatic_mail`` says. Every write goes through the case
service, inside the transaction :class:`~inbox_daemon.ingest.pipeline.Ingestor` holds.

Loop safety and fidelity: no heuristic makes a mail vanish. Auto-replies and bounces (by their
headers) are recorded on the case they answer and never reopen it; a subject that merely looks
automatic only keeps the mail from being answered. Mail from our own addresses is never a
customer's: an agent's answer from their mail client is recorded on its case as theirs, one of
our own messages coming back is ignored, the rest is set aside.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.acknowledge import queue_acknowledgement
from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.accounts import Account
from inbox_daemon.cases.enums import AutomaticMail, Status
from inbox_daemon.cases.model import Actor, find_case_number
from inbox_daemon.channels.base import Delivery, IngestResult
from inbox_daemon.ingest.lookups import lookups_of
from inbox_daemon.ingest.routing import MAX_TITLE, CaseRouting, new_text
from inbox_daemon.ingest.setaside import IGNORED, set_aside
from inbox_daemon.kinds import kind_of
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import Attachment, InboundMessage, bare_subject
from inbox_daemon.router.engine import RoutingDecision, ThreadFacts, evaluate
from inbox_daemon.router.loader import LoadedRules
from inbox_daemon.service import CaseService, EntitlementCheck, IncomingContents, StoredFile
from inbox_daemon.store import intake
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import ActivityRow, CaseRow

if TYPE_CHECKING:
    from inbox_daemon.ingest.pipeline import IntakeOptions

#: Outcomes of a message that made no activity: answered nothing and set aside, or ignored.
SET_ASIDE = "set_aside"

log = get_logger("inbox_daemon.ingest")


def keeps(att: Attachment, limit: int) -> bool:
    """Whether an attachment is stored (not too large, and with its bytes at hand)."""
    return att.size <= limit and (att.content is not None or att.path is not None)


class Placement:
    """The decisions of intake for one message, inside the caller's transaction."""

    def __init__(
        self,
        service: CaseService,
        rules: Callable[[], LoadedRules | None],
        options: IntakeOptions,
        quarantine: FileStore,
    ) -> None:
        self.service = service
        self.rules = rules
        self.options = options
        self.quarantine_files = quarantine
        self.routing = CaseRouting(service, rules)

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

    async def place(
        self,
        session: AsyncSession,
        delivery: Delivery,
        msg: InboundMessage,
        now: datetime,
        as_case: bool = False,
    ) -> IngestResult:
        """Where the message goes; ``as_case``: a person asked for a case of it (see
        :meth:`.Ingestor.retry_quarantined`), whatever it is."""
        actor = Actor.channel(f"{msg.channel}:{msg.mailbox}")
        case_row = await self._thread(session, msg)
        automatic = msg.flags.auto_reply or msg.flags.bounce
        if not as_case and self.from_us(msg):
            return await self._ours(session, delivery, msg, case_row, actor, now)
        agent = self._agent_answering(msg, case_row)
        if agent is not None and not automatic and case_row is not None:
            return await self._agent_mail(session, msg, case_row, Actor.user(agent), now)
        if automatic and case_row is not None:
            return await self._automatic(session, msg, case_row, actor, now)
        if case_row is None:
            decided = await self._decide(session, msg, now)
            decision = decided[0]
            if automatic and not as_case:
                policy = decision.automatic_mail or AutomaticMail.RECORD
                kind = "bounce" if msg.flags.bounce else "auto-reply"
                if policy is not AutomaticMail.CASE:
                    why = f"{kind} that answers none of our messages"
                    return await self._unfiled(session, delivery, msg, why, policy, now)
            case_row, decision = await self._new_case(session, msg, actor, now, decided=decided)
            activity = await self._activity(session, case_row, msg, actor, now)
            acked = await self._acknowledge(session, case_row, activity, decision, now)
            told = await self._tell_owner(session, case_row, decision)
            return IngestResult(
                "created", case_row.number, activity.id, queued_outgoing=acked or told
            )
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
            told = await self._tell_owner(session, case_row, decision)
            return IngestResult(
                "follow_up", case_row.number, activity.id, parent.number,
                queued_outgoing=acked or told,
            )  # fmt: skip
        activity = await self._activity(session, case_row, msg, actor, now)
        if outcome.case.status is Status.REOPENED and outcome.changed:
            await self.routing.reroute(session, case_row, msg, now)
            lookups_of(session).case_open(case_row)
            told = bool(self.service.notify_channels)  # the team is told it was reopened
            return IngestResult("reopened", case_row.number, activity.id, queued_outgoing=told)
        return IngestResult("appended", case_row.number, activity.id)

    def from_us(self, msg: InboundMessage) -> bool:
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
            session, case_row, msg, actor, self._contents(session, msg), now=now
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
            session, case_row, msg, actor, self._contents(session, msg), now=now
        )
        lookups_of(session).activity_added(activity.id, activity.message_id, case_row)
        return IngestResult("recorded", case_row.number, activity.id, kind)

    async def _decide(
        self, session: AsyncSession, msg: InboundMessage, now: datetime
    ) -> tuple[RoutingDecision, Account | None, EntitlementCheck | None]:
        """The routing decision for a message that opens a case, with the sender's account
        and what its entitlement has left (routing conditions test both)."""
        lookups = lookups_of(session)
        has_open = lookups.has_open_cases(email=msg.sender.email, slack=msg.sender.slack_user)
        rules = self.rules()
        account = (
            rules.accounts.match(email=msg.sender.email, slack_team=msg.sender.slack_team)
            if rules is not None
            else None
        )
        check = (
            await self.service.entitlement_check_in(session, account.id, now)
            if account is not None
            else None
        )
        facts = ThreadFacts(
            is_reply=bool(msg.thread_ids),
            customer_has_open_cases=has_open,
            account=account.id if account is not None else None,
            tier=account.tier if account is not None else None,
            entitlement=check.state.value if check is not None else None,
        )
        decision = evaluate(rules.rules, msg, facts, now) if rules else RoutingDecision()
        return decision, account, check

    async def _new_case(
        self,
        session: AsyncSession,
        msg: InboundMessage,
        actor: Actor,
        now: datetime,
        parent: CaseRow | None = None,
        decided: tuple[RoutingDecision, Account | None, EntitlementCheck | None] | None = None,
    ) -> tuple[CaseRow, RoutingDecision]:
        lookups = lookups_of(session)
        rules = self.rules()
        if decided is None:
            decided = await self._decide(session, msg, now)
        decision, account, check = decided
        # The number first: a transaction then always takes the case counter's lock before a
        # team's rotation lock, and two instances' batches cannot wait for each other in a
        # circle (one holding the counter, the other a rotation).
        number = await self.service.next_case_number(session)
        draft = replace(self.routing.draft(msg, decision, rules, now, account), number=number)
        draft = await self.routing.assignee(session, draft, decision, rules, now)
        _case, row = await self.service.create_in(
            session, draft, actor, parent_id=parent.id if parent else None, tags=decision.tags,
            entitlement=check,
        )  # fmt: skip
        subject = bare_subject(msg.subject)
        if len(subject) > MAX_TITLE:  # the activity keeps it whole
            detail = {"subject_length": len(subject), "title_length": len(draft.title)}
            self.service.audit_in(session, row, actor, "title_shortened", at=now, detail=detail)
        if rules is not None:
            self.service.routed_in(
                session, row, Actor.rule(", ".join(decision.rules_fired) or "default"),
                rules_fired=decision.rules_fired, rules_version=decision.rules_version,
                tags=decision.tags, at=now,
            )  # fmt: skip
        await self.routing.after_routing(session, row, decision)
        lookups.case_added(row)
        return row, decision

    async def _tell_owner(
        self, session: AsyncSession, row: CaseRow, decision: RoutingDecision
    ) -> bool:
        """The agent a new case was routed to is told, by the rule that chose them."""
        if row.owner_user is None:
            return False
        rule = Actor.rule(", ".join(decision.rules_fired) or "default")
        effect = lifecycle.Notify(row.owner_user, None, "routed")
        return bool(await self.service.notify_in(session, row, [effect], rule))

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
            session, case_row, msg, actor, self._contents(session, msg), now=now
        )
        lookups_of(session).activity_added(activity.id, activity.message_id, case_row)
        return activity

    def _contents(self, session: AsyncSession, msg: InboundMessage) -> IncomingContents:
        """What the activity of ``msg`` holds besides the message: the new text, the files
        stored before the transaction, and a note on any attachment too large to keep."""
        stored = lookups_of(session).attachments
        files = [
            StoredFile(*stored[id(att)], att.filename, att.content_type, att.content_id, att.inline)
            for att in msg.attachments
            if keeps(
                att, self.options.max_attachment_bytes
            )  # else _oversize_note told the agent of one too large
        ]
        return IncomingContents(
            new_text(msg), files, _oversize_note(msg, self.options.max_attachment_bytes)
        )


def _oversize_note(msg: InboundMessage, limit: int) -> str:
    notes = [
        f"[attachment {att.filename!r} ({att.size / 2**20:.1f} MB) not kept: larger than the "
        f"{limit / 2**20:.0f} MB limit]"
        for att in msg.attachments
        if att.size > limit
    ]
    return "\n\n" + "\n".join(notes) if notes else ""
