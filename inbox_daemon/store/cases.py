"""Queries and writes for cases, activities and audit events, and the row <-> domain mapping."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstanceState

from inbox_daemon.cases.enums import (
    READ_ONLY,
    ActivityKind,
    ActivityState,
    Direction,
    Origin,
    Priority,
    Status,
)
from inbox_daemon.cases.model import Actor, Case, FieldChange, format_case_number
from inbox_daemon.cases.tasks import LoggedActivity
from inbox_daemon.errors import NotFoundError, SchemaError
from inbox_daemon.store.tables import ActivityRow, AuditRow, Base, CaseRow, Counter
from inbox_daemon.store.unit import CASE_COUNTER, flush_audit, unit_of

_PLAIN_FIELDS = (
    "title",
    "description",
    "contact_email",
    "contact_slack",
    "contact_name",
    "category",
    "reason",
    "sla_policy",
    "first_response_due",
    "resolve_by_due",
    "first_responded_at",
    "owner_user",
    "owner_team",
    "queue",
    "worked_by",
    "support_level",
    "resolution",
    "merged_into",
    "created_at",
    "updated_at",
    "resolved_at",
    "closed_at",
    "paused_at",
    "account",
    "entitlement_exhausted",
)


async def next_case_number(session: AsyncSession) -> str:
    """Allocate the next case number inside the caller's transaction.

    The first number of a transaction updates the counter row in place (``UPDATE …
    RETURNING``), which takes a row lock on PostgreSQL and the write lock on SQLite: concurrent
    transactions get distinct numbers, and a rolled-back transaction gives its numbers back.
    Holding the lock, the transaction counts on in memory and writes the counter's new value
    once, with its other pending rows (:meth:`.unit.UnitOfWork.write_pending`): an intake
    batch creating fifty cases updates the counter once, not fifty times.
    """
    unit = unit_of(session)
    count = unit.case_count
    if count is not None:
        count[0] += 1
        return format_case_number(count[0])
    counter = _COUNTERS
    stmt = (
        update(counter)
        .where(counter.c.name == CASE_COUNTER)
        .values(value=counter.c.value + 1)
        .returning(counter.c.value)
    )
    # A Core statement on the connection: no autoflush of the rows the session holds.
    value = (await (await session.connection()).execute(stmt)).scalar_one_or_none()
    if value is None:  # the first migration creates it
        raise SchemaError("the case-number counter is missing: run `inbox-daemon db upgrade`")
    unit.case_count = [value, value]  # [last handed out, last written]
    return format_case_number(value)


_COUNTERS = Base.metadata.tables[Counter.__tablename__]


def to_domain(row: CaseRow, parent_number: str | None = None) -> Case:
    values: dict[str, Any] = {name: getattr(row, name) for name in _PLAIN_FIELDS}
    return Case(
        number=row.number,
        status=Status(row.status),
        priority=Priority(row.priority),
        origin=Origin(row.origin),
        parent_number=parent_number,
        cc_contacts=tuple(row.cc_contacts or ()),
        **values,
    )


def write_back(row: CaseRow, case: Case) -> None:
    """Copy a domain snapshot onto its row (the parent link is set separately)."""
    for name in _PLAIN_FIELDS:
        if getattr(row, name) != getattr(case, name):
            setattr(row, name, getattr(case, name))
    row.status = case.status.value
    row.priority = case.priority.value
    row.origin = case.origin.value
    if list(row.cc_contacts or ()) != list(case.cc_contacts):
        row.cc_contacts = list(case.cc_contacts)


def new_row(case: Case, parent_id: int | None = None) -> CaseRow:
    row = CaseRow(number=case.number, parent_id=parent_id, tags=[], support_level=1)
    write_back(row, case)
    return row


async def get_case_row(session: AsyncSession, number: str, *, for_update: bool = False) -> CaseRow:
    stmt = select(CaseRow).where(CaseRow.number == number.upper())
    if for_update:
        stmt = stmt.with_for_update()
    row = (await session.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no case {number!r}: `inbox-daemon cases list` shows the cases")
    return row


async def parent_number(session: AsyncSession, row: CaseRow) -> str | None:
    if row.parent_id is None:
        return None
    stmt = select(CaseRow.number).where(CaseRow.id == row.parent_id)
    return (await session.execute(stmt)).scalar_one()


async def open_activities(session: AsyncSession, case_id: int) -> tuple[LoggedActivity, ...]:
    """The case's open activities, with what the rules of tasks need to know of them."""
    stmt = (
        select(ActivityRow.id, ActivityRow.kind, ActivityRow.assignee, ActivityRow.flags)
        .where(ActivityRow.case_id == case_id, ActivityRow.state == ActivityState.OPEN.value)
        .order_by(ActivityRow.id)
    )
    return tuple(
        LoggedActivity(id_, ActivityKind(kind), ActivityState.OPEN, assignee,
                       bool((flags or {}).get("diagnostic")))
        for id_, kind, assignee, flags in (await session.execute(stmt)).all()
    )  # fmt: skip


