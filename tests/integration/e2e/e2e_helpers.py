"""Helpers of the end-to-end email tests: the pipeline as the daemon builds it, mail made in
code (customer mail, auto-replies, delivery status notifications) and database look-ups."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from servers.dovecot import MailAccount
from servers.smtp import Received, SmtpSink
from sqlalchemy import select

from inbox_daemon.channels.base import Delivery, IngestResult
from inbox_daemon.channels.email.imap import Backoff, ImapChannel
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.ingest import Ingestor
from inbox_daemon.outbox import Outbox
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, AuditRow, CaseRow, QuarantineRow, ReceiptRow

OUR_ADDRESS = "support@ours.example"
MESSAGE_DOMAIN = "ours.example"
CUSTOMER = "ann@customer.example"
FAST = Backoff(initial=0.05, maximum=0.2)

RULES = """
version: 1
users:
  - {id: alice, name: Alice, email: alice@ours.example}
  - {id: bob, name: Bob, email: bob@ours.example}
teams:
  - {id: tier1, name: Tier 1, members: [alice, bob], strategy: round_robin}
queues:
  - {id: general, name: General, team: tier1}
sla:
  standard:
    business_time: false
    first_response: {low: 1d, medium: 4h, high: 1h, critical: 30m}
    resolve_by: {low: 5d, medium: 2d, high: 1d, critical: 4h}
default: {queue: general, sla: standard}
"""


class Clock:
    """A clock the test moves by hand, shared by the case service, the outbox and SMTP."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


# --- mail made in code -------------------------------------------------------------------------


def new_message_id(domain: str = "customer.example") -> str:
    return f"<{secrets.token_hex(8)}@{domain}>"


def customer_mail(
    subject: str = "Printer on fire",
    *,
    sender: str = f"Ann Example <{CUSTOMER}>",
    body: str = "It smokes since this morning.\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    headers: dict[str, str] | None = None,
) -> tuple[bytes, str]:
    """A mail to our mailbox, as a mail client would store it; returns (raw, Message-ID)."""
    mid = message_id or new_message_id()
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = OUR_ADDRESS
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = mid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(), mid


def auto_reply_to(received: Received, *, sender: str) -> tuple[bytes, str]:
    """An out-of-office answer (RFC 3834) to a mail the SMTP sink received from us."""
    ours = received.message
    return customer_mail(
        f"Automatic reply: {ours['Subject']}",
        sender=sender,
        body="I am out of the office until Monday.\n",
        in_reply_to=received.message_id,
        references=[received.message_id],
        headers={"Auto-Submitted": "auto-replied"},
    )


def delivery_status_notification(
    returned: Received,
    *,
    failed: str,
    with_threading_headers: bool,
) -> tuple[bytes, str]:
    """An RFC 3464 bounce of ``returned`` (a mail we sent): multipart/report with a
    message/delivery-status part (Final-Recipient, Action: failed) and the returned headers.

    ``with_threading_headers``: the report also carries ``In-Reply-To``/``References`` naming
    our Message-ID at the top (as Gmail's do); Postfix's carry it only in the returned headers.
    """
    mid = new_message_id("mx.customer.example")
    boundary = f"=_report_{secrets.token_hex(6)}"
    ours = returned.message
    threading = (
        f"In-Reply-To: {returned.message_id}\r\nReferences: {returned.message_id}\r\n"
        if with_threading_headers
        else ""
    )
    returned_headers = "".join(
        f"{name}: {ours[name]}\r\n"
        for name in ("From", "To", "Subject", "Date", "Message-ID", "In-Reply-To")
        if ours[name] is not None
    )
    raw = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n"
        f"To: {OUR_ADDRESS}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(datetime.now(UTC))}\r\n"
        f"Message-ID: {mid}\r\n"
        f"{threading}"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This is the mail system at host mx.customer.example.\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n"
        "\r\n"
        f"<{failed}>: host mx.customer.example said: 550 5.1.1 User unknown\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n"
        "Arrival-Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {failed}\r\n"
        f"Original-Recipient: rfc822; {failed}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"{returned_headers}"
        "\r\n"
        f"--{boundary}--\r\n"
    )
    return raw.encode(), mid


