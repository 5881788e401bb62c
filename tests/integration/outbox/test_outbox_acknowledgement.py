"""Acknowledgements of new email cases: queued, delivered, and never a mail loop."""

from __future__ import annotations

from datetime import timedelta

from outbox_helpers import DOMAIN, Clock, email_case, mailbox_for, rows_where
from servers.smtp import SmtpSink

from inbox_daemon.acknowledge import load_templates, queue_acknowledgement
from inbox_daemon.channels.email.smtp import EmailSender, SmtpSender
from inbox_daemon.outbox import Outbox
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, CaseRow

OURS = frozenset({"support@example.com"})
TEMPLATE = load_templates(None).for_mailbox("support")


async def acknowledge(
    svc: CaseService, case: CaseRow, incoming: ActivityRow, **kw: object
) -> ActivityRow | None:
    async with svc.db.transaction() as session:
        case_row = await session.get(CaseRow, case.id)
        incoming_row = await session.get(ActivityRow, incoming.id)
        assert case_row is not None
        assert incoming_row is not None
        return await queue_acknowledgement(
            session, case_row, incoming_row, template=TEMPLATE, our_address=OURS,
            now=svc.clock(), service=svc, **kw,  # type: ignore[arg-type]
        )  # fmt: skip


def outbox_for(db: Database, sink: SmtpSink, clock: Clock) -> Outbox:
    sender = EmailSender({"support": SmtpSender(mailbox_for(sink), clock=clock)})
    return Outbox(db, {"email": sender}, clock=clock)


async def test_acknowledgement_is_queued_and_delivered(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    case, incoming = await email_case(svc, subject="RE: Printer on fire",
                                      references=("<root@mail.example.com>",))  # fmt: skip
    ack = await acknowledge(svc, case, incoming)
    assert ack is not None
    assert (ack.automatic, ack.delivery_state, ack.in_reply_to) == (
        True, "pending", incoming.message_id)  # fmt: skip
    assert ack.message_id is not None
    assert ack.message_id.endswith(f".cas-000001@{DOMAIN}>")
    assert await outbox_for(db, smtp_sink, clock).run_once() == 1

    [got] = smtp_sink.received
    mail = got.message
    assert got.rcpt_tos == ("ann@example.com",)
    assert mail["Message-ID"] == ack.message_id
    assert mail["In-Reply-To"] == incoming.message_id
    assert str(mail["References"]).split() == ["<root@mail.example.com>", incoming.message_id]
    assert mail["Subject"] == "Re: Printer on fire [CAS-000001]"
    assert mail["Auto-Submitted"] == "auto-replied"
    body = mail.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "Hello Ann Example," in text
    assert "case CAS-000001" in text
    assert "$" not in text
    view = await svc.show(case.number)
    assert "acknowledgement" in [e.action for e in view.audit]


async def test_no_acknowledgement_for_an_auto_reply(db: Database, svc: CaseService) -> None:
    case, incoming = await email_case(svc, flags={"auto_reply": True})
    assert await acknowledge(svc, case, incoming) is None
    assert await rows_where(db, ActivityRow.direction == "outgoing") == []


async def test_no_acknowledgement_when_a_rule_says_so(db: Database, svc: CaseService) -> None:
    case, incoming = await email_case(svc)
    assert await acknowledge(svc, case, incoming, skip=True) is None
    assert await rows_where(db, ActivityRow.direction == "outgoing") == []


async def test_autoresponder_loop_is_broken_by_the_rate_limit(
    db: Database, svc: CaseService, clock: Clock, smtp_sink: SmtpSink
) -> None:
    """A robot that answers every mail it gets (and nags on its own), without Auto-Submitted
    and without threading headers: each of its mails looks like a new customer's and opens a
    new case. Ten of them within the hour get at most three acknowledgements."""
    outbox = outbox_for(db, smtp_sink, clock)
    robot = "helpdesk@robot.example.net"
    queued: list[ActivityRow] = []
    for _ in range(10):
        # The robot's next mail: its answer to our latest mail, or a reminder of its own.
        case, incoming = await email_case(svc, sender=robot, name="Robot", subject="Ticket")
        ack = await acknowledge(svc, case, incoming)
        if ack is not None:
            queued.append(ack)
        await outbox.run_once()
        clock.now += timedelta(minutes=5)
    assert len(queued) == 3
    assert [r.message_id for r in smtp_sink.received] == [a.message_id for a in queued]
    assert all(r.message["Auto-Submitted"] == "auto-replied" for r in smtp_sink.received)
    assert len(await rows_where(db, ActivityRow.direction == "incoming")) == 10
    automatic = await rows_where(db, ActivityRow.automatic.is_(True))
    assert len([a for a in automatic if a.direction == "outgoing"]) == 3

    clock.now = queued[0].created_at + timedelta(hours=1, minutes=1)
    case, incoming = await email_case(svc, sender=robot, name="Robot", subject="Ticket")
    assert await acknowledge(svc, case, incoming) is not None  # the window has moved on
