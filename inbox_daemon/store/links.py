"""Queries and writes for the links between cases: parents, children, merges."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.store.tables import ActivityRow, CaseRow

#: How far a chain of merges (or parents) is followed before it is taken to be a loop.
MAX_HOPS = 50


async def ancestors(session: AsyncSession, case_id: int) -> list[int]:
    """The ids of a case's parent, its parent's parent and so on (nearest first)."""
    found: list[int] = []
    current: int | None = case_id
    while current is not None and len(found) < MAX_HOPS:
        stmt = select(CaseRow.parent_id).where(CaseRow.id == current)
        current = (await session.execute(stmt)).scalar_one_or_none()
        if current is not None:
            if current in found:
                break
            found.append(current)
    return found


async def children_of(session: AsyncSession, case_id: int) -> list[str]:
    """The numbers of the cases whose parent this one is."""
    stmt = select(CaseRow.number).where(CaseRow.parent_id == case_id).order_by(CaseRow.id)
    return list((await session.execute(stmt)).scalars())


async def merged_from(session: AsyncSession, number: str) -> list[str]:
    """The numbers of the cases merged into this one."""
    stmt = select(CaseRow.number).where(CaseRow.merged_into == number).order_by(CaseRow.id)
    return list((await session.execute(stmt)).scalars())


async def move_activities(session: AsyncSession, source_id: int, target_id: int) -> list[int]:
    """Move every activity of one case to another; their ids."""
    await session.flush()
    stmt = select(ActivityRow.id).where(ActivityRow.case_id == source_id).order_by(ActivityRow.id)
    moved = list((await session.execute(stmt)).scalars())
    if moved:
        await session.execute(
            update(ActivityRow)
            .where(ActivityRow.case_id == source_id)
            .values(case_id=target_id)
            .execution_options(synchronize_session="fetch")
        )
    return moved


async def surviving(session: AsyncSession, rows: dict[str, CaseRow]) -> dict[str, CaseRow]:
    """``rows`` (number -> case) with every merged case replaced by the case it was merged into
    (followed to the end of the chain)."""
    out = dict(rows)
    for number, row in rows.items():
        current, hops = row, 0
        while current.merged_into and hops < MAX_HOPS:
            stmt = select(CaseRow).where(CaseRow.number == current.merged_into)
            target = (await session.execute(stmt)).scalar_one_or_none()
            if target is None:
                break
            current, hops = target, hops + 1
        out[number] = current
    return out
