"""Agents are told when a case is assigned or escalated to them (or their team) or taken over
from them, whoever did it: a notification activity in the change's transaction, delivered by
the outbox once — a Slack DM to an agent with a Slack id, an email to the others."""

from __future__ import annotations

from pathlib import Path

from servers.smtp import SmtpSink
from slack_helpers import BOB, World, block_action, message_event
from sqlalchemy import select

from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.email.settings import MailboxSettings, SmtpSettings
from inbox_daemon.channels.email.smtp import EmailSender, SmtpSender
from inbox_daemon.channels.slack.sender import SlackSender
from inbox_daemon.outbox import Outbox
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import ActivityRow


def outbox(world: World, smtp_sink: SmtpSink, tmp_path: Path) -> Outbox:
    box = MailboxSettings(
        name="support", address="support@support.example.com", kind="maildir", path=Path("/x"),
        smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
    )  # fmt: skip
    senders = {"email": EmailSender({"support": SmtpSender(box)}),
               "slack": SlackSender(world.agents.client)}  # fmt: skip
    return Outbox(world.db, senders, files=FileStore(tmp_path / "attachments"))


async def notices(world: World) -> list[ActivityRow]:
    async with world.db.transaction() as session:
        stmt = (
            select(ActivityRow).where(ActivityRow.kind == "notification").order_by(ActivityRow.id)
        )
        return list((await session.execute(stmt)).scalars())


async def test_agents_are_told_once_by_slack_or_email_whoever_made_the_change(
    world: World, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    world.svc.notify_channels = frozenset({"slack", "email"})
    await world.event(message_event("Printer on fire"))
    await world.settle()
    card = await world.card("CAS-000001")

    # Alice assigns it to Bob in Slack: Bob has no Slack id in rules.yaml, so he gets a mail.
    await world.interact(
        block_action("case_assign", "CAS-000001", message_ts=card.ts, selected_user=BOB)
    )
    await world.settle()
    assert world.posts(BOB) == []  # not told twice: the outbox tells him
    # The CLI (or any caller) escalates it to tier2: carol and alice have Slack ids; bob acts.
    await world.svc.escalate("CAS-000001", Actor.user("bob"), team="tier2", reason="smoke")
    # Alice takes it over from Carol, who is told; Alice assigning herself tells nobody.
    await world.svc.pick("CAS-000001", "carol")
    await world.svc.pick("CAS-000001", "alice", force=True)
    await world.svc.assign("CAS-000001", Actor.user("alice"), user="alice")

    made = await notices(world)
    assert [(n.channel, n.recipients, n.flags["notify"]) for n in made] == [
        ("email", ["bob@example.com"], "assigned"),
        ("slack", ["U0CAROL"], "escalated"),
        ("slack", ["U01ALICE"], "escalated"),
        ("slack", ["U0CAROL"], "taken over"),
    ]
    assert all(n.delivery_state == "pending" and n.automatic for n in made)

    sent = outbox(world, smtp_sink, tmp_path)
    assert await sent.run_once() == 4
    assert await sent.run_once() == 0  # once only
    [mail] = smtp_sink.received
    subject = str(mail.message["Subject"])
    assert "Assigned: Printer on fire" in subject
    assert "[CAS-000001]" in subject
    assert str(mail.message["To"]) == "bob@example.com"
    assert "was assigned to you by Alice Martin" in mail.message.get_content()
    assert str(mail.message["Auto-Submitted"]).startswith("auto-")  # no auto-reply back
    escalated, taken = world.posts("U0CAROL")
    assert (
        "CAS-000001 (Printer on fire) was escalated to your team Second line (L2) by Bob Chen"
        in (escalated["text"])
    )
    assert "was taken over from you by Alice Martin" in taken["text"]
    assert escalated.get("thread_ts") is None  # a DM, not a thread
    assert [a for a in await notices(world) if a.delivery_state != "sent"] == []


async def test_nobody_is_told_through_a_channel_the_daemon_does_not_run(world: World) -> None:
    world.svc.notify_channels = frozenset({"email"})
    await world.event(message_event("Printer on fire"))
    await world.settle()
    await world.svc.assign("CAS-000001", Actor.system("cli"), user="alice")
    await world.svc.assign("CAS-000001", Actor.system("cli"), team="tier2")
    made = await notices(world)
    # alice has an email too, so she is mailed; carol as well; nothing is queued for Slack
    assert {(n.channel, n.recipients[0]) for n in made} == {
        ("email", "alice@example.com"), ("email", "carol@example.com"),
    }  # fmt: skip
