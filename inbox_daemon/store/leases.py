"""One daemon per SQLite file; one poller per mailbox on PostgreSQL.

SQLite: :class:`InstanceLock` takes an exclusive ``flock`` on ``<database>.lock`` for the life of
the process, so a second daemon on the same file is refused at start (the kernel drops the lock
when the process dies, however it dies).

PostgreSQL: several daemons share the work, but a mailbox must be read by one of them at a time.
:class:`Leases` keeps rows ``leases(name, holder, expires_at)``: :meth:`Leases.acquire` takes a
lease that is free, expired or already ours, and extends it; a holder that stops renewing loses
it once it expires.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import delete, or_, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from inbox_daemon.errors import ConfigError
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import LeaseRow

__all__ = ["InstanceLock", "Leases", "holder_id"]


def holder_id() -> str:
    """``hostname:pid:random``: unique per process, readable in the table."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class InstanceLock:
    """An exclusive lock on ``<path>.lock`` held until :meth:`release` or the process ends."""

    def __init__(self, database_path: Path) -> None:
        self.database_path = database_path
        self.path = database_path.with_name(database_path.name + ".lock")
        self._file: IO[str] | None = None

    @classmethod
    def for_database(cls, db: Database) -> InstanceLock | None:
        """The lock for a SQLite database file; None for other databases."""
        if not db.is_sqlite or not db.url.database:
            return None
        return cls(Path(db.url.database).expanduser().resolve())

    def acquire(self) -> None:
        """Take the lock, or raise ConfigError naming the daemon that has it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - kept open for the life of the process
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise ConfigError(
                f"another inbox-daemon (pid {owner}) is already running on "
                f"{self.database_path} (lock {self.path}); SQLite allows one daemon at a time"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._file = fh

    def release(self) -> None:
        if self._file is not None:
            fh, self._file = self._file, None
            fh.truncate(0)
            fh.close()  # closing drops the flock


def _rowcount(result: object) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


class Leases:
    """Named leases in the database, held by ``holder`` (one per daemon process)."""

    def __init__(
        self,
        db: Database,
        *,
        holder: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.holder = holder or holder_id()
        self.clock = clock

    async def acquire(self, name: str, duration: timedelta) -> bool:
        """Take or renew ``name`` until now + duration; False while another holder has it."""
        now = self.clock()
        if await self._take(name, now, now + duration):
            return True
        try:
            async with self.db.transaction() as session:
                session.add(LeaseRow(name=name, holder=self.holder, expires_at=now + duration))
        except IntegrityError:
            # Someone inserted it first: ours to take only if that was us, or it expired.
            return await self._take(name, now, now + duration)
        return True

    async def _take(self, name: str, now: datetime, expires: datetime) -> bool:
        async with self.db.transaction() as session:
            result = await session.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.name == name,
                    or_(LeaseRow.holder == self.holder, LeaseRow.expires_at <= now),
                )
                .values(holder=self.holder, expires_at=expires)
            )
            return _rowcount(result) == 1

    async def renew(self, name: str, duration: timedelta) -> bool:
        """Extend a lease we hold and that has not expired; False if it was lost."""
        now = self.clock()
        async with self.db.transaction() as session:
            result = await session.execute(
                update(LeaseRow)
                .where(
                    LeaseRow.name == name,
                    LeaseRow.holder == self.holder,
                    LeaseRow.expires_at > now,
                )
                .values(expires_at=now + duration)
            )
            return _rowcount(result) == 1

    async def release(self, name: str) -> None:
        """Give a lease up (on a clean stop), so another instance need not wait for expiry."""
        async with self.db.transaction() as session:
            await session.execute(
                delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == self.holder)
            )

    async def holder_of(self, name: str) -> str | None:
        async with self.db.transaction() as session:
            row = await session.get(LeaseRow, name)
            return row.holder if row is not None and row.expires_at > self.clock() else None
