"""The case service's delivery verbs: what the outbox may send, and what became of it.

:class:`DeliveryLedger` claims the due outgoing activities (``pending`` and due, or ``sending``
whose lease ran out because a daemon died mid-send) in a short transaction of its own, setting
``delivery_state = sending`` and a lease (``next_attempt_at`` holds the lease's end), and marks
each afterwards: ``sent``; ``pending`` again at a later time with the error; or ``failed``, with
a ``delivery_failed`` audit event on the case in the same transaction. A mark that finds the
row no longer under our lease changes nothing and says so.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases.enums import DeliveryState, Direction
from inbox_daemon.cases.model import Actor
from inbox_daemon.logging import get_logger
from inbox_daemon.service.core import Clock, utcnow
from inbox_daemon.store import cases as repo
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, AttachmentRow, CaseRow

__all__ = ["MAX_ERROR", "OUTBOX", "Claimed", "Claims", "DeliveryLedger", "GivenUp"]

log = get_logger("inbox_daemon.outbox")

OUTBOX = Actor.system("outbox")
MAX_ERROR = 2000


@dataclass(frozen=True)
class GivenUp:
    """A message given up for good: its case and why."""

    case_number: str
    error: str


@dataclass(frozen=True)
class Claimed:
    """An outgoing activity taken for delivery under ``lease`` (rows detached, for reading)."""

    activity: ActivityRow
    case: CaseRow
    attachments: Sequence[AttachmentRow]
    lease: datetime


@dataclass
class Claims:
    claimed: list[Claimed] = field(default_factory=list)
    given_up: list[GivenUp] = field(default_factory=list)


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


class DeliveryLedger:
    """The outgoing activities' delivery state, written for the outbox."""

    def __init__(self, db: Database, clock: Clock = utcnow) -> None:
        self.db = db
        self.clock = clock

    async def claim(
        self, channels: Collection[str], *, lease: datetime, limit: int, max_attempts: int
    ) -> Claims:
        """Take up to ``limit`` due rows of ``channels``; a row past ``max_attempts`` is given
        up instead. PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``, so several daemons
        share the work without sending a message twice; SQLite serialises transactions."""
        found = Claims()
        if not channels:
            return found
        now = self.clock()
        stmt = (
            select(ActivityRow, CaseRow)
            .join(CaseRow, CaseRow.id == ActivityRow.case_id)
            .where(
                ActivityRow.direction == Direction.OUTGOING.value,
                ActivityRow.channel.in_(list(channels)),
                ActivityRow.delivery_state.in_(
                    [DeliveryState.PENDING.value, DeliveryState.SENDING.value]
                ),
                or_(ActivityRow.next_attempt_at.is_(None), ActivityRow.next_attempt_at <= now),
            )
            .order_by(ActivityRow.next_attempt_at, ActivityRow.id)
            .limit(limit)
        )
        if self.db.is_postgres:
            stmt = stmt.with_for_update(skip_locked=True, of=ActivityRow)
        async with self.db.transaction() as session:
            rows = (await session.execute(stmt)).all()
            files = await _attachments(session, [a.id for a, _ in rows])
            for activity, case in rows:
                if activity.delivery_state == DeliveryState.SENDING.value:
                    log.warning("delivery lease expired, sending again", activity=activity.id,
                                message_id=activity.message_id, case=case.number)  # fmt: skip
                if activity.attempts >= max_attempts:
                    error = f"gave up after {activity.attempts} attempts: {activity.last_error}"
                    found.given_up.append(_fail_row(session, activity, case, error, now))
                    continue
                activity.delivery_state = DeliveryState.SENDING.value
                activity.next_attempt_at = lease
                activity.attempts += 1
                activity.updated_at = now
                found.claimed.append(Claimed(activity, case, files.get(activity.id, ()), lease))
        return found

    async def mark_delivered(
        self, activity_id: int, *, sent_at: datetime, sent_id: str | None = None
    ) -> bool:
        """The message went out: whoever holds the lease now, that is what the row must say.
        ``sent_id``: the channel's id for it, kept where replies in its thread name it."""
        values: dict[str, Any] = {
            "delivery_state": DeliveryState.SENT.value,
            "sent_at": sent_at,
            "next_attempt_at": None,
            "last_error": None,
            "updated_at": self.clock(),
        }
        if sent_id is not None:
            values["slack_ts"] = sent_id
        async with self.db.transaction() as session:
            result = await session.execute(
                update(ActivityRow)
                .where(
                    ActivityRow.id == activity_id,
                    ActivityRow.delivery_state == DeliveryState.SENDING.value,
                )
                .values(**values)
            )
        return _rowcount(result) == 1

    async def retry_later(
        self, activity_id: int, lease: datetime, *, at: datetime, error: str
    ) -> bool:
        """Back to ``pending`` until ``at``, if the row is still under our lease."""
        async with self.db.transaction() as session:
            result = await session.execute(
                update(ActivityRow)
                .where(*_ours(activity_id, lease))
                .values(
                    delivery_state=DeliveryState.PENDING.value,
                    next_attempt_at=at,
                    last_error=error[:MAX_ERROR],
                    updated_at=self.clock(),
                )
            )
        return _rowcount(result) == 1

    async def mark_failed(self, activity_id: int, lease: datetime, error: str) -> GivenUp | None:
        """Given up for good, audited on the case; None if the row is no longer under our
        lease (nothing is changed)."""
        async with self.db.transaction() as session:
            stmt = select(ActivityRow, CaseRow).join(CaseRow, CaseRow.id == ActivityRow.case_id)
            row = (await session.execute(stmt.where(*_ours(activity_id, lease)))).one_or_none()
            if row is None:
                return None
            return _fail_row(session, row[0], row[1], error, self.clock())


def _ours(activity_id: int, lease: datetime) -> Any:
    """The row, if it is still claimed by us (the lease we set is still on it)."""
    return (
        ActivityRow.id == activity_id,
        ActivityRow.delivery_state == DeliveryState.SENDING.value,
        ActivityRow.next_attempt_at == lease,
    )


def _fail_row(
    session: AsyncSession, activity: ActivityRow, case: CaseRow, error: str, now: datetime
) -> GivenUp:
    """Mark the row failed and audit it on the case, in the caller's transaction."""
    activity.delivery_state = DeliveryState.FAILED.value
    activity.next_attempt_at = None
    activity.last_error = error[:MAX_ERROR]
    activity.updated_at = now
    repo.audit(
        session, case.id, at=now, actor=OUTBOX, action="delivery_failed",
        detail={"activity": activity.id, "message_id": activity.message_id,
                "channel": activity.channel, "attempts": activity.attempts,
                "error": error[:MAX_ERROR]},
    )  # fmt: skip
    log.error("delivery failed for good", activity=activity.id, case=case.number,
              message_id=activity.message_id, attempts=activity.attempts,
              error=error)  # fmt: skip
    return GivenUp(case.number, error[:MAX_ERROR])


async def _attachments(session: AsyncSession, ids: Sequence[int]) -> dict[int, list[AttachmentRow]]:
    if not ids:
        return {}
    rows = (
        await session.execute(select(AttachmentRow).where(AttachmentRow.activity_id.in_(ids)))
    ).scalars()
    found: dict[int, list[AttachmentRow]] = {}
    for row in rows:
        found.setdefault(row.activity_id, []).append(row)
    return found
