"""The case service's intake verbs: the activity of a message taken in, an answer an agent
sent from their own mail client, an automatic mail recorded on the case it answers (a bounce
marks our message failed), and the receipts of a transaction's messages.

They all write inside the caller's transaction (intake's batch, :mod:`inbox_daemon.ingest`),
which knows what the messages need (threading, ids, stored files) before it starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import (
    ActivityState,
    DeliveryState,
    Direction,
    Status,
)
from inbox_daemon.cases.model import Actor
from inbox_daemon.kinds import kind_of
from inbox_daemon.messages import InboundMessage
from inbox_daemon.service.activities import add_files
from inbox_daemon.service.changes import ChangeVerbs
from inbox_daemon.service.core import StoredFile
from inbox_daemon.store import cases as repo
from inbox_daemon.store import ids, intake
from inbox_daemon.store.tables import ActivityRow, CaseRow, ReceiptRow


@dataclass(frozen=True)
class IncomingContents:
    """What an activity taken in holds besides the message itself."""

    #: The text the customer just wrote (the channel separated it from the quote).
    new_text: str
    #: The message's files, stored before the transaction.
    files: Sequence[StoredFile] = ()
    #: Added to the activity's text: e.g. an attachment too large to keep.
    note: str = ""


class IncomingVerbs(ChangeVerbs):
    async def record_incoming_in(
        self,
        session: AsyncSession,
        case_row: CaseRow,
        msg: InboundMessage,
        actor: Actor,
        contents: IncomingContents,
        *,
        direction: Direction = Direction.INCOMING,
        now: datetime | None = None,
    ) -> ActivityRow:
        """The activity of a message taken in, with what intake knows of it (``contents``).
        ``OUTGOING``: an answer an agent sent from their mail client (already delivered: the
        outbox never sends it)."""
        now = now or self.clock()
        flags = msg.flags
        sent = direction is Direction.OUTGOING
        activity = ActivityRow(
            id=await ids.new_id(session, ActivityRow),  # written with the batch, at its end
            case_id=case_row.id,
            kind=kind_of(msg.channel).activity_kind.value,
            direction=direction.value,
            state=ActivityState.COMPLETED.value,
            channel=msg.channel,
            mailbox=msg.mailbox,
            subject=msg.subject,
            body_text=msg.text + contents.note,
            body_new=contents.new_text,
            body_html=msg.html,
            sender=msg.sender.email or msg.sender.slack_user,
            recipients=[a.email or a.slack_user or "" for a in msg.to],
            cc=[a.email or "" for a in msg.cc],
            message_id=msg.message_id,
            in_reply_to=msg.in_reply_to[0] if msg.in_reply_to else None,
            references=list(msg.references),
            slack_channel=msg.slack_channel,
            slack_ts=msg.slack_ts,
            slack_thread_ts=msg.slack_thread_ts,
            automatic=flags.automatic,
            flags={
                "auto_reply": flags.auto_reply,
                "bounce": flags.bounce,
                "mailing_list": flags.mailing_list,
                "failed_recipients": list(flags.failed_recipients),
                "from_us": flags.from_us,
                "auto_subject": flags.auto_subject,
                **({"unparsed_headers": list(msg.unparsed_headers)} if msg.unparsed_headers
                   else {}),
            },
            actor=str(actor),
            delivery_state=DeliveryState.SENT.value if sent else None,
            sent_at=(msg.sent_at or now) if sent else None,
            created_at=now,
            updated_at=now,
        )  # fmt: skip
        session.add(activity)
        add_files(session, activity.id, contents.files)
        return activity

    async def record_answer_by_mail_in(
        self,
        session: AsyncSession,
        case_row: CaseRow,
        msg: InboundMessage,
        actor: Actor,
        contents: IncomingContents,
        *,
        now: datetime | None = None,
    ) -> ActivityRow:
        """An agent's answer sent from their mail client: an outgoing activity on the case
        (already delivered), counted as the agent's reply."""
        now = now or self.clock()
        if not Status(case_row.status).read_only:
            await self.change_in(
                session, case_row, lifecycle.AgentReplied(), actor,
                detail={"message_id": msg.message_id},
            )  # fmt: skip
        activity = await self.record_incoming_in(
            session, case_row, msg, actor, contents, direction=Direction.OUTGOING, now=now
        )
        repo.audit(session, case_row.id, at=now, actor=actor, action="reply_by_mail",
                   detail={"activity": activity.id, "message_id": msg.message_id,
                           "sender": msg.sender.email})  # fmt: skip
        return activity

    async def record_automatic_in(
        self,
        session: AsyncSession,
        case_row: CaseRow,
        msg: InboundMessage,
        actor: Actor,
        contents: IncomingContents,
        *,
        now: datetime | None = None,
    ) -> ActivityRow:
        """An auto-reply or a bounce recorded on the case it answers (it never reopens it); a
        bounce of one of our messages marks that message failed."""
        now = now or self.clock()
        kind = "bounce" if msg.flags.bounce else "auto-reply"
        activity = await self.record_incoming_in(session, case_row, msg, actor, contents, now=now)
        detail: dict[str, Any] = {"activity": activity.id, "message_id": msg.message_id}
        if msg.flags.bounce:
            ours = await intake.outgoing_by_message_ids(session, msg.thread_ids)
            if ours is not None:
                failed = ", ".join(msg.flags.failed_recipients) or "recipient"
                await intake.mark_bounced(session, ours.id, f"bounced: {failed}", now)
                detail["failed_activity"] = ours.id
        repo.audit(session, case_row.id, at=now, actor=actor,
                   action=kind.replace("-", "_") + "_recorded", detail=detail)  # fmt: skip
        return activity

    async def record_receipts_in(
        self, session: AsyncSession, receipts: Sequence[Mapping[str, Any]]
    ) -> None:
        """What became of each message of the transaction (its receipt: source, ids, outcome,
        activity), in one INSERT. Their unique keys make a concurrent twin (another instance,
        the same message) fail here or at its own commit; the loser finds it a duplicate."""
        if receipts:
            await session.execute(insert(ReceiptRow), list(receipts))
