"""The case service's verbs that create a case or change its fields and status.

Each public verb is one transaction: load the case (locked), apply a lifecycle event, write the
new snapshot, the audit events and the effects (settled activities). The ``…_in`` verbs do the
same inside the caller's transaction (intake's batch, another verb).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle, sla, tasks
from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.enums import Origin, Priority
from inbox_daemon.cases.model import Actor, Case, diff
from inbox_daemon.errors import CaseRuleError
from inbox_daemon.service import allowances, records
from inbox_daemon.service.core import EntitlementCheck, ServiceCore, norm_number, parse_contact
from inbox_daemon.store import cases as repo
from inbox_daemon.store import ids
from inbox_daemon.store.tables import CaseRow


class ChangeVerbs(ServiceCore):
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
        account = self.accounts.match(email=email)
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
                    account=account.id if account is not None else None,
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
        entitlement: EntitlementCheck | None = None,
    ) -> tuple[Case, CaseRow]:
        """Create a case inside the caller's transaction (used by ingestion too); a draft that
        has a number already (from :meth:`next_case_number`, earlier in the same transaction)
        keeps it.

        A case of an account with an allowance of cases takes one unit of it, in this
        transaction and once (the unit's row is keyed by the case); with none left (of cases or
        hours) the case is created all the same, flagged ``entitlement_exhausted``.
        ``entitlement``: what the caller found with :meth:`entitlement_check_in` in this
        transaction (routing tested it); else it is looked up here.
        """
        now = self.clock()
        number = draft.number or await repo.next_case_number(session)
        check = entitlement
        if check is None and draft.account is not None:
            check = await self.entitlement_check_in(session, draft.account, now)
        exhausted = check is not None and check.exhausted
        draft = replace(draft, number=number, created_at=now, entitlement_exhausted=exhausted)
        outcome = lifecycle.new_case(draft, now, diagnostics=self.diagnostic_tasks)
        row = repo.new_row(outcome.case, parent_id)
        row.id = await ids.new_id(session, CaseRow)  # written with the transaction's next flush
        row.tags = sorted(set(tags))
        session.add(row)
        repo.audit(session, row.id, at=now, actor=actor, action="create", changes=outcome.changes)
        if check is not None and check.usage is not None:
            allowances.use_in(session, row, check, actor, now)
        await records.carry_out_in(session, row, outcome.effects, actor, now)
        return outcome.case, row

    async def entitlement_check_in(
        self, session: AsyncSession, account: str, now: datetime | None = None
    ) -> EntitlementCheck | None:
        """What a new case of ``account`` would find, in the caller's transaction: None for
        an account without an entitlement (or no longer configured)."""
        return await allowances.check_in(session, self.accounts, account, now or self.clock())

    async def next_case_number(self, session: AsyncSession) -> str:
        """Take the next case number in the caller's transaction (it locks the counter)."""
        return await repo.next_case_number(session)

    def routed_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        actor: Actor,
        *,
        rules_fired: Sequence[str],
        rules_version: str | None,
        tags: Sequence[str],
        at: datetime | None = None,
    ) -> None:
        """Audit which rules routed a new case (its fields were set by :meth:`create_in`)."""
        detail = {"rules_fired": list(rules_fired), "rules_version": rules_version,
                  "tags": list(tags)}  # fmt: skip
        self.audit_in(session, row, actor, "routed", at=at, detail=detail)

    def audit_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        actor: Actor,
        action: str,
        *,
        at: datetime | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """Record an event on the case's audit trail that changed none of its fields (an
        acknowledgement sent, a routing explained), in the caller's transaction."""
        repo.audit(session, row.id, at=at or self.clock(), actor=actor, action=action,
                   detail=dict(detail or {}))  # fmt: skip

    # --- changing --------------------------------------------------------------------------

    async def change(self, number: str, event: lifecycle.Event, actor: Actor) -> lifecycle.Outcome:
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            outcome = await self.change_in(session, row, event, actor)
        if any(isinstance(e, lifecycle.Notify) for e in outcome.effects):
            self.outgoing_queued()  # the agents' notifications
        return outcome

    async def change_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        event: lifecycle.Event,
        actor: Actor,
        detail: dict[str, object] | None = None,
    ) -> lifecycle.Outcome:
        """Apply a lifecycle event to a locked case row inside the caller's transaction.

        With diagnostic tasks on, every event looks up the case's open activities (one query):
        any change of status or assignee may open or close the diagnostic task.
        """
        now = self.clock()
        diagnostics = self.diagnostic_tasks
        found = (
            await repo.open_activities(session, row.id)
            if diagnostics or lifecycle.needs_open_activities(event)
            else ()
        )
        diagnostic = tasks.diagnostic_of(found) if diagnostics else None
        ctx = lifecycle.Context(
            now=now,
            open_activities=tuple(a.id for a in found if a is not diagnostic),
            diagnostics=diagnostics,
            diagnostic=diagnostic,
        )
        case = repo.to_domain(row, await repo.parent_number(session, row))
        outcome = await self._with_sla(session, row, case, lifecycle.apply(case, event, ctx), now)
        outcome = await allowances.follow_in(session, row, case, outcome, self.accounts, actor, now)
        repo.write_back(row, outcome.case)
        await records.carry_out_in(session, row, outcome.effects, actor, now)
        await self.notify_in(session, row, outcome.effects, actor)
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
        """Keep the due dates true to the SLA: pauses stop the clock; a new priority, SLA
        policy or account recounts them (no policy left: no due dates)."""
        after = outcome.case
        recount = (after.priority, after.sla_policy, after.account) != (
            before.priority, before.sla_policy, before.account,
        )  # fmt: skip
        found = self.sla_lookup(after.sla_policy, after.account) if after.sla_policy else None
        if found is None:
            if recount and before.sla_policy and not after.sla_policy:
                after = replace(after, first_response_due=None, resolve_by_due=None)
                return replace(outcome, case=after, changes=diff(before, after))
            return outcome
        policy, calendar = found
        if recount:
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

    async def pick(
        self, number: str, user: str, actor: Actor | None = None, *, force: bool = False
    ) -> lifecycle.Outcome:
        """Queue Pick: the user works the case. They must be a member of the queue's team; a
        case another agent is working is taken over only with ``force``."""
        self.directory.active_user(user)
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            if row.queue is not None and not self.directory.may_work(user, row.queue):
                raise CaseRuleError(
                    f"{user} cannot pick {row.number}: not a member of queue {row.queue}'s team"
                )
            taken_from = row.worked_by if force and row.worked_by not in (None, user) else None
            return await self.change_in(
                session,
                row,
                lifecycle.Pick(user, force=force),
                actor or Actor.user(user),
                detail={"taken_over_from": taken_from},
            )

    async def escalate(
        self,
        number: str,
        actor: Actor,
        *,
        level: str | None = None,
        user: str | None = None,
        team: str | None = None,
        queue: str | None = None,
        reason: str | None = None,
    ) -> lifecycle.Outcome:
        """Raise the case to the next support level (or the named one) and hand it to that
        level's team and queue, unless a team, queue or user is given (checked as for assign).
        Refused past the last level named in rules.yaml."""
        directory = self.directory
        if user is not None:
            directory.active_user(user)
        if team is not None:
            directory.team(team)
        if queue is not None:
            directory.queue(queue)
        wanted = directory.level_number(level) if level is not None else None
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            target = wanted if wanted is not None else row.support_level + 1
            levels = directory.levels
            if target <= row.support_level:
                raise CaseRuleError(
                    f"case {row.number} is at {directory.level_name(row.support_level)} already:"
                    " escalate goes up a level (assign moves a case without escalating it)"
                )
            if levels and target > len(levels):
                raise CaseRuleError(
                    f"case {row.number} is at the last support level"
                    f" ({directory.level_name(row.support_level)}): it cannot be escalated further"
                )
            if levels:
                named = levels[target - 1]
                team = team if team is not None or user is not None else named.team
                queue = queue if queue is not None else named.queue
            event = lifecycle.Escalate(user=user, team=team, queue=queue, level=target)
            detail = {"level": directory.level_name(target), "reason": (reason or "").strip()}
            return await self.change_in(
                session, row, event, actor, detail={k: v for k, v in detail.items() if v}
            )

    async def resolve(
        self,
        number: str,
        resolution: str,
        actor: Actor,
        *,
        open_activities: lifecycle.OpenActivityPolicy = "fail",
    ) -> lifecycle.Outcome:
        """Resolve the case; its open activities are completed, cancelled, or (``fail``) make
        the resolve fail with a reason."""
        return await self.change(number, lifecycle.Resolve(resolution, open_activities), actor)

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
