"""Slack bookkeeping in the database: which Slack message is each case's card, and queries
that find a case from a Slack message.

``case_cards`` has one row per case that has a card: the card's channel and ts, the case
``version`` the card shows (so a periodic pass can refresh cards of cases changed elsewhere,
e.g. from the CLI) and when it was last written.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases.enums import READ_ONLY, Direction
from inbox_daemon.store.tables import ActivityRow, AttachmentRow, CaseRow, SlackCardRow

__all__ = [
    "CardState",
    "SlackCardRow",
    "attachment_names",
    "card_case",
    "card_state",
    "cards_to_sync",
    "incoming_by_ts",
    "message_case",
    "save_card",
]


@dataclass(frozen=True)
class CardState:
    """A case row and its card, if it has one."""

    case: CaseRow
    card: SlackCardRow | None


async def card_state(session: AsyncSession, number: str) -> CardState | None:
    stmt = (
        select(CaseRow, SlackCardRow)
        .outerjoin(SlackCardRow, SlackCardRow.case_id == CaseRow.id)
        .where(CaseRow.number == number.upper())
    )
    row = (await session.execute(stmt)).first()
    return CardState(row[0], row[1]) if row is not None else None


async def save_card(
    session: AsyncSession, case_id: int, channel: str, ts: str, version: int, now: datetime
) -> None:
    row = await session.get(SlackCardRow, case_id, with_for_update=True)
    if row is None:
        session.add(
            SlackCardRow(
                case_id=case_id, channel=channel, ts=ts, case_version=version, updated_at=now
            )
        )
        return
    row.channel, row.ts, row.case_version, row.updated_at = channel, ts, version, now


async def card_case(session: AsyncSession, channel: str, ts: str) -> str | None:
    """The number of the case whose card is message ``ts`` of ``channel``."""
    stmt = (
        select(CaseRow.number)
        .join(SlackCardRow, SlackCardRow.case_id == CaseRow.id)
        .where(SlackCardRow.channel == channel, SlackCardRow.ts == ts)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def message_case(session: AsyncSession, channel: str, ts: str) -> str | None:
    """The case of a card, or of a Slack thread one of its activities started or belongs to."""
    number = await card_case(session, channel, ts)
    if number is not None:
        return number
    stmt = (
        select(CaseRow.number)
        .join(ActivityRow, ActivityRow.case_id == CaseRow.id)
        .where(
            ActivityRow.slack_channel == channel,
            or_(ActivityRow.slack_ts == ts, ActivityRow.slack_thread_ts == ts),
        )
        .order_by(ActivityRow.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def incoming_by_ts(
    session: AsyncSession, channel: str, ts: str
) -> tuple[ActivityRow, str] | None:
    """The activity taken in from Slack message ``ts`` of ``channel`` (locked), and its case's
    number; None if no activity has that ts."""
    stmt = (
        select(ActivityRow, CaseRow.number)
        .join(CaseRow, CaseRow.id == ActivityRow.case_id)
        .where(
            ActivityRow.slack_channel == channel,
            ActivityRow.slack_ts == ts,
            ActivityRow.direction == Direction.INCOMING.value,
        )
        .order_by(ActivityRow.id.desc())
        .limit(1)
        .with_for_update()
    )
    found = (await session.execute(stmt)).one_or_none()
    return (found[0], str(found[1])) if found is not None else None


async def attachment_names(session: AsyncSession, activity_id: int) -> list[str]:
    stmt = (
        select(AttachmentRow.filename)
        .where(AttachmentRow.activity_id == activity_id)
        .order_by(AttachmentRow.id)
    )
    return list((await session.execute(stmt)).scalars())


async def cards_to_sync(
    session: AsyncSession, queues: Collection[str], limit: int = 50
) -> list[str]:
    """Cases whose card is behind the case, and open cases of ``queues`` without a card."""
    read_only = [s.value for s in READ_ONLY]
    stmt = (
        select(CaseRow.number)
        .outerjoin(SlackCardRow, SlackCardRow.case_id == CaseRow.id)
        .where(
            or_(
                SlackCardRow.case_version != CaseRow.version,
                (SlackCardRow.case_id.is_(None))
                & CaseRow.queue.in_(list(queues))
                & CaseRow.status.not_in(read_only),
            )
        )
        .order_by(CaseRow.id)
        .limit(limit)
    )
    return list((await session.execute(stmt)).scalars())
