"""Schema migrations with Alembic: upgrade, and the check every command and the daemon make
before they start: a database that cannot be reached is a one-line ``DatabaseUnavailable``; an
empty one gets the schema (as most daemons do); one at an older revision is refused with the
command that upgrades it; one newer than this code is refused."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from inbox_daemon.errors import SchemaError
from inbox_daemon.store.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@dataclass(frozen=True)
class SchemaState:
    current: tuple[str, ...]
    head: tuple[str, ...]
    known: bool

    @property
    def up_to_date(self) -> bool:
        return set(self.current) == set(self.head)


def _state(sync_conn: Any) -> SchemaState:
    script = ScriptDirectory.from_config(alembic_config())
    current = tuple(MigrationContext.configure(sync_conn).get_current_heads())
    known = all(_has_revision(script, rev) for rev in current)
    return SchemaState(current, tuple(script.get_heads()), known)


def _has_revision(script: ScriptDirectory, rev: str) -> bool:
    try:
        return script.get_revision(rev) is not None
    except Exception:  # alembic raises several kinds for an unknown revision
        return False


#: The key of PostgreSQL's advisory lock held while migrating: two instances starting on one
#: empty database create its schema once.
_MIGRATION_LOCK = 0x1B0C_DAE0


async def schema_state(db: Database) -> SchemaState:
    """The revisions the database is at and the ones this code has; DatabaseUnavailable if
    it cannot be reached."""
    try:
        async with db.engine.connect() as conn:
            return await conn.run_sync(_state)
    except Exception as exc:
        problem = db.unavailable(exc)
        if problem is None:
            raise
        raise problem from None


def _tables(sync_conn: Any) -> list[str]:
    return [t for t in inspect(sync_conn).get_table_names() if t != "alembic_version"]


def _upgrade(sync_conn: Any, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_conn
    command.upgrade(cfg, revision)


async def upgrade(db: Database, revision: str = "head") -> SchemaState:
    """Apply every pending migration; refuses a database newer than this code."""
    state = await schema_state(db)
    if not state.known:
        raise _newer(state)
    async with db.engine.begin() as conn:
        if db.is_postgres:  # the second of two instances waits, then finds it done
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(_upgrade, revision)
    return await schema_state(db)


async def require_current(db: Database) -> SchemaState | None:
    """Make sure the database is at the newest migration this code knows: an empty database
    gets the schema (the state it is at then is returned; None when nothing was done); one
    at an older revision, or holding tables of something else, is a SchemaError saying what
    to do; one newer than this code too."""
    state = await schema_state(db)
    if not state.known:
        raise _newer(state)
    if state.up_to_date:
        return None
    if not state.current:
        async with db.engine.connect() as conn:
            others = await conn.run_sync(_tables)
        if not others:
            return await upgrade(db)
        raise SchemaError(
            f"the database {db.safe_url} has tables ({', '.join(sorted(others)[:3])}…) but no"
            " inbox-daemon schema: give inbox-daemon a database of its own"
        )
    raise SchemaError(
        f"the database {db.safe_url} is at {', '.join(state.current)}, this inbox-daemon needs"
        f" {', '.join(state.head)}: run `inbox-daemon db upgrade`"
    )


def _newer(state: SchemaState) -> SchemaError:
    return SchemaError(
        f"the database schema ({', '.join(state.current)}) is newer than this inbox-daemon "
        "knows: upgrade inbox-daemon instead of downgrading the database"
    )
