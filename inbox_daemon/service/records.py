"""Activities written inside the caller's transaction: the rows of notes, tasks and phone calls,
and what the lifecycle asks of a case's activities (settle them, open or close the diagnostic
task). The verb families build on these; nothing here opens a transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle, tasks
from inbox_daemon.cases.enums import ActivityKind, ActivityState, Direction
from inbox_daemon.cases.model import Actor
from inbox_daemon.store import cases as repo
from inbox_daemon.store import ids
from inbox_daemon.store.tables import ActivityRow, CaseRow


async def logged_activity_in(
    session: AsyncSession,
    row: CaseRow,
    actor: Actor,
    kind: ActivityKind,
    *,
    now: datetime,
    text: str = "",
    subject: str = "",
    state: ActivityState = ActivityState.COMPLETED,
    direction: Direction = Direction.INTERNAL,
    due_at: datetime | None = None,
    assignee: str | None = None,
    flags: Mapping[str, object] | None = None,
    spent_minutes: int | None = None,
) -> ActivityRow:
    """A note, task or phone call an agent (or a rule) put on the case, audited as its kind,
    with the time it took (``spent_minutes``) when the agent recorded it."""
    activity = ActivityRow(
        id=await ids.new_id(session, ActivityRow),
        case_id=row.id,
        kind=kind.value,
        direction=direction.value,
        state=state.value,
        subject=subject,
        body_text=text,
        due_at=due_at,
        assignee=assignee,
        flags=dict(flags or {}),
        spent_minutes=spent_minutes,
        actor=str(actor),
        created_at=now,
        updated_at=now,
    )
    session.add(activity)
    detail: dict[str, object] = {"activity": activity.id}
    if subject:
        detail["subject"] = subject
    if kind is ActivityKind.PHONE_CALL:
        detail["direction"] = direction.value
    if due_at is not None:
        detail["due"] = due_at.isoformat()
    if assignee is not None:
        detail["assignee"] = assignee
    if spent_minutes is not None:
        detail["spent_minutes"] = spent_minutes
    detail.update(flags or {})
    repo.audit(session, row.id, at=now, actor=actor, action=kind.value, detail=detail)
    return activity


def settled_action(state: ActivityState) -> str:
    """The audit action of an activity settled as ``state``."""
    return f"activity_{state.value}"


async def carry_out_in(
    session: AsyncSession,
    row: CaseRow,
    effects: Iterable[lifecycle.Effect],
    actor: Actor,
    now: datetime,
) -> None:
    """Write what the lifecycle asked of the case's activities, in order, audited."""
    for effect in effects:
        if isinstance(effect, lifecycle.SettleActivities):
            await repo.settle_activities(session, effect.activity_ids, effect.state, now)
            repo.audit(
                session, row.id, at=now, actor=actor, action=f"activities_{effect.state.value}",
                detail={"activities": list(effect.activity_ids)},
            )  # fmt: skip
        elif isinstance(effect, tasks.CloseDiagnostic):
            await repo.settle_activities(
                session, [effect.activity_id], effect.state, now, result=effect.result
            )
            repo.audit(
                session, row.id, at=now, actor=actor, action=settled_action(effect.state),
                detail={"activity": effect.activity_id, "result": effect.result},
            )  # fmt: skip
        elif isinstance(effect, tasks.OpenDiagnostic):
            await logged_activity_in(
                session, row, actor, ActivityKind.TASK, now=now,
                subject=tasks.DIAGNOSTIC_SUBJECT, state=ActivityState.OPEN,
                assignee=effect.assignee, flags={"diagnostic": True},
            )  # fmt: skip
