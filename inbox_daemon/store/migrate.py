"""Schema migrations with Alembic: upgrade, and the check the daemon makes before it starts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

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


async def schema_state(db: Database) -> SchemaState:
    async with db.engine.connect() as conn:
        return await conn.run_sync(_state)


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
        await conn.run_sync(_upgrade, revision)
    return await schema_state(db)


async def require_current(db: Database) -> None:
    """Raise SchemaError unless the database is at the newest migration this code knows."""
    state = await schema_state(db)
    if not state.known:
        raise _newer(state)
    if not state.up_to_date:
        where = "is empty" if not state.current else f"is at {', '.join(state.current)}"
        raise SchemaError(
            f"the database {db.safe_url} {where}, this inbox-daemon needs "
            f"{', '.join(state.head)}: run `inbox-daemon db upgrade`"
        )


def _newer(state: SchemaState) -> SchemaError:
    return SchemaError(
        f"the database schema ({', '.join(state.current)}) is newer than this inbox-daemon "
        "knows: upgrade inbox-daemon instead of downgrading the database"
    )
