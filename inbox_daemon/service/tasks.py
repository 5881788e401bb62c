"""The case service's verbs for the activities agents log: tasks, phone calls, and completing
or cancelling an open one.

Each is one transaction on the locked case and refused, with nothing changed, on a resolved,
closed or cancelled case. A task keeps the case from being resolved until it is settled (or the
resolve settles it); a logged call is done when it is logged.
"""

from __future__ import annotations

from datetime import datetime

from inbox_daemon.cases import lifecycle, tasks
from inbox_daemon.cases.enums import ActivityKind, ActivityState
from inbox_daemon.cases.model import Actor
from inbox_daemon.errors import CaseRuleError, NotFoundError
from inbox_daemon.service import records
from inbox_daemon.service.activities import ActivityVerbs
from inbox_daemon.service.core import norm_number
from inbox_daemon.store import cases as repo
from inbox_daemon.store.tables import ActivityRow


class TaskVerbs(ActivityVerbs):
    async def add_task(
        self,
        number: str,
        subject: str,
        actor: Actor,
        *,
        due: datetime | None = None,
        assignee: str | None = None,
        spent_minutes: int | None = None,
    ) -> ActivityRow:
        """An open task on the case, due by ``due`` and assigned to ``assignee`` (an active
        agent), if given; ``spent_minutes``: the time already spent on it."""
        subject = tasks.require_subject(subject)
        if assignee is not None:
            self.directory.active_user(assignee)
        if due is not None and due.tzinfo is None:
            raise ValueError("a task's due time must be timezone-aware")
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            lifecycle.require_editable(repo.to_domain(row), "task")
            return await records.logged_activity_in(
                session, row, actor, ActivityKind.TASK, now=self.clock(), subject=subject,
                state=ActivityState.OPEN, due_at=due, assignee=assignee,
                spent_minutes=spent_minutes,
            )  # fmt: skip

    async def log_call(
        self,
        number: str,
        direction: str,
        text: str,
        actor: Actor,
        *,
        spent_minutes: int | None = None,
    ) -> ActivityRow:
        """A phone call with the customer (``direction`` ``in`` or ``out``), logged as done,
        with how long it took when given."""
        way = tasks.call_direction(direction)
        text = tasks.require_subject(text, "a call")
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            lifecycle.require_editable(repo.to_domain(row), "call")
            return await records.logged_activity_in(
                session, row, actor, ActivityKind.PHONE_CALL, now=self.clock(), text=text,
                subject=text.splitlines()[0][:200], direction=way, spent_minutes=spent_minutes,
            )  # fmt: skip

    async def settle_activity(
        self,
        number: str,
        activity_id: int,
        state: ActivityState,
        actor: Actor,
        *,
        spent_minutes: int | None = None,
    ) -> ActivityRow:
        """Complete or cancel an open activity of the case; completing it can record the time
        it took (``spent_minutes`` adds to what it recorded before)."""
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            activity = await repo.activity_of(session, row.id, activity_id)
            if activity is None:
                raise NotFoundError(
                    f"case {row.number} has no activity #{activity_id}:"
                    f" `inbox-daemon cases show {row.number}` lists its activities"
                )
            verb = "complete" if state is ActivityState.COMPLETED else "cancel"
            lifecycle.require_editable(repo.to_domain(row), f"{verb} activity")
            tasks.check_settle(row.number, repo.logged(activity), state)
            if spent_minutes is not None and state is not ActivityState.COMPLETED:
                raise CaseRuleError("time spent is recorded when an activity is completed")
            now = self.clock()
            activity.state = state.value
            activity.updated_at = now
            detail: dict[str, object] = {"activity": activity.id, "kind": activity.kind}
            if spent_minutes is not None:
                activity.spent_minutes = (activity.spent_minutes or 0) + spent_minutes
                detail["spent_minutes"] = spent_minutes
            repo.audit(
                session, row.id, at=now, actor=actor, action=records.settled_action(state),
                detail=detail,
            )  # fmt: skip
            return activity
