"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import schema_state, upgrade
from inbox_daemon.store.tables import Base


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
    from inbox_daemon.cases.model import Actor
    from inbox_daemon.service import CaseService
    from inbox_daemon.store.tables import ActivityRow

    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(db, "0006")
        await CaseService(db).create(
            title="t", contact="ann@example.com", actor=Actor.system("test")
        )
        columns = ActivityRow.__table__.c
        async with db.engine.begin() as conn:  # as 0006 knew them: no automatic_to
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


async def test_activities_made_before_0010_are_kept_and_tasks_work_after(db_url: str) -> None:
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
        number = (
            await svc.create(title="t", contact="ann@example.com", actor=Actor.system("test"))
        ).number
        columns = ActivityRow.__table__.c
        async with db.engine.begin() as conn:  # as 0009 knew them: no due_at, assignee, result
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
