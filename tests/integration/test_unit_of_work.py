"""The unit of work is its transaction's own: no hook runs for any other session.

Per-transaction state (id counts, the case counter, pending audit rows, rotations, attached
lookups) lives in one :class:`UnitOfWork` per session, whose hooks are attached to that session
alone, and it ends with the transaction.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from inbox_daemon.cases.model import Actor
from inbox_daemon.store import cases as repo
from inbox_daemon.store import ids
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, AuditRow, CaseRow, TeamRotationRow
from inbox_daemon.store.unit import UnitOfWork, WorkSession, unit_of

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_importing_the_daemon_registers_no_session_wide_hook() -> None:
    """A plain SQLAlchemy Session, in a process that imported all of inbox_daemon, has no
    listener of ours (class-wide hooks used to run in every session of the process)."""
    code = (
        "import inbox_daemon.runtime, inbox_daemon.cli\n"
        "from sqlalchemy.orm import Session\n"
        "names = ('before_flush', 'after_flush', 'before_commit', 'after_commit',"
        " 'after_rollback', 'after_soft_rollback')\n"
        "found = [n for n in names if list(getattr(Session().dispatch, n))]\n"
        "print(found)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


async def test_a_plain_session_runs_none_of_our_bookkeeping(db: Database) -> None:
    plain = async_sessionmaker(db.engine, expire_on_commit=False)
    async with plain() as session, session.begin():
        session.add(TeamRotationRow(team="t", last_user="ann", updated_at=NOW))
        with pytest.raises(TypeError, match="not made by"):
            unit_of(session)
    async with db.transaction() as session:
        assert isinstance(session.sync_session, WorkSession)
        assert (await session.get(TeamRotationRow, "t")) is not None


async def test_each_transaction_has_its_own_unit_and_it_ends_with_it(db: Database) -> None:
    async with db.transaction() as first, db.transaction() as second:
        assert unit_of(first) is not unit_of(second)
    async with db.transaction() as session:
        number = await repo.next_case_number(session)
        row = CaseRow(number=number, title="t", status="new", priority="medium",
                      origin="email", created_at=NOW, updated_at=NOW)  # fmt: skip
        row.id = await ids.new_id(session, CaseRow)
        session.add(row)
        repo.audit(session, row.id, at=NOW, actor=Actor.system("test"), action="create")
        unit = unit_of(session)
        assert (unit.case_count, len(unit.pending_audit)) == ([1, 1], 1)
        assert set(unit.ids) == {"cases"}
    # the commit wrote the pending audit row and ended the counts
    assert (unit.case_count, unit.pending_audit, unit.ids) == (None, [], {})
    async with db.transaction() as session:
        assert unit_of(session) == UnitOfWork()  # nothing carried over
        audited = select(func.count()).select_from(AuditRow)
        assert (await session.execute(audited)).scalar_one() == 1


async def test_a_rolled_back_transaction_writes_nothing_it_recorded(db: Database) -> None:
    async def change_of_mind() -> None:
        async with db.transaction() as session:
            await repo.next_case_number(session)
            await ids.new_id(session, ActivityRow)
            repo.audit(session, 1, at=NOW, actor=Actor.system("test"), action="nothing")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await change_of_mind()
    async with db.transaction() as session:
        assert (await session.execute(select(func.count()).select_from(AuditRow))).scalar() == 0
        assert await repo.next_case_number(session) == "CAS-000001"  # the number came back