# --- the pipeline ------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """The intake and delivery halves of the daemon around one Dovecot account and one sink.

    ``channel`` is the IMAP channel of the deterministic steps (:meth:`take_in` runs it once);
    ``results`` records what the pipeline said about every delivery, in order.
    """

    db: Database
    clock: Clock
    service: CaseService
    ingestor: Ingestor
    outbox: Outbox
    smtp: SmtpSink
    account: MailAccount
    settings: MailboxSettings
    channel: ImapChannel = field(init=False)
    results: list[tuple[Delivery, IngestResult]] = field(default_factory=list)
    #: Called inside the sink after the ingestor returned (before the channel acknowledges).
    after_ingest: Callable[[Delivery, IngestResult], Any] | None = None

    def __post_init__(self) -> None:
        self.channel = self.new_channel()

    def new_channel(self, **kwargs: Any) -> ImapChannel:
        """A channel on the account, built as the daemon builds it (real parser)."""
        kwargs.setdefault("password", self.account.password)
        kwargs.setdefault("backoff", FAST)
        kwargs.setdefault("timeout", 5.0)
        return ImapChannel(self.settings, **kwargs)

    async def sink(self, delivery: Delivery) -> IngestResult:
        result = await self.ingestor(delivery)
        self.results.append((delivery, result))
        if self.after_ingest is not None:
            await self.after_ingest(delivery, result)
        return result

    async def append(self, raw: bytes) -> int:
        return await asyncio.to_thread(self.account.append, raw)

    async def take_in(self, channel: ImapChannel | None = None) -> int:
        """One pass of the IMAP channel into the pipeline; returns how many were delivered."""
        return await (channel or self.channel).run_once(self.sink)

    async def mail_in(self, raw: bytes) -> IngestResult:
        """Append one mail to Dovecot and take it in; returns what the pipeline did with it."""
        before = len(self.results)
        await self.append(raw)
        assert await self.take_in() == 1
        assert len(self.results) == before + 1
        return self.results[-1][1]

    def outcomes(self) -> list[str]:
        return [result.outcome for _, result in self.results]


# --- the database ------------------------------------------------------------------------------


async def cases(db: Database) -> list[CaseRow]:
    async with db.transaction() as session:
        return list((await session.execute(select(CaseRow).order_by(CaseRow.id))).scalars())


async def case(db: Database, number: str) -> CaseRow:
    async with db.transaction() as session:
        stmt = select(CaseRow).where(CaseRow.number == number)
        return (await session.execute(stmt)).scalar_one()


async def activities(db: Database, *conditions: Any) -> list[ActivityRow]:
    async with db.transaction() as session:
        stmt = select(ActivityRow).where(*conditions).order_by(ActivityRow.id)
        return list((await session.execute(stmt)).scalars())


async def incoming(db: Database) -> list[ActivityRow]:
    return await activities(db, ActivityRow.direction == "incoming")


async def outgoing(db: Database) -> list[ActivityRow]:
    return await activities(db, ActivityRow.direction == "outgoing")


async def receipts(db: Database) -> list[ReceiptRow]:
    async with db.transaction() as session:
        stmt = select(ReceiptRow).order_by(ReceiptRow.id)
        return list((await session.execute(stmt)).scalars())


async def quarantined(db: Database) -> list[QuarantineRow]:
    async with db.transaction() as session:
        return list((await session.execute(select(QuarantineRow))).scalars())


async def audit(db: Database, case_id: int) -> list[AuditRow]:
    async with db.transaction() as session:
        stmt = select(AuditRow).where(AuditRow.case_id == case_id).order_by(AuditRow.id)
        return list((await session.execute(stmt)).scalars())


async def eventually(check: Callable[[], Any], within: float = 5.0, step: float = 0.02) -> float:
    """Await ``check()`` (sync or async) until it is truthy; returns the seconds it took."""
    started = time.monotonic()
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - started
        assert time.monotonic() - started < within, f"condition not reached within {within} s"
        await asyncio.sleep(step)
