"""The outbox on SQLite and PostgreSQL, delivering through a real SMTP server (aiosmtpd).

Replies are made by the case service, time is moved by a fake clock, and what counts is what the
SMTP server received and what the rows and the audit trail say afterwards.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import timedelta

from outbox_helpers import (
    ALICE,
    Clock,
    activity,
    audit_events,
    email_case,
    mailbox_for,
    rows_where,
)
from servers.smtp import SmtpSink

from inbox_daemon.cases.enums import DeliveryState
from inbox_daemon.channels.email.smtp import EmailSender, SmtpSender
from inbox_daemon.messages import DeliveryReceipt, OutboundMessage
from inbox_daemon.outbox import Outbox, OutboxPolicy
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow


def make_outbox(db: Database, sink: SmtpSink, clock: Clock, **policy: object) -> Outbox:
    sender = EmailSender({"support": SmtpSender(mailbox_for(sink), clock=clock)})
    return Outbox(
        db, {"email": sender}, clock=clock, policy=OutboxPolicy(**policy),  # type: ignore[arg-type]
        rng=random.Random(0),
    )  # fmt: skip


async def test_reply_is_delivered_once_with_threading_headers(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, incoming = await email_case(svc, references=("<root@mail.example.com>",))
    reply = await svc.reply(case.number, "Please restart it.\nRegards, Alice", ALICE)
    outbox = make_outbox(db, smtp_sink, clock)

    assert await outbox.run_once() == 1
    assert await outbox.run_once() == 0  # nothing left: never sent twice

    [got] = smtp_sink.received
    mail = got.message
    assert got.mail_from == "support@example.com"
    assert got.rcpt_tos == ("ann@example.com",)
    assert mail["From"] == "support@example.com"
    assert mail["To"] == "Ann Example <ann@example.com>"
    assert mail["Subject"] == "Re: Printer on fire [CAS-000001]"
    assert mail["Message-ID"] == reply.message_id
    assert mail["In-Reply-To"] == incoming.message_id
    assert str(mail["References"]).split() == ["<root@mail.example.com>", incoming.message_id]
    assert mail["X-Inbox-Daemon-Case"] == "CAS-000001"
    assert mail["Auto-Submitted"] is None
    body = mail.get_body(("plain",))
    assert body is not None
    assert body.get_content() == "Please restart it.\nRegards, Alice\n"

    row = await activity(db, reply.id)
    assert row.delivery_state == DeliveryState.SENT.value
    assert (row.sent_at, row.attempts, row.last_error) == (clock.now, 1, None)
    assert row.message_id == reply.message_id


async def test_4xx_is_retried_with_backoff_until_the_server_takes_it(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    outbox = make_outbox(db, smtp_sink, clock)
    smtp_sink.fail_next(3, "451 4.3.0 Mailbox busy, try again")
    start = clock.now

    assert await outbox.run_once() == 1
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.attempts) == (DeliveryState.PENDING.value, 1)
    assert row.last_error is not None
    assert "451" in row.last_error
    assert row.next_attempt_at is not None
    assert timedelta(seconds=24) <= row.next_attempt_at - start <= timedelta(seconds=36)
    assert await outbox.run_once() == 0  # not due yet

    for attempt, base in ((2, 60), (3, 120)):
        assert row.next_attempt_at is not None
        clock.now = row.next_attempt_at
        assert await outbox.run_once() == 1
        row = await activity(db, reply.id)
        assert (row.delivery_state, row.attempts) == (DeliveryState.PENDING.value, attempt)
        assert row.next_attempt_at is not None
        delay = row.next_attempt_at - clock.now
        assert base * 0.8 <= delay.total_seconds() <= base * 1.2
    assert smtp_sink.received == []

    assert row.next_attempt_at is not None
    clock.now = row.next_attempt_at
    assert await outbox.run_once() == 1
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.attempts, row.last_error) == ("sent", 4, None)
    assert smtp_sink.message_ids() == [reply.message_id]
    assert smtp_sink.attempts == 4
    assert await audit_events(db, "delivery_failed") == []


async def test_server_down_is_transient(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    outbox = make_outbox(db, smtp_sink, clock)
    smtp_sink.down()
    assert await outbox.run_once() == 1
    row = await activity(db, reply.id)
    assert row.delivery_state == DeliveryState.PENDING.value
    assert row.last_error is not None
    assert str(smtp_sink.port) in row.last_error
    smtp_sink.up()
    clock.now += timedelta(minutes=1)
    assert await outbox.run_once() == 1
    assert smtp_sink.message_ids() == [reply.message_id]
    assert (await activity(db, reply.id)).delivery_state == DeliveryState.SENT.value


async def test_5xx_fails_at_once_and_is_audited(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    outbox = make_outbox(db, smtp_sink, clock)
    smtp_sink.fail_next(1, "554 5.7.1 Message rejected as spam")

    assert await outbox.run_once() == 1
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.attempts, row.next_attempt_at) == ("failed", 1, None)
    assert row.last_error is not None
    assert "554 5.7.1 Message rejected as spam" in row.last_error
    [event] = await audit_events(db, "delivery_failed")
    assert (event.case_id, event.actor_kind, event.actor_name) == (case.id, "system", "outbox")
    assert event.detail["activity"] == reply.id
    assert event.detail["message_id"] == reply.message_id
    assert "554" in event.detail["error"]
    clock.now += timedelta(days=1)
    assert await outbox.run_once() == 0
    assert smtp_sink.received == []


async def test_refused_recipient_fails_and_gives_up_after_the_limit(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    first, _ = await email_case(svc, sender="gone@example.com")
    second, _ = await email_case(svc, sender="busy@example.com")
    refused = await svc.reply(first.number, "Hello?", ALICE)
    busy = await svc.reply(second.number, "Hello?", ALICE)
    outbox = make_outbox(db, smtp_sink, clock, max_attempts=3, concurrency=1)

    smtp_sink.refuse_recipients(1, "550 5.1.1 No such user")
    smtp_sink.fail_next(10, "452 4.2.2 Mailbox full")
    assert await outbox.run_once() == 2
    row = await activity(db, refused.id)
    assert row.delivery_state == DeliveryState.FAILED.value
    assert row.last_error is not None
    assert "550 5.1.1 No such user" in row.last_error
    for _ in range(2):
        clock.now += timedelta(hours=2)
        assert await outbox.run_once() == 1
    row = await activity(db, busy.id)
    assert (row.delivery_state, row.attempts) == (DeliveryState.FAILED.value, 3)
    assert row.last_error is not None
    assert row.last_error.startswith("gave up after 3 attempts")
    events = await audit_events(db, "delivery_failed")
    assert [(e.case_id, e.detail["attempts"]) for e in events] == [(first.id, 1), (second.id, 3)]
    clock.now += timedelta(hours=2)
    assert await outbox.run_once() == 0


async def test_crash_between_claim_and_mark_resends_the_same_message_id(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    crashed = make_outbox(db, smtp_sink, clock)
    [claim] = await crashed.claim()
    assert claim.message is not None
    await crashed.senders["email"].send(claim.message)  # went out; then the daemon was killed
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.attempts) == (DeliveryState.SENDING.value, 1)

    restarted_db = Database(db.url.render_as_string(hide_password=False))
    try:
        restarted = make_outbox(restarted_db, smtp_sink, clock)
        assert await restarted.run_once() == 0  # the lease still holds
        clock.now += timedelta(minutes=10, seconds=1)
        assert await restarted.run_once() == 1
        # The dead worker's late verdict does not undo the restarted one's.
        await crashed._retry_or_fail(claim, "connection lost")
        await crashed._mark_failed(claim, "connection lost")
    finally:
        await restarted_db.dispose()

    ids = smtp_sink.message_ids()
    assert ids == [reply.message_id, reply.message_id]  # at most twice, same Message-ID
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.attempts) == (DeliveryState.SENT.value, 2)
    assert await audit_events(db, "delivery_failed") == []


async def test_two_workers_send_each_of_200_replies_exactly_once(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    cases = [await email_case(svc, sender=f"c{i}@example.com") for i in range(40)]

    async def replies(number: str) -> list[str]:
        return [str((await svc.reply(number, f"answer {n}", ALICE)).message_id) for n in range(5)]

    expected = [mid for batch in await asyncio.gather(
        *(replies(case.number) for case, _ in cases)) for mid in batch]  # fmt: skip
    assert len(set(expected)) == 200
    other_db = Database(db.url.render_as_string(hide_password=False))
    try:
        workers = [make_outbox(db, smtp_sink, clock), make_outbox(other_db, smtp_sink, clock)]
        claimed = [0, 0]

        async def work(index: int) -> None:
            while (n := await workers[index].run_once()) > 0:
                claimed[index] += n

        await asyncio.gather(work(0), work(1))
        assert sum(claimed) == 200
        assert all(claimed), claimed  # both shared the work
    finally:
        await other_db.dispose()

    counts = Counter(smtp_sink.message_ids())
    assert set(counts) == set(expected)
    assert set(counts.values()) == {1}
    rows = await rows_where(db, ActivityRow.message_id.in_(expected))
    assert {r.delivery_state for r in rows} == {DeliveryState.SENT.value}
    assert {r.attempts for r in rows} == {1}


async def test_run_loop_wakes_early_and_stops(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    outbox = make_outbox(db, smtp_sink, clock)
    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run(stop, interval=60))
    await asyncio.sleep(0.2)  # the first pass found nothing; now it sleeps for a minute
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    outbox.wake()
    for _ in range(100):
        if smtp_sink.received:
            break
        await asyncio.sleep(0.05)
    assert smtp_sink.message_ids() == [reply.message_id]
    stop.set()
    await asyncio.wait_for(task, timeout=2)


async def test_channels_without_a_sender_are_left_alone(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    idle = Outbox(db, {"slack": SmtpSender(mailbox_for(smtp_sink))}, clock=clock)
    assert await idle.run_once() == 0
    assert (await activity(db, reply.id)).delivery_state == DeliveryState.PENDING.value


async def test_a_row_that_keeps_killing_its_daemon_is_given_up(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    outbox = make_outbox(db, smtp_sink, clock, max_attempts=2)
    for _ in range(2):  # claimed, then the daemon dies mid-send, twice
        assert len(await outbox.claim()) == 1
        clock.now += timedelta(minutes=11)
    assert await outbox.run_once() == 0
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.attempts) == (DeliveryState.FAILED.value, 2)
    [event] = await audit_events(db, "delivery_failed")
    assert event.detail["error"].startswith("gave up after 2 attempts")
    assert smtp_sink.received == []


class HangingSender:
    def __init__(self) -> None:
        self.calls = 0

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.calls += 1
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def test_a_send_that_hangs_is_cut_off_and_retried(
    db: Database, svc: CaseService, clock: Clock
) -> None:
    case, _ = await email_case(svc)
    reply = await svc.reply(case.number, "Please restart it.", ALICE)
    sender = HangingSender()
    policy = OutboxPolicy(send_timeout=timedelta(seconds=0.2))
    outbox = Outbox(db, {"email": sender}, clock=clock, policy=policy)
    assert await outbox.run_once() == 1
    row = await activity(db, reply.id)
    assert (row.delivery_state, row.attempts, sender.calls) == ("pending", 1, 1)
    assert row.last_error is not None
    assert "no answer within" in row.last_error