def logged(activity: ActivityRow) -> LoggedActivity:
    """An activity row as the rules of tasks see it."""
    return LoggedActivity(
        activity.id,
        ActivityKind(activity.kind),
        ActivityState(activity.state),
        activity.assignee,
        bool(activity.flags.get("diagnostic")),
    )


async def activity_of(session: AsyncSession, case_id: int, activity_id: int) -> ActivityRow | None:
    """Activity ``activity_id`` if it is one of the case's (locked), else None."""
    stmt = (
        select(ActivityRow)
        .where(ActivityRow.id == activity_id, ActivityRow.case_id == case_id)
        .with_for_update()
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def settle_activities(
    session: AsyncSession,
    ids: Sequence[int],
    state: ActivityState,
    now: datetime,
    *,
    result: str | None = None,
) -> None:
    values: dict[str, Any] = {"state": state.value, "updated_at": now}
    if result is not None:
        values["result"] = result
    await session.execute(
        update(ActivityRow)
        .where(ActivityRow.id.in_(ids), ActivityRow.state == ActivityState.OPEN.value)
        .values(**values)
    )


def audit(
    session: AsyncSession,
    case_id: int,
    *,
    at: datetime,
    actor: Actor,
    action: str,
    changes: Sequence[FieldChange] = (),
    detail: dict[str, Any] | None = None,
) -> None:
    """Record the audit events of one action: a row per changed field, or one row without.

    The rows wait in the session and go to the database together, in one multi-row INSERT, at
    the session's next flush or commit (:mod:`.unit`): an intake transaction
    records a dozen of them per new case, and the ORM would send those one at a time.
    """
    base = {
        "case_id": case_id,
        "at": at,
        "actor_kind": actor.kind.value,
        "actor_name": actor.name,
        "action": action,
        "detail": detail or {},
    }
    rows = [
        {**base, "field": change.field, "old_value": change.old, "new_value": change.new}
        for change in changes
    ] or [{**base, "field": None, "old_value": None, "new_value": None}]
    unit_of(session).pending_audit.extend(rows)


async def list_cases(
    session: AsyncSession,
    *,
    status: Sequence[Status] = (),
    queue: str | None = None,
    owner: str | None = None,
    account: str | None = None,
    limit: int = 200,
) -> list[CaseRow]:
    stmt = select(CaseRow).order_by(CaseRow.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(CaseRow.status.in_([s.value for s in status]))
    if queue is not None:
        stmt = stmt.where(CaseRow.queue == queue)
    if owner is not None:
        stmt = stmt.where(CaseRow.owner_user == owner)
    if account is not None:
        stmt = stmt.where(CaseRow.account == account)
    return list((await session.execute(stmt)).scalars())


async def activities_of(session: AsyncSession, case_id: int) -> list[ActivityRow]:
    stmt = select(ActivityRow).where(ActivityRow.case_id == case_id).order_by(ActivityRow.id)
    return list((await session.execute(stmt)).scalars())


async def audit_of(session: AsyncSession, case_id: int) -> list[AuditRow]:
    await flush_audit(session)
    stmt = select(AuditRow).where(AuditRow.case_id == case_id).order_by(AuditRow.id)
    return list((await session.execute(stmt)).scalars())


async def resolved_before(session: AsyncSession, cutoff: datetime) -> list[str]:
    stmt = (
        select(CaseRow.number)
        .where(CaseRow.status == Status.RESOLVED.value, CaseRow.resolved_at <= cutoff)
        .order_by(CaseRow.id)
    )
    return list((await session.execute(stmt)).scalars())


async def open_case_counts(session: AsyncSession) -> dict[str, int]:
    """Open cases per owner, for least-loaded assignment.

    The database's count of what the session has written, plus the cases it holds and has not
    written yet: counting needs no flush, which in an intake batch would write the batch's rows
    piecemeal, one flush per case assigned this way.
    """
    stmt = (
        select(CaseRow.owner_user, func.count())
        .where(
            CaseRow.owner_user.is_not(None),
            CaseRow.status.not_in([s.value for s in READ_ONLY]),
        )
        .group_by(CaseRow.owner_user)
    )
    unit = unit_of(session)
    stored = unit.written_counts
    if stored is None:  # asked again after the next flush
        with session.no_autoflush:
            rows = (await session.execute(stmt)).all()
        stored = unit.written_counts = {owner: count for owner, count in rows if owner}
    counts = defaultdict(int, stored)
    for row in (*session.new, *session.dirty):
        if not isinstance(row, CaseRow):
            continue
        state = inspect(row)
        now = _counted(row.owner_user, row.status)
        written = None if state.pending else _counted(*_written(state, "owner_user", "status"))
        if now != written:
            if written is not None:
                counts[written] -= 1
            if now is not None:
                counts[now] += 1
    return {owner: count for owner, count in counts.items() if count > 0}


def _counted(owner: str | None, status: str) -> str | None:
    """The owner a case counts for in :func:`open_case_counts`, if any."""
    return owner if owner and Status(status) not in READ_ONLY else None


def _written(state: InstanceState[CaseRow], *keys: str) -> list[Any]:
    """The values of a persistent row's attributes as last written (before pending changes)."""
    values = []
    for key in keys:
        history = state.attrs[key].history
        values.append(history.deleted[0] if history.deleted else getattr(state.obj(), key))
    return values


async def queues_with_open_cases(session: AsyncSession) -> set[str]:
    """Queues that still hold a case that is not resolved, closed or cancelled."""
    stmt = (
        select(CaseRow.queue)
        .where(
            CaseRow.queue.is_not(None),
            CaseRow.status.not_in([s.value for s in (Status.RESOLVED, Status.CLOSED,
                                                     Status.CANCELLED)]),
        )
        .distinct()
    )  # fmt: skip
    return {q for q in (await session.execute(stmt)).scalars() if q}


async def status_history(session: AsyncSession, case_id: int) -> list[tuple[datetime, Status]]:
    """Every status a case entered, with when (from its audit trail), oldest first."""
    await flush_audit(session)
    stmt = (
        select(AuditRow.at, AuditRow.new_value)
        .where(AuditRow.case_id == case_id, AuditRow.field == "status")
        .order_by(AuditRow.id)
    )
    return [(at, Status(value)) for at, value in (await session.execute(stmt)).all() if value]


async def last_incoming(session: AsyncSession, case_id: int) -> ActivityRow | None:
    """The customer's latest message on a case (auto-replies, bounces and the phone calls agents
    log left out): what an answer threads to and what a case card quotes."""
    stmt = (
        select(ActivityRow)
        .where(
            ActivityRow.case_id == case_id,
            ActivityRow.direction == Direction.INCOMING.value,
            ActivityRow.automatic.is_(False),
            ActivityRow.kind != ActivityKind.PHONE_CALL.value,  # logged by an agent
        )
        .order_by(ActivityRow.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()
