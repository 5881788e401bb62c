"""Messages set aside for a person instead of becoming an activity on a case.

Two kinds share the ``quarantine`` table and the quarantine file store (raw bytes kept under
their SHA-256): **held** messages could not be parsed or stored (an error, waiting for a person
to look), and **ignored** ones were taken in fine but belong to no case: automatic mail that
answers none of our messages (the ``record`` policy of rules.yaml's ``automatic_mail``) and mail
sent from one of our own addresses that answers no case. ``inbox-daemon quarantine list
--ignored`` lists them, ``quarantine retry N`` opens a case of one.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Final, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.channels.base import Delivery
from inbox_daemon.logging import get_logger
from inbox_daemon.store import intake
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import QuarantineRow

__all__ = ["HELD", "IGNORED", "set_aside"]

log = get_logger("inbox_daemon.ingest")

#: Could not be parsed or stored: waiting for a person.
HELD: Final = "held"
#: Taken in, but answers no case and opened none: kept for a person to look at.
IGNORED: Final = "ignored"


async def set_aside(
    session: AsyncSession,
    files: FileStore,
    delivery: Delivery,
    reason: str,
    now: datetime,
    state: Literal["held", "ignored"] = HELD,
) -> QuarantineRow:
    """Keep the delivery's raw bytes and a row saying why, in the caller's transaction.

    A source set aside before (a message failing again, a retried one) keeps its one row; the
    same bytes from the same mailbox under another source id (delivered again) count on the
    row already waiting for a person instead of adding one.
    """
    if delivery.raw_path is not None:
        sha, size = await asyncio.to_thread(files.put_file, delivery.raw_path)
    else:
        sha, size = await asyncio.to_thread(files.put, delivery.raw)
    source = (delivery.channel, delivery.mailbox, delivery.external_id)
    row = await intake.quarantined(session, *source)
    if row is None:
        twin = await intake.quarantined_bytes(
            session, delivery.channel, delivery.mailbox, sha, (HELD, IGNORED)
        )
        if twin is not None:
            twin.deliveries += 1
            twin.updated_at = now
            log.info("the same bytes set aside again", channel=delivery.channel,
                     mailbox=delivery.mailbox, external_id=delivery.external_id,
                     quarantine_id=twin.id, deliveries=twin.deliveries)  # fmt: skip
            return twin
        row = QuarantineRow(
            channel=delivery.channel,
            mailbox=delivery.mailbox,
            external_id=delivery.external_id,
            sha256=sha,
            size=size,
            reason=reason,
            state=state,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
    else:
        row.sha256, row.size = sha, size
        row.reason, row.state, row.updated_at = reason, state, now
    level = log.warning if state == HELD else log.info
    level(
        "message quarantined" if state == HELD else "message set aside",
        channel=delivery.channel,
        mailbox=delivery.mailbox,
        external_id=delivery.external_id,
        message_id=delivery.message.message_id if delivery.message else None,
        reason=reason,
    )
    return row
