"""The unit of work: what one transaction keeps between its statements, and when it is written.

Every session the store makes is a :class:`WorkSession` and holds one :class:`UnitOfWork` for
the transaction it is in (:func:`unit_of`). Its hooks are attached to that session alone, so
a session of the CLI, the outbox or Slack runs only its own bookkeeping (which, with nothing
recorded, is none). What it holds:

- ``ids``: the row ids handed out before their INSERT, per table (:mod:`.ids`);
- ``case_count``: the case-number counter while the transaction holds its lock
  (:func:`.cases.next_case_number`): last number handed out, last one written;
- ``pending_audit``: audit rows recorded and not written yet (:func:`.cases.audit`);
- ``written_counts``: open cases per owner as last read from the database
  (:func:`.cases.open_case_counts`);
- ``rotations``: round-robin rows read (locked) in this transaction (:mod:`.intake`);
- what a caller above the store attaches for the transaction, one object per type
  (:meth:`UnitOfWork.attach`: intake's batch lookups).

When it is written:

- before each flush, on SQLite, a counted table's row added without an id gets the next id of
  the count (so SQLite never picks one that was handed out and is not written yet);
- after each flush (its INSERTs came first: the audit rows refer to them), the pending audit
  rows in one multi-row INSERT and the counter's new value in one UPDATE;
- at the commit, a last flush and the same;
- a rolled-back savepoint drops the pending audit rows and keeps counting case numbers (a gap,
  never a number twice); a commit (of a savepoint too) ends the counts, the rotations and the
  id counts, whose locks ended with it; a rollback ends the id counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from sqlalchemy import event, insert, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from inbox_daemon.store.tables import AuditRow, Base, Counter, TeamRotationRow

__all__ = ["CASE_COUNTER", "IdCount", "UnitOfWork", "WorkSession", "flush_audit", "unit_of"]

CASE_COUNTER = "case_number"
T = TypeVar("T")
_COUNTERS = Base.metadata.tables[Counter.__tablename__]


class IdCount(Protocol):
    """Ids of one table handed out in a transaction (see :mod:`.ids`)."""

    #: Whether a row added without an id takes the next of this count at the flush.
    numbers_new_rows: bool

    def take(self) -> int: ...

    def done(self) -> None:
        """The transaction ended."""


@dataclass
class UnitOfWork:
    """One transaction's bookkeeping (see the module docstring)."""

    ids: dict[str, IdCount] = field(default_factory=dict)
    #: [last number handed out, last number written], while the counter is locked.
    case_count: list[int] | None = None
    pending_audit: list[dict[str, Any]] = field(default_factory=list)
    written_counts: dict[str, int] | None = None
    rotations: dict[str, TeamRotationRow | None] = field(default_factory=dict)
    attached: dict[type, object] = field(default_factory=dict)

    def attach(self, value: object) -> None:
        """Keep ``value`` for this transaction, found again by its type (:meth:`get`)."""
        self.attached[type(value)] = value

    def get(self, kind: type[T]) -> T | None:
        found = self.attached.get(kind)
        return found if isinstance(found, kind) else None

    def write_pending(self, session: Session) -> None:
        """Write the recorded audit rows and the advanced case counter, a statement each."""
        if self.pending_audit:
            rows, self.pending_audit = self.pending_audit, []
            session.connection().execute(insert(AuditRow), rows)
        count = self.case_count
        if count is not None and count[0] != count[1]:
            session.connection().execute(
                update(_COUNTERS).where(_COUNTERS.c.name == CASE_COUNTER).values(value=count[0])
            )
            count[1] = count[0]

    def number_new_rows(self, session: Session) -> None:
        """A row of a counted table added without an id takes the next id of the count."""
        if not self.ids:
            return
        for row in session.new:
            table = getattr(type(row), "__tablename__", None)
            count = self.ids.get(table) if isinstance(table, str) else None
            if count is not None and count.numbers_new_rows and row.id is None:
                row.id = count.take()

    def end_ids(self) -> None:
        """Id counts are good for one transaction: the next may see rows another writer
        added."""
        for count in self.ids.values():
            count.done()
        self.ids = {}


class WorkSession(Session):
    """A session with its transaction's :class:`UnitOfWork` and the hooks that write it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unit = UnitOfWork()
        event.listen(self, "before_flush", _before_flush)
        event.listen(self, "after_flush", _after_flush)
        event.listen(self, "before_commit", _before_commit)
        event.listen(self, "after_soft_rollback", _after_soft_rollback)
        event.listen(self, "after_commit", _after_commit)
        event.listen(self, "after_rollback", _after_rollback)


def unit_of(session: AsyncSession) -> UnitOfWork:
    """The unit of work of ``session``'s transaction."""
    sync = session.sync_session
    if not isinstance(sync, WorkSession):
        raise TypeError("a session not made by inbox_daemon.store.db.Database")
    return sync.unit


def _work(session: Session) -> UnitOfWork:
    assert isinstance(session, WorkSession)
    return session.unit


def _before_flush(session: Session, _context: Any, _instances: Any) -> None:
    _work(session).number_new_rows(session)


def _after_flush(session: Session, _context: Any) -> None:
    unit = _work(session)
    unit.write_pending(session)
    unit.written_counts = None  # what is written has changed


def _before_commit(session: Session) -> None:
    session.flush()  # the rows the audit events refer to go first (the flush writes them)
    _work(session).write_pending(session)


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    """Work rolled back is not written (flush before a savepoint to keep what came before it);
    rows read in it may be gone; a savepoint's rollback keeps the case count counting on."""
    unit = _work(session)
    unit.pending_audit = []
    unit.written_counts = None
    unit.rotations = {}
    if not previous.nested:
        unit.case_count = None


def _after_commit(session: Session) -> None:
    """The locks of the transaction (or savepoint) ended with it: the counter's count, the
    rotation rows and the id counts are not its to keep."""
    unit = _work(session)
    unit.end_ids()
    unit.case_count = None
    unit.written_counts = None
    unit.rotations = {}


def _after_rollback(session: Session) -> None:
    _work(session).end_ids()


async def flush_audit(session: AsyncSession) -> None:
    """Write pending audit rows now, for a query that reads the audit trail."""
    await session.flush()
    await session.run_sync(lambda sync: _work(sync).write_pending(sync))
