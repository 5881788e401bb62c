"""Email end to end, through the real pipeline: a real Dovecot in front (IMAP channel, real
parser), the intake pipeline and the case service on SQLite and PostgreSQL, and the outbox
sending through a real SMTP server (the aiosmtpd sink) behind.

Issues "Email intake" and "Replies go back through the same channel".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from e2e_helpers import (
    CUSTOMER,
    MESSAGE_DOMAIN,
    OUR_ADDRESS,
    Pipeline,
    activities,
    audit,
    auto_reply_to,
    case,
    cases,
    customer_mail,
    delivery_status_notification,
    eventually,
    incoming,
    outgoing,
    quarantined,
    receipts,
)

from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.lifecycle import Close
from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.base import Checkpoint
from inbox_daemon.channels.email.imap import ImapChannel
from inbox_daemon.store import intake
from inbox_daemon.store.tables import ActivityRow

ALICE = Actor.user("alice")


@contextlib.asynccontextmanager
async def running(pipeline: Pipeline, channel: ImapChannel) -> AsyncIterator[asyncio.Task[None]]:
    """``ImapChannel.run`` feeding the pipeline in a task, cancelled at the end."""
    task = asyncio.create_task(channel.run(pipeline.sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until_idling(channel: ImapChannel, task: asyncio.Task[None]) -> None:
    await eventually(lambda: channel.connected or task.done())
    assert not task.done(), task
    await asyncio.sleep(0.3)  # past the backlog, into IDLE


async def seen(pipeline: Pipeline, uid: int) -> bool:
    return "\\Seen" in await asyncio.to_thread(pipeline.account.flags, uid)


async def deliver_pending(pipeline: Pipeline) -> None:
    """Send what the outbox has (the acknowledgement), then forget what the sink got."""
    assert await pipeline.outbox.run_once() >= 1
    pipeline.smtp.clear()


# -- 1. intake ---------------------------------------------------------------------------------


async def test_new_mail_becomes_one_case_and_is_acknowledged_exactly_once(
    pipeline: Pipeline,
) -> None:
    db, smtp = pipeline.db, pipeline.smtp
    raw, customer_id = customer_mail("Printer on fire")
    uid = await pipeline.append(raw)
    uidvalidity = await asyncio.to_thread(pipeline.account.uidvalidity)

    assert await pipeline.take_in() == 1
    [(delivery, result)] = pipeline.results
    assert (result.outcome, result.case_number, result.queued_outgoing) == (
        "created", "CAS-000001", True,
    )  # fmt: skip
    assert delivery.external_id == f"{uidvalidity}:{uid}"
    [row] = await cases(db)
    assert (row.number, row.title, row.status, row.origin) == (
        "CAS-000001", "Printer on fire", "new", "email",
    )  # fmt: skip
    assert (row.contact_email, row.contact_name) == (CUSTOMER, "Ann Example")
    assert (row.queue, row.owner_team, row.owner_user) == ("general", "tier1", "alice")
    [activity] = await incoming(db)
    assert (activity.case_id, activity.message_id, activity.sender) == (
        row.id, customer_id, CUSTOMER,
    )  # fmt: skip
    assert (activity.channel, activity.mailbox, activity.subject) == (
        "email", "support", "Printer on fire",
    )  # fmt: skip
    assert "It smokes since this morning." in activity.body_text
    [receipt] = await receipts(db)
    assert (receipt.external_id, receipt.outcome, receipt.activity_id) == (
        f"{uidvalidity}:{uid}", "created", activity.id,
    )  # fmt: skip
    assert await seen(pipeline, uid)
    async with db.transaction() as session:
        assert await intake.checkpoint(session, "support") == Checkpoint(uidvalidity, uid)

    # Running the channel again creates nothing: not the same channel, not a fresh one.
    assert await pipeline.take_in() == 0
    restarted = pipeline.new_channel(checkpoint=Checkpoint(uidvalidity, uid))
    assert await pipeline.take_in(restarted) == 0
    assert len(await cases(db)) == 1
    assert len(await incoming(db)) == 1

    # The acknowledgement: queued in the same transaction, delivered once through SMTP.
    [ack] = await outgoing(db)
    assert (ack.automatic, ack.delivery_state, ack.in_reply_to) == (True, "pending", customer_id)
    assert await pipeline.outbox.run_once() == 1
    assert await pipeline.outbox.run_once() == 0
    pipeline.clock.now += timedelta(hours=2)
    assert await pipeline.outbox.run_once() == 0
    [got] = smtp.received
    mail = got.message
    assert got.mail_from == OUR_ADDRESS
    assert got.rcpt_tos == (CUSTOMER,)
    assert mail["Subject"] == "Re: Printer on fire [CAS-000001]"
    assert mail["In-Reply-To"] == customer_id
    assert str(mail["References"]).split() == [customer_id]
    assert mail["Auto-Submitted"] == "auto-replied"
    assert mail["Message-ID"] == ack.message_id
    assert str(ack.message_id).endswith(f".cas-000001@{MESSAGE_DOMAIN}>")
    assert mail["From"].addresses[0].addr_spec == OUR_ADDRESS
    assert mail["To"].addresses[0].addr_spec == CUSTOMER
    body = mail.get_body(("plain",))
    assert body is not None
    assert "case CAS-000001" in body.get_content()
    [ack] = await outgoing(db)
    assert (ack.delivery_state, ack.attempts) == ("sent", 1)

    # Our own acknowledgement never comes back in as a case (nor is it fetched again).
    assert await pipeline.take_in() == 0
    assert len(smtp.received) == 1


# -- 2. replies and the round trip ---------------------------------------------------------------


async def test_agent_reply_goes_out_by_smtp_and_the_customer_answer_threads_back(
    pipeline: Pipeline,
) -> None:
    db, smtp = pipeline.db, pipeline.smtp
    raw, customer_id = customer_mail("Printer on fire")
    created = await pipeline.mail_in(raw)
    assert created.case_number == "CAS-000001"
    await deliver_pending(pipeline)
    pipeline.outbox.wakeup.clear()

    reply = await pipeline.service.reply(
        "CAS-000001", "Please unplug it and wait ten minutes.", ALICE
    )
    assert pipeline.outbox.wakeup.is_set()  # the service woke the outbox, as in the daemon
    assert reply.delivery_state == "pending"
    assert await pipeline.outbox.run_once() == 1
    assert await pipeline.outbox.run_once() == 0

    [got] = smtp.received
    mail = got.message
    assert (got.mail_from, got.rcpt_tos) == (OUR_ADDRESS, (CUSTOMER,))
    assert mail["From"].addresses[0].addr_spec == OUR_ADDRESS
    [to] = mail["To"].addresses
    assert (to.addr_spec, to.display_name) == (CUSTOMER, "Ann Example")
    assert mail["Subject"] == "Re: Printer on fire [CAS-000001]"
    assert mail["Message-ID"] == reply.message_id
    assert mail["In-Reply-To"] == customer_id
    assert str(mail["References"]).split() == [customer_id]
    assert mail["Auto-Submitted"] is None  # a person wrote it
    assert mail["X-Inbox-Daemon-Case"] == "CAS-000001"
    body = mail.get_body(("plain",))
    assert body is not None
    assert body.get_content().strip() == "Please unplug it and wait ten minutes."
    sent = next(a for a in await outgoing(db) if a.id == reply.id)
    assert (sent.delivery_state, sent.attempts) == ("sent", 1)

    # The customer answers our reply; the subject lost the token, the header carries the thread.
    answer, answer_id = customer_mail(
        "Re: Printer on fire", body="Done, it works again.\n", in_reply_to=got.message_id
    )
    result = await pipeline.mail_in(answer)
    assert (result.outcome, result.case_number) == ("appended", "CAS-000001")
    assert len(await cases(db)) == 1
    row = await case(db, "CAS-000001")
    [ack, _reply] = await outgoing(db)
    timeline = [(a.direction, a.message_id) for a in await activities(db) if a.case_id == row.id]
    assert timeline == [
        ("incoming", customer_id),
        ("outgoing", ack.message_id),
        ("outgoing", reply.message_id),
        ("incoming", answer_id),
    ]
    last = (await incoming(db))[-1]
    assert (last.message_id, last.in_reply_to) == (answer_id, got.message_id)
    assert len(await outgoing(db)) == 2  # an answer on a case is not acknowledged again


# -- 3. resolved and closed cases ---------------------------------------------------------------


async def test_reply_reopens_a_resolved_case_and_opens_a_follow_up_for_a_closed_one(
    pipeline: Pipeline,
) -> None:
    db, service = pipeline.db, pipeline.service
    await pipeline.mail_in(customer_mail("Printer on fire")[0])
    assert await pipeline.outbox.run_once() == 1
    [ack_mail] = pipeline.smtp.received

    await service.pick("CAS-000001", "alice")
    await service.resolve("CAS-000001", "Replaced the fuser.", ALICE)
    resolved = await case(db, "CAS-000001")
    assert (resolved.status, resolved.worked_by) == ("resolved", "alice")

    again, _ = customer_mail(
        "Re: Printer on fire [CAS-000001]", body="It smokes again.\n",
        in_reply_to=ack_mail.message_id,
    )  # fmt: skip
    result = await pipeline.mail_in(again)
    assert (result.outcome, result.case_number) == ("reopened", "CAS-000001")
    reopened = await case(db, "CAS-000001")
    assert reopened.status == Status.REOPENED.value
    assert (reopened.owner_user, reopened.worked_by) == (None, None)
    assert (reopened.queue, reopened.owner_team) == ("general", "tier1")
    assert len(await cases(db)) == 1
    events = await audit(db, reopened.id)
    assert any(e.field == "status" and e.new_value == "reopened" for e in events)

    await service.resolve("CAS-000001", "Replaced the printer.", ALICE)
    await service.change("CAS-000001", Close(), Actor.system("auto-close"))
    late, late_id = customer_mail(
        "Re: Printer on fire [CAS-000001]", body="One more question.\n",
        in_reply_to=ack_mail.message_id,
    )  # fmt: skip
    result = await pipeline.mail_in(late)
    assert (result.outcome, result.case_number, result.detail) == (
        "follow_up", "CAS-000002", "CAS-000001",
    )  # fmt: skip
    old, new = await cases(db)
    assert (old.number, old.status) == ("CAS-000001", "closed")
    assert (new.number, new.status, new.parent_id) == ("CAS-000002", "new", old.id)
    assert [a.case_id for a in await incoming(db) if a.message_id == late_id] == [new.id]
    # The follow-up is a new case: it is acknowledged with its own number.
    pipeline.smtp.clear()
    assert await pipeline.outbox.run_once() == 1
    [follow_ack] = pipeline.smtp.received
    assert "[CAS-000002]" in str(follow_ack.message["Subject"])
    assert follow_ack.message["In-Reply-To"] == late_id


# -- 4. IDLE ------------------------------------------------------------------------------------


async def test_idle_turns_a_new_mail_into_a_case_within_two_seconds(pipeline: Pipeline) -> None:
    """poll_interval is 60 s: only IDLE can be this quick."""
    channel = pipeline.new_channel()
    async with running(pipeline, channel) as task:
        await until_idling(channel, task)
        raw, customer_id = customer_mail("Printer on fire")
        started = time.monotonic()
        uid = await pipeline.append(raw)

        async def a_case() -> bool:
            return len(await cases(pipeline.db)) == 1

        await eventually(a_case, within=5.0)
        took = time.monotonic() - started
        await eventually(lambda: seen(pipeline, uid))
        assert not task.done()
    assert took < 2.0, f"IDLE took {took:.2f} s"
    [activity] = await incoming(pipeline.db)
    assert activity.message_id == customer_id
    assert pipeline.outcomes() == ["created"]


# -- 5. restart from the checkpoint -------------------------------------------------------------


def _unsee_all(pipeline: Pipeline) -> None:
    with pipeline.account.connect() as conn:
        typ, data = conn.select("INBOX")
        assert typ == "OK", data
        typ, data = conn.uid("STORE", "1:*", "-FLAGS", "(\\Seen)")
        assert typ == "OK", data


async def test_a_restart_resumes_from_the_checkpoint_and_receipts_stop_duplicates(
    pipeline: Pipeline,
) -> None:
    db = pipeline.db
    first = [customer_mail(f"Question {n}") for n in range(3)]
    uids = [await pipeline.append(raw) for raw, _ in first]
    assert await pipeline.take_in() == 3
    uidvalidity = await asyncio.to_thread(pipeline.account.uidvalidity)
    async with db.transaction() as session:
        checkpoint = await intake.checkpoint(session, "support")
    assert checkpoint == Checkpoint(uidvalidity, uids[-1])

    # Someone marks the old mail unread in their mail client: that must not matter.
    await asyncio.to_thread(_unsee_all, pipeline)
    assert not await seen(pipeline, uids[0])
    later = [customer_mail(f"Question {n}") for n in range(3, 5)]
    for raw, _ in later:
        await pipeline.append(raw)

    restarted = pipeline.new_channel(checkpoint=checkpoint)
    assert await pipeline.take_in(restarted) == 2
    assert pipeline.outcomes() == ["created"] * 5
    assert [a.message_id for a in await incoming(db)] == [mid for _, mid in [*first, *later]]
    assert len(await cases(db)) == 5

    # Without a checkpoint every message is offered again: the receipts recognise each.
    fresh = pipeline.new_channel()
    assert await pipeline.take_in(fresh) == 5
    assert pipeline.outcomes()[5:] == ["duplicate"] * 5
    assert len(await incoming(db)) == 5
    assert len(await cases(db)) == 5
    assert len(await receipts(db)) == 5
    assert await seen(pipeline, uids[0])


# -- 6. a dropped connection --------------------------------------------------------------------


async def test_a_dropped_connection_loses_and_duplicates_nothing(pipeline: Pipeline) -> None:
    db, account = pipeline.db, pipeline.account
    mails = [customer_mail(f"Question {n}") for n in range(5)]
    uids = [await pipeline.append(raw) for raw, _ in mails[:2]]
    kicked: list[str] = []

    async def kick_inside_the_second(delivery: object, result: object) -> None:
        # Committed, not yet \Seen: the acknowledgement fails and the mail comes again.
        if not kicked and len(pipeline.results) == 2:
            kicked.append("in flight")
            assert await asyncio.to_thread(account.kick)

    pipeline.after_ingest = kick_inside_the_second
    channel = pipeline.new_channel()

    async def count(n: int) -> bool:
        return len(await incoming(db)) >= n

    async with running(pipeline, channel) as task:
        await eventually(lambda: count(2))
        # uid 2 is offered again if the kick landed before its \Seen (doveadm kick does not
        # wait for the connection to be gone, so it may also land just after)
        await eventually(lambda: channel.position is not None and channel.position.uid == uids[1])
        await until_idling(channel, task)
        assert await asyncio.to_thread(account.kick)  # and once more while idling
        kicked.append("idle")
        uids += [await pipeline.append(raw) for raw, _ in mails[2:4]]
        await eventually(lambda: count(4))
        await until_idling(channel, task)
        assert await asyncio.to_thread(account.kick)
        kicked.append("idle again")
        uids.append(await pipeline.append(mails[4][0]))
        await eventually(lambda: count(5))
        await eventually(lambda: channel.position is not None and channel.position.uid == uids[-1])
        assert not task.done()

    assert kicked == ["in flight", "idle", "idle again"]
    assert [a.message_id for a in await incoming(db)] == [mid for _, mid in mails]
    assert len(await cases(db)) == 5
    assert sorted(r.external_id.split(":")[1] for r in await receipts(db)) == sorted(
        str(u) for u in uids
    )
    outcomes = pipeline.outcomes()
    assert sorted(o for o in outcomes if o != "duplicate") == ["created"] * 5
    assert outcomes.count("duplicate") <= 1
    assert await quarantined(db) == []
    for uid in uids:
        assert await seen(pipeline, uid)


# -- 7. SMTP down -------------------------------------------------------------------------------


async def test_a_reply_waits_while_smtp_is_down_and_is_delivered_once(pipeline: Pipeline) -> None:
    db, smtp, outbox, clock = pipeline.db, pipeline.smtp, pipeline.outbox, pipeline.clock
    await pipeline.mail_in(customer_mail("Printer on fire")[0])
    await deliver_pending(pipeline)

    smtp.down()
    reply = await pipeline.service.reply("CAS-000001", "Unplug it.", ALICE)

    async def row() -> ActivityRow:
        return next(a for a in await outgoing(db) if a.id == reply.id)

    assert await outbox.run_once() == 1  # connection refused
    pending = await row()
    assert (pending.delivery_state, pending.attempts) == ("pending", 1)
    assert pending.last_error
    assert pending.next_attempt_at > clock.now
    clock.now += timedelta(seconds=10)
    assert await outbox.run_once() == 0  # not due yet

    smtp.up()
    smtp.fail_next(1, "451 4.3.0 Try again later")  # back, but not ready yet
    clock.now += timedelta(minutes=1)
    assert await outbox.run_once() == 1
    pending = await row()
    assert (pending.delivery_state, pending.attempts) == ("pending", 2)
    assert "451" in pending.last_error
    assert smtp.received == []

    clock.now += timedelta(minutes=2)
    assert await outbox.run_once() == 1
    sent = await row()
    assert (sent.delivery_state, sent.attempts, sent.last_error) == (
        "sent", 3, None,
    )  # fmt: skip
    clock.now += timedelta(hours=2)
    assert await outbox.run_once() == 0
    assert smtp.message_ids() == [reply.message_id]
    assert smtp.received[0].message["Subject"] == "Re: Printer on fire [CAS-000001]"


# -- 8. no mail loops ---------------------------------------------------------------------------


async def test_an_autoresponder_gets_at_most_three_acknowledgements_and_opens_no_case(
    pipeline: Pipeline,
) -> None:
    """A robot answers every mail we send with an out-of-office reply, and sends ten new
    requests within the hour on its own."""
    db, smtp, clock = pipeline.db, pipeline.smtp, pipeline.clock
    robot = "helpdesk@robot.example.net"
    answered: set[str] = set()
    auto_replies: dict[str, str] = {}  # their Message-ID -> the Message-ID of ours they answer

    async def autoresponder() -> None:
        for received in smtp.received:
            if received.message_id in answered:
                continue
            answered.add(received.message_id)
            assert received.rcpt_tos == (robot,)
            raw, mid = auto_reply_to(received, sender=f"Robot <{robot}>")
            auto_replies[mid] = received.message_id
            await pipeline.append(raw)

    for n in range(10):
        raw, _ = customer_mail(f"Ticket {n}", sender=f"Robot <{robot}>")
        await pipeline.append(raw)
        await pipeline.take_in()
        await pipeline.outbox.run_once()
        await autoresponder()
        await pipeline.take_in()
        clock.now += timedelta(minutes=5)

    assert len(smtp.received) == 3
    assert all(r.message["Auto-Submitted"] == "auto-replied" for r in smtp.received)
    acks = await outgoing(db)
    assert len(acks) == 3
    assert all(a.automatic and a.delivery_state == "sent" for a in acks)
    rows = await cases(db)
    assert [r.title for r in rows] == [f"Ticket {n}" for n in range(10)]
    assert all(r.status == "new" for r in rows)

    # Every auto-reply is recorded on the case whose acknowledgement it answers.
    assert len(auto_replies) == 3
    recorded = [a for a in await incoming(db) if a.message_id in auto_replies]
    assert len(recorded) == 3
    ack_case = {a.message_id: a.case_id for a in acks}
    for activity in recorded:
        assert activity.flags["auto_reply"] is True
        assert activity.automatic is True
        assert activity.case_id == ack_case[auto_replies[activity.message_id]]
    assert pipeline.outcomes().count("recorded") == 3
    assert pipeline.outcomes().count("created") == 10


# -- 9. bounces ---------------------------------------------------------------------------------


async def _bounced_reply(pipeline: Pipeline, *, with_threading_headers: bool) -> None:
    db = pipeline.db
    await pipeline.mail_in(customer_mail("Printer on fire")[0])
    await deliver_pending(pipeline)
    reply = await pipeline.service.reply("CAS-000001", "Unplug it.", ALICE)
    assert await pipeline.outbox.run_once() == 1
    [sent] = pipeline.smtp.received
    await pipeline.service.resolve("CAS-000001", "Answered.", ALICE)

    dsn, dsn_id = delivery_status_notification(
        sent, failed=CUSTOMER, with_threading_headers=with_threading_headers
    )
    result = await pipeline.mail_in(dsn)
    assert (result.outcome, result.case_number, result.detail) == (
        "recorded", "CAS-000001", "bounce",
    )  # fmt: skip
    ours = next(a for a in await outgoing(db) if a.id == reply.id)
    assert (ours.delivery_state, ours.last_error) == ("failed", f"bounced: {CUSTOMER}")
    [row] = await cases(db)
    assert row.status == "resolved"  # not reopened
    bounce = next(a for a in await incoming(db) if a.message_id == dsn_id)
    assert (bounce.case_id, bounce.automatic, bounce.flags["bounce"]) == (row.id, True, True)
    assert bounce.flags["failed_recipients"] == [CUSTOMER]
    recorded = [e for e in await audit(db, row.id) if e.action == "bounce_recorded"]
    assert [e.detail["failed_activity"] for e in recorded] == [reply.id]
    assert await pipeline.outbox.run_once() == 0  # nothing answers a bounce


async def test_a_bounce_marks_our_reply_failed_without_reopening(pipeline: Pipeline) -> None:
    await _bounced_reply(pipeline, with_threading_headers=True)


async def test_a_bounce_naming_our_message_only_in_the_returned_headers(
    pipeline: Pipeline,
) -> None:
    await _bounced_reply(pipeline, with_threading_headers=False)
