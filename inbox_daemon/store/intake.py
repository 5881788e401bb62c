"""Queries of the intake pipeline: receipts, mailbox checkpoints, threading and quarantine."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases.enums import READ_ONLY, DeliveryState, Direction
from inbox_daemon.messages import Checkpoint
from inbox_daemon.store.tables import (
    ActivityRow,
    CaseRow,
    MailboxStateRow,
    QuarantineRow,
    ReceiptRow,
    TeamRotationRow,
)
from inbox_daemon.store.unit import unit_of

#: Values in one ``IN (...)`` of a lookup whose list has no natural bound (References).
IN_CHUNK = 500


async def receipt_for_source(
    session: AsyncSession, channel: str, mailbox: str, external_id: str
) -> ReceiptRow | None:
    stmt = select(ReceiptRow).where(
        ReceiptRow.channel == channel,
        ReceiptRow.mailbox == mailbox,
        ReceiptRow.external_id == external_id,
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def sources_taken(
    session: AsyncSession, sources: Sequence[tuple[str, str, str]]
) -> set[tuple[str, str, str]]:
    """Which of these ``(channel, mailbox, external_id)`` already have a receipt."""
    if not sources:
        return set()
    stmt = select(ReceiptRow.channel, ReceiptRow.mailbox, ReceiptRow.external_id).where(
        tuple_(ReceiptRow.channel, ReceiptRow.mailbox, ReceiptRow.external_id).in_(list(sources))
    )
    return {(c, m, e) for c, m, e in (await session.execute(stmt)).all()}


async def receipts_for_content(
    session: AsyncSession, message_ids: Sequence[str]
) -> list[tuple[str, str, str, int | None]]:
    """``(message_id, content_hash, external_id, activity_id)`` of receipts for these ids."""
    if not message_ids:
        return []
    stmt = select(
        ReceiptRow.message_id, ReceiptRow.content_hash, ReceiptRow.external_id,
        ReceiptRow.activity_id,
    ).where(ReceiptRow.message_id.in_(sorted(set(message_ids))))  # fmt: skip
    return [
        (mid, digest, external_id, activity_id)
        for mid, digest, external_id, activity_id in (await session.execute(stmt)).all()
        if mid and digest
    ]


async def checkpoint(session: AsyncSession, mailbox: str) -> Checkpoint | None:
    row = await session.get(MailboxStateRow, mailbox)
    if row is None:
        return None
    return Checkpoint(row.uidvalidity, row.last_uid, row.group_first_uid or 0)


async def save_checkpoint(
    session: AsyncSession, mailbox: str, position: Checkpoint, now: datetime
) -> None:
    """Move the mailbox's checkpoint forward (never back within one UIDVALIDITY)."""
    row = await session.get(MailboxStateRow, mailbox, with_for_update=True)
    if row is None:
        session.add(
            MailboxStateRow(
                mailbox=mailbox,
                uidvalidity=position.uidvalidity,
                last_uid=position.uid,
                group_first_uid=position.group_start or None,
                updated_at=now,
            )
        )
        return
    if row.uidvalidity != position.uidvalidity or position.uid > row.last_uid:
        row.uidvalidity = position.uidvalidity
        row.last_uid = position.uid
        row.group_first_uid = position.group_start or None
        row.updated_at = now


async def cases_by_message_ids(
    session: AsyncSession, ids: Sequence[str]
) -> list[tuple[str, int, CaseRow]]:
    """(Message-ID, activity id, case) of every activity carrying one of these Message-IDs."""
    found: list[tuple[str, int, CaseRow]] = []
    for start in range(0, len(ids), IN_CHUNK):
        stmt = (
            select(ActivityRow.message_id, ActivityRow.id, CaseRow)
            .join(CaseRow, ActivityRow.case_id == CaseRow.id)
            .where(ActivityRow.message_id.in_(list(ids[start : start + IN_CHUNK])))
        )
        found.extend(
            (mid, aid, case) for mid, aid, case in (await session.execute(stmt)).all() if mid
        )
    return found


async def cases_by_numbers(session: AsyncSession, numbers: Collection[str]) -> list[CaseRow]:
    if not numbers:
        return []
    stmt = select(CaseRow).where(CaseRow.number.in_(sorted(numbers)))
    return list((await session.execute(stmt)).scalars())


