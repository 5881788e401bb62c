"""Queries and writes for what cases took of an allowance: the units of an allowance of cases
(``entitlement_uses``), the minutes charged to an allowance of hours (``entitlement_hours``).

A unit is one row keyed by its case, so a case counts once however often its mail is taken
in; a case whose account changes carries its row to the new account. Counting needs no flush
(as :func:`.cases.open_case_counts`): the database's count of what the session has written,
plus the rows the session holds and has not written yet — an intake batch creating several
cases of one account counts each of them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases.enums import ActivityState
from inbox_daemon.store.tables import ActivityRow, EntitlementHoursRow, EntitlementUseRow

__all__ = [
    "Usage",
    "charge_hours",
    "give_back",
    "hours_used",
    "move_unit",
    "return_hours",
    "take_unit",
    "time_spent",
    "unit_of",
    "usage",
]


@dataclass(frozen=True, slots=True)
class Usage:
    """Units of one (account, entitlement, period): ``used`` not given back, ``taken`` the
    highest ``seq`` given (the next unit's is ``taken + 1``; a unit carried to another account
    leaves a gap)."""

    used: int
    taken: int


def _key(row: EntitlementUseRow | EntitlementHoursRow) -> tuple[str, str, str]:
    return (row.account, row.entitlement, row.period)


async def usage(session: AsyncSession, account: str, entitlement: str, period: str) -> Usage:
    """The units of ``account``'s ``entitlement`` in ``period`` (see the module docstring)."""
    table = EntitlementUseRow
    stmt = select(func.count(), func.count(table.returned_at), func.max(table.seq)).where(
        table.account == account, table.entitlement == entitlement, table.period == period
    )
    with session.no_autoflush:
        count, returned, last = (await session.execute(stmt)).one()
    key = (account, entitlement, period)
    used = count - returned
    taken = last or 0
    for row in session.new:
        if isinstance(row, EntitlementUseRow) and _key(row) == key:
            taken = max(taken, row.seq)
            used += row.returned_at is None
    for row in session.dirty:
        if isinstance(row, EntitlementUseRow) and _key(row) == key:
            history = inspect(row).attrs["returned_at"].history
            if history.deleted == [None] and row.returned_at is not None:
                used -= 1
    return Usage(used=used, taken=taken)


def take_unit(
    session: AsyncSession,
    case_id: int,
    *,
    account: str,
    entitlement: str,
    period: str,
    seq: int,
    at: datetime,
) -> None:
    """Record that case ``case_id`` took unit ``seq`` (written with the next flush)."""
    session.add(
        EntitlementUseRow(
            case_id=case_id,
            account=account,
            entitlement=entitlement,
            period=period,
            seq=seq,
            created_at=at,
        )
    )


async def give_back(session: AsyncSession, case_id: int, at: datetime) -> EntitlementUseRow | None:
    """Give back the unit case ``case_id`` took, if it took one and kept it; the row, or None."""
    row = await session.get(EntitlementUseRow, case_id)
    if row is None or row.returned_at is not None:
        return None
    row.returned_at = at
    return row


async def unit_of(session: AsyncSession, case_id: int) -> EntitlementUseRow | None:
    """The unit case ``case_id`` took (kept or given back), if any."""
    return await session.get(EntitlementUseRow, case_id)


def move_unit(
    row: EntitlementUseRow, *, account: str, entitlement: str, period: str, seq: int
) -> None:
    """Carry a case's unit to another account's allowance (its case moved there), kept."""
    row.account, row.entitlement, row.period, row.seq = account, entitlement, period, seq
    row.returned_at = None


async def time_spent(session: AsyncSession, case_id: int, leaving_out: Collection[int] = ()) -> int:
    """The minutes agents recorded on the case's activities, cancelled ones and those of
    ``leaving_out`` (about to be cancelled) left out."""
    table = ActivityRow
    stmt = select(func.coalesce(func.sum(table.spent_minutes), 0)).where(
        table.case_id == case_id, table.state != ActivityState.CANCELLED.value
    )
    if leaving_out:
        stmt = stmt.where(table.id.not_in(list(leaving_out)))
    return int((await session.execute(stmt)).scalar_one() or 0)


async def hours_used(session: AsyncSession, account: str, entitlement: str, period: str) -> int:
    """The minutes charged to ``account``'s allowance of hours in ``period``, not given back."""
    table = EntitlementHoursRow
    stmt = select(func.coalesce(func.sum(table.minutes), 0)).where(
        table.account == account,
        table.entitlement == entitlement,
        table.period == period,
        table.returned_at.is_(None),
    )
    with session.no_autoflush:  # as usage(): an intake batch is written at its end
        used = int((await session.execute(stmt)).scalar_one())
    key = (account, entitlement, period)
    for row in session.dirty:  # given back in this transaction, not yet written
        if isinstance(row, EntitlementHoursRow) and _key(row) == key:
            history = inspect(row).attrs["returned_at"].history
            if history.deleted == [None] and row.returned_at is not None:
                used -= row.minutes
    return used


async def charge_hours(
    session: AsyncSession,
    case_id: int,
    *,
    account: str,
    entitlement: str,
    period: str,
    minutes: int,
    at: datetime,
) -> None:
    """Charge ``minutes`` of a resolved case (again, after a reactivation: its row is reused)."""
    row = await session.get(EntitlementHoursRow, case_id)
    if row is None:
        row = EntitlementHoursRow(case_id=case_id)
        session.add(row)
    row.account, row.entitlement, row.period = account, entitlement, period
    row.minutes, row.charged_at, row.returned_at = minutes, at, None


async def return_hours(
    session: AsyncSession, case_id: int, at: datetime
) -> EntitlementHoursRow | None:
    """Give back what a reactivated case was charged, if it was and kept it; the row, or None."""
    row = await session.get(EntitlementHoursRow, case_id)
    if row is None or row.returned_at is not None:
        return None
    row.returned_at = at
    return row
