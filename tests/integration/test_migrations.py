"""The Alembic migrations build exactly the schema the code declares, on both backends."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncConnection

from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import schema_state, upgrade
from inbox_daemon.store.tables import Base


async def insert_old_case(conn: AsyncConnection, now: datetime, number: str = "CAS-000001") -> None:
    """A case as the first schema knew it (the ORM's table has columns added since)."""
    names = ("number", "title", "description", "status", "priority", "origin", "contact_email",
             "contact_name", "support_level", "created_at", "updated_at", "version")  # fmt: skip
    cases = sa.table("cases", sa.column("tags", sa.JSON()), *(sa.column(c) for c in names))
    await conn.execute(
        sa.insert(cases).values(
            number=number, title="t", description="", status="new", priority="medium",
            origin="email", contact_email="ann@example.com", contact_name="",
            support_level=1, tags=[], created_at=now, updated_at=now, version=1,
        )
    )  # fmt: skip


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
            await insert_old_case(conn, now)
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


async def test_cases_made_before_0010_read_and_merge_after_the_upgrade(db_url: str) -> None:
    from datetime import UTC

    from inbox_daemon.cases.model import Actor
    from inbox_daemon.service import CaseService

    db = Database(db_url)
    now = datetime.now(UTC)
    try:
        await upgrade(db, "0009")
        async with db.engine.begin() as conn:
            await insert_old_case(conn, now, "CAS-000001")
            await insert_old_case(conn, now, "CAS-000002")
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
