"""Shared fixtures: a migrated database on SQLite and, where it runs, on PostgreSQL.

PostgreSQL is expected on 127.0.0.1:5432 (user postgres, trust auth). Without it the PostgreSQL
variants are skipped on a laptop, but fail in CI (``CI=true``), where they must run.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import upgrade

PG_HOST = os.environ.get("INBOX_DAEMON_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("INBOX_DAEMON_TEST_PG_PORT", "5432"))
IN_CI = os.environ.get("CI", "").lower() == "true"
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    if postgres_reachable():
        return
    message = f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}"
    if IN_CI:
        pytest.fail(f"{message}, and CI must run the PostgreSQL tests")
    pytest.skip(message)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def make_postgres_database() -> str:
    """A fresh, empty database; returns its SQLAlchemy URL."""
    require_postgres()
    name = f"inbox_test_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    return f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"


async def drop_postgres_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inbox.db'}"
        return
    url = await make_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database, on each backend."""
    database = Database(db_url)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()
