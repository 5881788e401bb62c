"""Helpers of the outbox tests: a fake clock, mailbox settings, cases made as intake makes them."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from servers.smtp import SmtpSink
from sqlalchemy import select

from inbox_daemon.cases.directory import Directory, User
from inbox_daemon.cases.enums import ActivityKind, ActivityState, Direction, Origin
from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.channels.email.settings import MailboxSettings, SmtpSettings
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, AuditRow, CaseRow

ALICE = Actor.user("alice")
DIRECTORY = Directory.of(users=[User("alice", "Alice", "alice@example.com")])
DOMAIN = "support.example.com"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def mailbox_for(sink: SmtpSink | None, name: str = "support", **smtp: Any) -> MailboxSettings:
    """The settings of a mailbox sending through ``sink`` (or through the out-folder)."""
    settings = None
    if sink is not None:
        settings = SmtpSettings(host=sink.host, port=sink.port, tls=smtp.pop("tls", "none"), **smtp)
    return MailboxSettings(
        name=name, address=f"{name}@example.com", kind="maildir", path="/nonexistent",
        smtp=settings,
    )  # fmt: skip


async def email_case(
    svc: CaseService,
    *,
    sender: str = "ann@example.com",
    name: str = "Ann Example",
    subject: str = "Printer on fire",
    mailbox: str = "support",
    references: tuple[str, ...] = (),
    flags: dict[str, Any] | None = None,
) -> tuple[CaseRow, ActivityRow]:
    """A case created from a customer's mail, as the intake pipeline makes it."""
    now = svc.clock()
    async with svc.db.transaction() as session:
        draft = Case(number="", title=subject, origin=Origin.EMAIL, contact_email=sender,
                     contact_name=name)  # fmt: skip
        _case, row = await svc.create_in(session, draft, Actor.channel(f"email:{mailbox}"))
        incoming = ActivityRow(
            case_id=row.id, kind=ActivityKind.EMAIL.value, direction=Direction.INCOMING.value,
            state=ActivityState.COMPLETED.value, channel="email", mailbox=mailbox,
            subject=subject, body_text="It is on fire.", sender=sender,
            recipients=[f"{mailbox}@example.com"],
            message_id=f"<{secrets.token_hex(6)}@mail.example.com>", references=list(references),
            flags=flags or {}, actor=f"customer:{sender}", created_at=now, updated_at=now,
        )  # fmt: skip
        session.add(incoming)
        await session.flush()
    return row, incoming


async def activity(db: Database, activity_id: int) -> ActivityRow:
    async with db.transaction() as session:
        row = await session.get(ActivityRow, activity_id)
        assert row is not None
        return row


async def rows_where(db: Database, *conditions: Any) -> list[ActivityRow]:
    async with db.transaction() as session:
        stmt = select(ActivityRow).where(*conditions).order_by(ActivityRow.id)
        return list((await session.execute(stmt)).scalars())


async def audit_events(db: Database, action: str) -> list[AuditRow]:
    async with db.transaction() as session:
        stmt = select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)
        return list((await session.execute(stmt)).scalars())
