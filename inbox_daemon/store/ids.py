"""Row ids known before the INSERT, so that a batch of intake writes needs no flush per row.

Intake creates a case, its activity and often an acknowledgement per message, and each is
referred to by id at once (an activity by its case; attachments, receipts and audit events by
the activity). If the database picks the id, every new row costs a flush of the session, with
the unit of work's overhead and a trip to the database each time; with the id known when the
row is made, the session writes a whole batch at the commit, one multi-row INSERT per table.

- PostgreSQL: ids are taken from the column's own sequence with ``nextval``: at first a
  quarter more than the previous transaction used (at least 16), then twice as many each time
  a transaction runs out, so a batch usually asks once per table.
  Rows inserted without an id draw from the same sequence, so nothing can collide; ids taken
  and not used are gaps, as a sequence always allows.
- SQLite: every write transaction starts with ``BEGIN IMMEDIATE`` (:mod:`.db`), so no other
  writer runs until it ends: ids are counted on from the table's largest id, read once per
  transaction. A row the transaction adds without an id while the count is running gets its
  id from the count too, at the flush (:func:`_number_new_rows`), so SQLite never picks one
  that was handed out and is not written yet.

The count lives in the transaction's unit of work (:mod:`.unit`) and ends with it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.store.tables import ActivityRow, Base, CaseRow
from inbox_daemon.store.unit import unit_of

#: Ids taken from a PostgreSQL sequence in a transaction's first query, and at most.
BLOCK, MAX_BLOCK = 16, 1024

#: The tables whose ids intake hands out itself.
COUNTED: tuple[type[Base], ...] = (CaseRow, ActivityRow)


class _Taken(deque[int]):
    """Ids taken from a sequence and not handed out yet; how many the next query takes, and
    how many were handed out."""

    numbers_new_rows = False  # the database numbers them, from the same sequence

    def __init__(self, table: str, values: Iterable[int], block: int, used: int) -> None:
        super().__init__(values)
        self.table = table
        self.block = block
        self.used = used

    def take(self) -> int:
        self.used += 1
        return self.popleft()

    def done(self) -> None:
        _last_used[self.table] = self.used


#: Ids the last transaction took of each table, on PostgreSQL: the next one's first block.
_last_used: dict[str, int] = {}


class _SqliteCount:
    numbers_new_rows = True  # SQLite would pick max(id) + 1: one of ours, not written yet

    def __init__(self, largest: int) -> None:
        self.last = largest

    def take(self) -> int:
        self.last += 1
        return self.last

    def done(self) -> None:
        pass


async def new_id(session: AsyncSession, model: type[Base]) -> int:
    """A fresh id for a row of ``model`` (one of :data:`COUNTED`) in this transaction."""
    counts = unit_of(session).ids
    table = str(model.__tablename__)
    count = counts.get(table)
    if isinstance(count, _SqliteCount):
        return count.take()
    if isinstance(count, _Taken) and count:
        return int(count.take())
    if isinstance(count, _Taken):
        block, used = min(count.block * 2, MAX_BLOCK), count.used
    else:
        block, used = min(max(_last_used.get(table, 0) * 5 // 4, BLOCK), MAX_BLOCK), 0
    # Core statements on the connection: no autoflush of the session's pending rows.
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        largest = (await connection.execute(text(f"SELECT max(id) FROM {table}"))).scalar()
        sqlite_count = counts[table] = _SqliteCount(int(largest or 0))
        return sqlite_count.take()
    taken = await connection.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)"),
        {"table": table, "n": block},
    )
    taken_ids = (int(value) for value in taken.scalars())
    pg_count = counts[table] = _Taken(table, taken_ids, block, used)
    return int(pg_count.take())
