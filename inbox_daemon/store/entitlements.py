"""Queries and writes for the units of an allowance that cases took (``entitlement_uses``).

A unit is one row keyed by its case, so a case counts once however often its mail is taken
in. Counting needs no flush (as :func:`.cases.open_case_counts`): the database's count of
what the session has written, plus the rows the session holds and has not written yet — an
intake batch creating several cases of one account counts each of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.store.tables import EntitlementUseRow

__all__ = ["Usage", "give_back", "take_unit", "usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Units of one (account, entitlement, period): ``used`` not given back, ``taken`` ever
    (the next unit's ``seq`` is ``taken + 1``)."""

    used: int
    taken: int


def _key(row: EntitlementUseRow) -> tuple[str, str, str]:
    return (row.account, row.entitlement, row.period)


async def usage(session: AsyncSession, account: str, entitlement: str, period: str) -> Usage:
    """The units of ``account``'s ``entitlement`` in ``period`` (see the module docstring)."""
    table = EntitlementUseRow
    stmt = select(func.count(), func.count(table.returned_at)).where(
        table.account == account, table.entitlement == entitlement, table.period == period
    )
    with session.no_autoflush:
        taken, returned = (await session.execute(stmt)).one()
    key = (account, entitlement, period)
    used = taken - returned
    for row in session.new:
        if isinstance(row, EntitlementUseRow) and _key(row) == key:
            taken += 1
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
