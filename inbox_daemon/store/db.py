"""The database handle: engine set-up for SQLite and PostgreSQL and the unit of work.

SQLite (the embedded default) runs in WAL mode with a busy timeout and foreign keys on, and
every transaction starts with ``BEGIN IMMEDIATE`` so concurrent writers queue up instead of
failing on a lock upgrade; it goes through aiosqlite, one trip to its thread per statement
(:mod:`.sqlite_driver`). PostgreSQL goes through asyncpg.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from inbox_daemon.errors import ConfigError, DatabaseUnavailable
from inbox_daemon.store import sqlite_driver
from inbox_daemon.store.unit import WorkSession

SQLITE_BUSY_TIMEOUT_MS = 30_000


def parse_url(url: str) -> URL:
    """Check a database URL and give the async driver for it."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"invalid database url {url!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername=sqlite_driver.DRIVER)
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(
        f"unsupported database {backend!r}: use sqlite:///PATH or postgresql+asyncpg://..."
    )


def unavailable_reason(exc: BaseException) -> str | None:
    """Why the database could not be reached, in a few words, if ``exc`` says it could not be
    (a refused or timed-out connection, an unknown host, no such database or role, a refused
    login, a file SQLite cannot open); None for any other error."""
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the server running, on that port?)"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, ConnectionError):  # reset, aborted: the server went away
        return exc.strerror or type(exc).__name__
    if isinstance(exc, DBAPIError):
        orig = exc.orig
        text = str(orig.args[0] if orig is not None and orig.args else orig or exc)
        if isinstance(orig, sqlite3.OperationalError) or "sqlite3" in type(orig).__module__:
            return text if "unable to open" in text else None
        first = text.splitlines()[0] if text else ""
        known = ("does not exist", "password authentication failed", "no pg_hba.conf entry",
                 "too many connections", "the database system is", "connection")  # fmt: skip
        if exc.connection_invalidated or any(k in first for k in known):
            return first or type(orig).__name__
    return None


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An async engine and the sessions made from it."""

    def __init__(self, url: str, *, echo: bool = False, create_folder: bool = True) -> None:
        """``create_folder``: make the folder of a SQLite file if it is missing (``init``,
        ``db upgrade``); without it a missing folder is a ConfigError saying so (a typo in
        the path must not quietly start an empty database elsewhere)."""
        self.url = parse_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            database = self.url.database or ""
            if database in ("", ":memory:"):
                raise ConfigError("an in-memory SQLite database is not supported: give a file")
            folder = Path(database).expanduser().parent
            if create_folder:
                folder.mkdir(parents=True, exist_ok=True)
            elif not folder.is_dir():
                raise ConfigError(
                    f"the SQLite database {database}: its folder {folder} does not exist;"
                    " correct [database] url, or create the folder"
                    " (`inbox-daemon db upgrade` creates both)"
                )
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_connect)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=WorkSession
        )

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    @property
    def safe_url(self) -> str:
        """The URL as a person writes it (no driver name), any password hidden, for logs and
        messages."""
        plain = self.url.set(drivername=self.url.get_backend_name())
        return plain.render_as_string(hide_password=True)

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable | None:
        """``exc`` as the one-line error of a database that cannot be reached, naming the URL
        without its password; None when ``exc`` is some other error."""
        reason = unavailable_reason(exc)
        if reason is None:
            return None
        return DatabaseUnavailable(f"cannot reach the database {self.safe_url}: {reason}")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """One transaction, with its unit of work (:mod:`.unit`): committed when the block
        ends, rolled back if it raises."""
        async with self.sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
