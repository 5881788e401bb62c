"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import schema_state, upgrade
from inbox_daemon.store.tables import Base, EntitlementUseRow


def old_case(case_id: int, at: datetime, **values: Any) -> Any:
    """An INSERT of a case with only the columns the first schema had (the ORM's row has the
    newest columns, which a database at an older revision lacks)."""
    row: dict[str, Any] = {
        "id": case_id, "number": f"CAS-{case_id:06d}", "title": "t", "description": "",
        "status": "new", "priority": "medium", "origin": "email",
        "contact_email": "ann@example.com", "contact_name": "Ann", "support_level": 1,
        "tags": [], "created_at": at, "updated_at": at, "version": 1, **values,
    }  # fmt: skip
    columns = [sa.column(n, sa.JSON()) if n == "tags" else sa.column(n) for n in row]
    return sa.insert(sa.table("cases", *columns)).values(row)


def _diff(sync_conn: Any) -> list[Any]:
    ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def test_migrations_match_the_tables(db_url: str) -> None:
    db = Database(db_url)
    try:
        before = await schema_state(db)
        assert before.current == ()
        assert not before.up_to_date
        after = await upgrade(db)
        assert after.up_to_date
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
        again = await upgrade(db)  # idempotent
        assert again.current == after.current
    finally:
        await db.dispose()


