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
