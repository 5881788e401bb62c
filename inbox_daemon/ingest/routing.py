"""How routing decisions shape a case: a new case's fields and owner, a reopened case's move.

The router decides (pure); this applies the decision through the case service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.accounts import Account
from inbox_daemon.cases.directory import AssignmentStrategy
from inbox_daemon.cases.enums import (
    ActivityKind,
    Priority,
    Status,
)
from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.errors import CaseRuleError
from inbox_daemon.kinds import kind_of
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import InboundMessage, bare_subject
from inbox_daemon.router.assign import pick_assignee
from inbox_daemon.router.engine import RoutingDecision, ThreadFacts, explain
from inbox_daemon.router.loader import LoadedRules
from inbox_daemon.service import CaseService
from inbox_daemon.store import cases as repo
from inbox_daemon.store import intake
from inbox_daemon.store.tables import (
    CaseRow,
)

log = get_logger("inbox_daemon.ingest")

MAX_TITLE = 500
MAX_DESCRIPTION = 4000


class CaseRouting:
    """Routing decisions applied to cases, for the intake pipeline."""

    def __init__(self, service: CaseService, rules: Callable[[], LoadedRules | None]) -> None:
        self.service = service
        self.rules = rules

    def draft(
        self,
        msg: InboundMessage,
        decision: RoutingDecision,
        rules: LoadedRules | None,
        now: datetime,
        account: Account | None = None,
    ) -> Case:
        """The new case a decision makes of ``msg``; its SLA is the account's entitlement's
        when that names one (and counts in the entitlement's terms), else the decision's."""
        account_id = account.id if account is not None else None
        queue = decision.queue
        team = decision.team
        priority = decision.priority
        if rules is not None and queue in rules.directory.queues:
            q = rules.directory.queues[queue]
            team = team or q.team
            priority = priority or q.default_priority
        priority = priority or Priority.MEDIUM
        first_due = resolve_due = None
        sla = rules.policy_for(decision.sla, account_id) if rules is not None else None
        found = rules.sla_of(sla, account_id) if rules is not None and sla is not None else None
        if found is not None:
            policy, calendar = found
            due = policy.due_dates(now, priority, calendar)
            first_due, resolve_due = due.first_response_due, due.resolve_by_due
        text = new_text(msg)
        title = bare_subject(msg.subject)[:MAX_TITLE] or _first_line(text) or "(no subject)"
        contact = msg.reply_to[0] if msg.reply_to and msg.reply_to[0].email else msg.sender
        return Case(
            number="",
            title=title,
            origin=kind_of(msg.channel).origin,
            priority=priority,
            description=text[:MAX_DESCRIPTION],
            contact_email=(contact.email or "").lower() or None,
            contact_slack=msg.sender.slack_user,
            contact_name=(contact.name or msg.sender.name)[:200],
            category=decision.category,
            reason=decision.reason,
            queue=queue,
            owner_team=team,
            owner_user=decision.user,
            sla_policy=sla,
            first_response_due=first_due,
            resolve_by_due=resolve_due,
            account=account_id,
        )

    async def assignee(
        self,
        session: AsyncSession,
        draft: Case,
        decision: RoutingDecision,
        rules: LoadedRules | None,
        now: datetime,
    ) -> Case:
        if draft.owner_user is not None or draft.owner_team is None or rules is None:
            return draft
        team = rules.directory.teams.get(draft.owner_team)
        if team is None:
            return draft
        strategy = decision.strategy or team.strategy
        if strategy is AssignmentStrategy.NONE:
            return draft
        last = await intake.last_assigned(session, team.id)
        counts = (
            await repo.open_case_counts(session)
            if strategy is AssignmentStrategy.LEAST_OPEN
            else {}
        )
        user = pick_assignee(
            team, rules.directory, strategy, last_assigned=last, open_counts=counts
        )
        if user is None:
            return draft
        if strategy is AssignmentStrategy.ROUND_ROBIN:
            await intake.save_rotation(session, team.id, user, now)
        return replace(draft, owner_user=user)

    async def after_routing(
        self, session: AsyncSession, row: CaseRow, decision: RoutingDecision
    ) -> None:
        actor = Actor.rule(", ".join(decision.rules_fired) or "default")
        try:
            if decision.status is Status.ESCALATED:
                last = len(self.service.directory.levels) or None  # never past the last level
                level = min(row.support_level + 1, last) if last else None
                await self.service.change_in(session, row, lifecycle.Escalate(level=level), actor)
            elif decision.status in (Status.WAITING_FOR_RESPONSE, Status.ON_HOLD,
                                     Status.IN_PROGRESS):  # fmt: skip
                await self.service.change_in(
                    session, row, lifecycle.SetStatus(decision.status), actor
                )
        except CaseRuleError as exc:
            log.warning("routing status not applied", case=row.number, error=str(exc))
        for note in decision.notes:
            await self.service.internal_activity_in(
                session, row, actor, ActivityKind.NOTE, text=note
            )

    async def reroute(
        self, session: AsyncSession, row: CaseRow, msg: InboundMessage, now: datetime
    ) -> None:
        """A reopened case goes back through the rules: what a firing rule sets moves it.

        Fields that only the ``default`` filled in are left alone, so a reopened case stays in
        the queue it returns to unless a rule says otherwise.
        """
        rules = self.rules()
        if rules is None:
            return
        account = rules.accounts.accounts.get(row.account) if row.account else None
        has_entitlement = rules.accounts.entitlement_of(row.account) is not None
        exhausted = "exhausted" if row.entitlement_exhausted else "ok"
        facts = ThreadFacts(
            is_reply=True,
            is_reopen=True,
            current_priority=Priority(row.priority),
            account=row.account,
            tier=account.tier if account is not None else None,
            entitlement=exhausted if has_entitlement else None,
        )
        explanation = explain(rules.rules, msg, facts, now)
        decision = explanation.decision
        if not decision.rules_fired:
            return
        fired = set(decision.rules_fired)
        source = explanation.sources

        def by_rule(name: str) -> bool:
            return source.get(name) in fired

        queue = decision.queue if by_rule("queue") else None
        team_from_queue = queue is not None and source.get("team", "").startswith("queue ")
        team = decision.team if by_rule("team") or team_from_queue else None
        actor = Actor.rule(", ".join(decision.rules_fired))
        if queue or team:
            await self.service.change_in(
                session, row, lifecycle.Assign(team=team, queue=queue), actor,
                detail={"rules_version": decision.rules_version},
            )  # fmt: skip
        if by_rule("priority") and decision.priority and decision.priority.value != row.priority:
            await self.service.change_in(
                session, row, lifecycle.Edit({"priority": decision.priority}), actor
            )
        await self.after_routing(session, row, decision)


def new_text(msg: InboundMessage) -> str:
    """The text the customer just wrote: what the channel separated from the quoted history
    below a reply (the email parser does), or all of it."""
    return msg.new_text if msg.new_text is not None else msg.text


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:MAX_TITLE]
    return ""