async def case_by_slack_thread(
    session: AsyncSession, channel: str, thread_ts: str
) -> CaseRow | None:
    stmt = (
        select(CaseRow)
        .join(ActivityRow, ActivityRow.case_id == CaseRow.id)
        .where(ActivityRow.slack_channel == channel, ActivityRow.slack_ts == thread_ts)
        .order_by(ActivityRow.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def outgoing_by_message_ids(session: AsyncSession, ids: Sequence[str]) -> ActivityRow | None:
    if not ids:
        return None
    stmt = (
        select(ActivityRow)
        .where(
            ActivityRow.message_id.in_(list(ids)),
            ActivityRow.direction == Direction.OUTGOING.value,
        )
        .order_by(ActivityRow.id.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def mark_bounced(session: AsyncSession, activity_id: int, reason: str, now: datetime) -> None:
    await session.execute(
        update(ActivityRow)
        .where(ActivityRow.id == activity_id)
        .values(delivery_state=DeliveryState.FAILED.value, last_error=reason, updated_at=now)
    )


async def open_contacts(
    session: AsyncSession, *, emails: Sequence[str], slacks: Sequence[str]
) -> set[tuple[str, str]]:
    """Which of these contacts (``("email", a)``, ``("slack", u)``) have an open case."""
    found: set[tuple[str, str]] = set()
    open_case = CaseRow.status.not_in([s.value for s in READ_ONLY])
    if emails:
        stmt = select(CaseRow.contact_email).where(
            CaseRow.contact_email.in_(sorted(set(emails))), open_case
        )
        found.update(("email", e) for e in (await session.execute(stmt)).scalars() if e)
    if slacks:
        stmt = select(CaseRow.contact_slack).where(
            CaseRow.contact_slack.in_(sorted(set(slacks))), open_case
        )
        found.update(("slack", u) for u in (await session.execute(stmt)).scalars() if u)
    return found


async def last_assigned(session: AsyncSession, team: str) -> str | None:
    """The user a round-robin team gave its last case to; the team's rotation stays locked
    until the transaction ends, so that concurrent transactions take turns."""
    row = await _rotation(session, team)
    return row.last_user if row is not None else None


async def _rotation(session: AsyncSession, team: str) -> TeamRotationRow | None:
    """The team's rotation row, locked; read once per transaction (a batch assigning fifty
    cases in turn asks fifty times). The rows this transaction adds are known here, so the
    query needs no flush of what the batch wrote so far."""
    known = unit_of(session).rotations
    if team not in known:
        with session.no_autoflush:
            known[team] = await session.get(TeamRotationRow, team, with_for_update=True)
    return known[team]


async def save_rotation(session: AsyncSession, team: str, user: str, now: datetime) -> None:
    row = await _rotation(session, team)
    if row is None:
        row = TeamRotationRow(team=team, last_user=user, updated_at=now)
        session.add(row)
        unit_of(session).rotations[team] = row
    else:
        row.last_user = user
        row.updated_at = now


async def quarantined(
    session: AsyncSession, channel: str, mailbox: str, external_id: str
) -> QuarantineRow | None:
    stmt = select(QuarantineRow).where(
        QuarantineRow.channel == channel,
        QuarantineRow.mailbox == mailbox,
        QuarantineRow.external_id == external_id,
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def quarantined_bytes(
    session: AsyncSession, channel: str, mailbox: str, sha256: str, states: Sequence[str]
) -> QuarantineRow | None:
    """The row set aside for the same bytes from the same mailbox, still in one of ``states``."""
    stmt = (
        select(QuarantineRow)
        .where(
            QuarantineRow.channel == channel,
            QuarantineRow.mailbox == mailbox,
            QuarantineRow.sha256 == sha256,
            QuarantineRow.state.in_(list(states)),
        )
        .order_by(QuarantineRow.id)
        .limit(1)
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def forget_receipt(
    session: AsyncSession, channel: str, mailbox: str, external_id: str
) -> None:
    """Drop a source's receipt so the message can be taken in again (quarantine retry)."""
    await session.execute(
        delete(ReceiptRow).where(
            ReceiptRow.channel == channel,
            ReceiptRow.mailbox == mailbox,
            ReceiptRow.external_id == external_id,
        )
    )


async def quarantine_list(session: AsyncSession, state: str | None = "held") -> list[QuarantineRow]:
    stmt = select(QuarantineRow).order_by(QuarantineRow.id)
    if state is not None:
        stmt = stmt.where(QuarantineRow.state == state)
    return list((await session.execute(stmt)).scalars())