async def test_automatic_answers_sent_before_0007_still_count_towards_the_limit(
    db_url: str,
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from inbox_daemon.acknowledge import recent_automatic_count
    from inbox_daemon.store.tables import ActivityRow

    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(db, "0006")
        columns = ActivityRow.__table__.c
        async with db.engine.begin() as conn:  # as 0006 knew them: no automatic_to
            await conn.execute(old_case(1, now))
            for direction, automatic, to in [
                ("outgoing", True, "Ann@Example.com"), ("outgoing", False, "ann@example.com"),
                ("incoming", True, "ann@example.com"), ("outgoing", True, "bob@example.com"),
            ]:  # fmt: skip
                await conn.execute(
                    insert(ActivityRow.__table__).values(
                        {columns.case_id: 1, columns.kind: "email", columns.direction: direction,
                         columns.state: "completed", columns.recipients: [to],
                         columns.automatic: automatic, columns.actor: "system",
                         columns.created_at: now, columns.updated_at: now}
                    )
                )  # fmt: skip
        await upgrade(db)
        async with db.transaction() as session:
            since = now - timedelta(hours=1)
            assert await recent_automatic_count(session, "ann@example.com", since) == 1
            assert await recent_automatic_count(session, "BOB@example.com", since) == 1
            assert await recent_automatic_count(session, "carol@example.com", since) == 0
    finally:
        await db.dispose()


async def test_cases_made_before_accounts_keep_their_data(db_url: str) -> None:
    """A database at the revision before 0012 (whichever that is) keeps its cases, which get
    no account and no exhausted flag, and takes entitlement uses after the upgrade."""
    from alembic.script import ScriptDirectory

    from inbox_daemon.cases.accounts import Account, AccountBook
    from inbox_daemon.service import CaseService
    from inbox_daemon.store.migrate import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    previous = script.get_revision("0012").down_revision
    assert isinstance(previous, str)
    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(db, previous)
        async with db.engine.begin() as conn:
            await conn.execute(old_case(1, now, queue="general"))
            await conn.execute(old_case(2, now, status="cancelled"))
        await upgrade(db)
        svc = CaseService(db, accounts=AccountBook.of([Account("acme", "Acme")]))
        first, second = await svc.get("CAS-000001"), await svc.get("CAS-000002")
        assert (first.title, first.queue, first.contact_email) == (
            "t",
            "general",
            "ann@example.com",
        )
        assert (first.account, first.entitlement_exhausted) == (None, False)
        assert second.status.value == "cancelled"
        listed = await svc.find(account="acme")
        assert listed == []
        async with db.engine.begin() as conn:
            await conn.execute(
                sa.insert(EntitlementUseRow.__table__).values(
                    case_id=1, account="acme", entitlement="gold", period="2026-03", seq=1,
                    created_at=now,
                )
            )  # fmt: skip
            count = await conn.execute(sa.select(sa.func.count()).select_from(EntitlementUseRow))
            assert count.scalar_one() == 1
    finally:
        await db.dispose()


async def test_cases_made_before_0010_read_and_merge_after_the_upgrade(db_url: str) -> None:
    from datetime import UTC

    from inbox_daemon.cases.model import Actor
    from inbox_daemon.service import CaseService

    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(db, "0009")
        async with db.engine.begin() as conn:
            await conn.execute(old_case(1, now))
            await conn.execute(old_case(2, now))
        await upgrade(db)
        service = CaseService(db)
        old = await service.get("CAS-000001")
        assert (old.title, old.contact_email, old.cc_contacts, old.merged_into) == (
            "t", "ann@example.com", (), None,
        )  # fmt: skip
        await service.merge("CAS-000002", "CAS-000001", Actor.system("test"))
        assert (await service.get("CAS-000002")).merged_into == "CAS-000001"
        assert (await service.show("CAS-000001")).merged == ("CAS-000002",)
    finally:
        await db.dispose()


async def test_activities_made_before_0011_are_kept_and_tasks_work_after(db_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert, select

    from inbox_daemon.cases.enums import ActivityState
    from inbox_daemon.cases.model import Actor
    from inbox_daemon.service import CaseService
    from inbox_daemon.store.tables import ActivityRow

    db = Database(db_url)
    now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    try:
        await upgrade(db, "0009")
        svc = CaseService(db)
        number = "CAS-000001"
        columns = ActivityRow.__table__.c
        async with db.engine.begin() as conn:  # as 0009 knew them: no due_at, assignee, result
            await conn.execute(old_case(1, now))
            for kind, state, subject in [("task", "open", "call back"),
                                         ("note", "completed", "")]:  # fmt: skip
                await conn.execute(
                    insert(ActivityRow.__table__).values(
                        {columns.case_id: 1, columns.kind: kind, columns.direction: "internal",
                         columns.state: state, columns.subject: subject,
                         columns.body_text: "kept", columns.actor: "user:alice",
                         columns.created_at: now, columns.updated_at: now}
                    )
                )  # fmt: skip
        await upgrade(db)
        async with db.transaction() as session:
            rows = (await session.execute(select(ActivityRow).order_by(ActivityRow.id))).scalars()
            kept = [(a.kind, a.state, a.subject, a.body_text, a.actor, a.created_at,
                     a.due_at, a.assignee, a.result) for a in rows]  # fmt: skip
        assert kept == [
            ("task", "open", "call back", "kept", "user:alice", now, None, None, None),
            ("note", "completed", "", "kept", "user:alice", now, None, None, None),
        ]
        old_task = 1
        await svc.settle_activity(number, old_task, ActivityState.COMPLETED, Actor.user("bob"))
        due = now + timedelta(days=2)
        task = await svc.add_task(number, "order a fuser", Actor.user("bob"), due=due)
        view = await svc.show(number)
        assert [(a.id, a.state, a.due_at) for a in view.activities] == [
            (1, "completed", None), (2, "completed", None), (task.id, "open", due),
        ]  # fmt: skip
    finally:
        await db.dispose()


async def test_activities_made_at_0012_record_no_time_and_can_be_charged_after(
    db_url: str,
) -> None:
    """A database at 0012 (the release before time spent) keeps its cases and activities,
    which record no time; after the upgrade the case's time counts and a resolve charges it."""
    from inbox_daemon.cases.accounts import (
        Account,
        AccountBook,
        Allowance,
        AllowanceUnit,
        Entitlement,
        Period,
    )
    from inbox_daemon.cases.lifecycle import Resolve
    from inbox_daemon.cases.model import Actor
    from inbox_daemon.service import CaseService
    from inbox_daemon.store.tables import ActivityRow, EntitlementHoursRow

    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(db, "0012")
        columns = ActivityRow.__table__.c
        async with db.engine.begin() as conn:
            await conn.execute(old_case(1, now, account="acme", status="in_progress"))
            await conn.execute(
                sa.insert(ActivityRow.__table__).values(
                    {columns.case_id: 1, columns.kind: "note", columns.direction: "internal",
                     columns.state: "completed", columns.body_text: "looked", columns.actor: "x",
                     columns.created_at: now, columns.updated_at: now}
                )
            )  # fmt: skip
        await upgrade(db)
        hours = Entitlement("hours", allowance=Allowance(1, Period.MONTH, AllowanceUnit.HOURS))
        accounts = AccountBook.of([Account("acme", "Acme", entitlement="hours")], [hours])
        svc = CaseService(db, accounts=accounts)
        view = await svc.show("CAS-000001")
        assert [(a.body_text, a.spent_minutes) for a in view.activities] == [("looked", None)]
        assert view.time_spent == 0
        await svc.note("CAS-000001", "fixed it", Actor.user("alice"), spent_minutes=40)
        await svc.change("CAS-000001", Resolve("fixed"), Actor.user("alice"))
        async with db.transaction() as session:
            [row] = (await session.execute(sa.select(EntitlementHoursRow))).scalars().all()
            assert (row.case_id, row.account, row.minutes) == (1, "acme", 40)
        [usage] = await svc.account_usage()
        assert usage.check is not None
        assert usage.check.usage is not None
        assert (usage.check.usage.used, usage.check.exhausted) == (40, False)
    finally:
        await db.dispose()
