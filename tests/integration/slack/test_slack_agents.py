"""Agents in Slack: card buttons, the Resolve modal, replies and notes from a card's thread,
the message shortcut and ``/case`` — each checked in the database and in what Slack was sent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from servers.slack_api import Call
from servers.smtp import SmtpSink
from slack_helpers import (
    AGENTS_CHANNEL,
    ALICE,
    BOB,
    DAVE,
    STRANGER,
    World,
    block_action,
    edit_submission,
    escalate_submission,
    message_event,
    note_shortcut,
    resolve_submission,
)
from sqlalchemy import select

from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.base import Delivery
from inbox_daemon.channels.email.settings import MailboxSettings, SmtpSettings
from inbox_daemon.channels.email.smtp import EmailSender, SmtpSender
from inbox_daemon.messages import Address, ChannelKind, InboundMessage
from inbox_daemon.outbox import Outbox
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.slack import SlackCardRow
from inbox_daemon.store.tables import ActivityRow, AttachmentRow, AuditRow


async def new_case(world: World, text: str = "Printer on fire") -> SlackCardRow:
    await world.event(message_event(text))
    await world.settle()
    return await world.card("CAS-000001")


async def email_case(world: World) -> SlackCardRow:
    """A case from email (through the same observed sink the email channel is given)."""
    mid = "<m1@customer.example>"
    msg = InboundMessage(
        channel=ChannelKind.EMAIL,
        mailbox="support",
        external_id="7:1",
        sender=Address("ann@customer.example", "Ann"),
        subject="Invoice missing",
        text="Where is my invoice?",
        message_id=mid,
        content_hash=hashlib.sha256(mid.encode()).hexdigest(),
    )
    await world.sink(Delivery("email", "support", "7:1", b"raw", msg))
    await world.settle()
    return await world.card("CAS-000001")


def updates_of(world: World, card: SlackCardRow) -> list[Call]:
    return [
        c
        for c in world.api.calls_to("chat.update")
        if (c["channel"], c["ts"]) == (card.channel, card.ts)
    ]


def ephemerals(world: World, user: str) -> list[str]:
    return [c["text"] for c in world.api.calls_to("chat.postEphemeral") if c["user"] == user]


async def audit(world: World, action: str) -> list[AuditRow]:
    return [e for e in (await world.svc.show("CAS-000001")).audit if e.action == action]


async def test_pick_then_release_update_the_same_card(world: World) -> None:
    card = await new_case(world)
    status, _ = await world.interact(block_action("case_pick", "CAS-000001", message_ts=card.ts))
    assert status == 200
    case = await world.svc.get("CAS-000001")
    assert (case.worked_by, case.owner_user, case.status.value) == ("alice", "alice", "in_progress")
    picks = await audit(world, "pick")  # one audit row per changed field
    assert {(e.actor_kind, e.actor_name) for e in picks} == {("user", "alice")}
    await world.settle()
    [update] = updates_of(world, card)
    assert "In progress" in update.blocks_text
    assert "<@U01ALICE>" in update.blocks_text
    await world.interact(block_action("case_release", "CAS-000001", message_ts=card.ts))
    await world.settle()
    case = await world.svc.get("CAS-000001")
    assert (case.worked_by, case.owner_user) == (None, None)
    assert len(updates_of(world, card)) == 2
    assert len(world.posts(AGENTS_CHANNEL, thread=False)) == 1  # still the one card


async def test_resolve_through_the_modal(world: World) -> None:
    card = await new_case(world)
    await world.svc.add_task("CAS-000001", "call the customer back", Actor.user("alice"))
    await world.interact(block_action("case_resolve", "CAS-000001", message_ts=card.ts))
    [opened] = world.api.calls_to("views.open")
    view = opened["view"]
    assert (view["callback_id"], view["private_metadata"]) == ("case_resolve_modal", "CAS-000001")
    assert {b["block_id"] for b in view["blocks"]} == {"resolution", "options"}

    status, body = await world.interact(resolve_submission("CAS-000001", "Replaced the fuser"))
    assert status == 200
    answer = json.loads(body)
    assert answer["response_action"] == "errors"
    assert "open activit" in answer["errors"]["options"]
    assert (await world.svc.get("CAS-000001")).status.value == "new"

    status, body = await world.interact(
        resolve_submission("CAS-000001", "Replaced the fuser", cancel=True)
    )
    assert (status, body) == (200, "")
    case = await world.svc.get("CAS-000001")
    assert (case.status.value, case.resolution) == ("resolved", "Replaced the fuser")
    tasks = [a for a in await world.activities("CAS-000001") if a.kind == "task"]
    assert [t.state for t in tasks] == ["cancelled"]
    await world.settle()
    last = updates_of(world, card)[-1]
    assert "Replaced the fuser" in last.blocks_text
    assert all(b["type"] != "actions" for b in last["blocks"])  # no buttons on a resolved case


async def test_escalate_through_the_modal_moves_to_the_levels_team(world: World) -> None:
    card = await new_case(world)
    await world.interact(block_action("case_escalate", "CAS-000001", message_ts=card.ts))
    [opened] = world.api.calls_to("views.open")
    view = opened["view"]
    assert (view["callback_id"], view["private_metadata"]) == ("case_escalate_modal", "CAS-000001")
    [level] = [b for b in view["blocks"] if b.get("block_id") == "level"]
    assert [o["value"] for o in level["element"]["options"]] == ["L2"]  # the levels above L1

    _, body = await world.interact(escalate_submission("CAS-000001", " "))
    assert json.loads(body)["errors"] == {"reason": "Say why."}
    await world.interact(escalate_submission("CAS-000001", "the fuser needs an engineer"))
    case = await world.svc.get("CAS-000001")
    assert (case.status.value, case.support_level) == ("escalated", 2)
    assert (case.queue, case.owner_team) == ("escalations", "tier2")
    [escalated] = [e for e in await audit(world, "escalate") if e.field == "support_level"]
    assert escalated.detail == {"level": "L2", "reason": "the fuser needs an engineer"}
    await world.settle()
    new_card = await world.card("CAS-000001")
    assert new_card.channel == "C0ESCALATE"  # the level's queue is worked in another channel
    thread = [c["text"] for c in world.posts("C0ESCALATE", thread=True)]
    [notice] = [t for t in thread if "escalated" in t]
    assert "<@U0CAROL>" in notice
    assert "<@U01ALICE>" in notice  # tier2 members with a Slack id

    _, body = await world.interact(escalate_submission("CAS-000001", "more", level="L2"))
    assert "is at L2 already" in json.loads(body)["errors"]["reason"]
    _, body = await world.interact(escalate_submission("CAS-000001", "more"))
    assert "last support level (L2)" in json.loads(body)["errors"]["reason"]
    assert (await world.svc.get("CAS-000001")).support_level == 2


async def test_picking_a_case_someone_works_offers_a_confirmed_take_over(world: World) -> None:
    card = await new_case(world)
    await world.svc.pick("CAS-000001", "bob")
    await world.interact(block_action("case_pick", "CAS-000001", message_ts=card.ts))
    await world.settle()
    assert (await world.svc.get("CAS-000001")).worked_by == "bob"
    [offer] = [c for c in world.api.calls_to("chat.postEphemeral") if c["user"] == ALICE]
    assert "being worked by bob" in offer["text"]
    [button] = [e for b in offer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == ("case_take_over", "CAS-000001")
    assert button["confirm"]["confirm"]["text"] == "Take over"  # Slack asks before it sends
    await world.interact(block_action("case_take_over", "CAS-000001", message_ts=card.ts))
    await world.settle()
    case = await world.svc.get("CAS-000001")
    assert (case.worked_by, case.owner_user) == ("alice", "alice")
    [taken] = [e for e in await audit(world, "pick") if e.field == "worked_by"][-1:]
    assert taken.detail == {"taken_over_from": "bob"}
    [dm] = world.posts(BOB)
    assert "was taken over from you by <@U01ALICE>" in dm["text"]


async def test_case_command_links_merges_and_closes(world: World) -> None:
    await new_case(world)
    await world.event(message_event("Printer on fire again", ts="1710000100.000001"))
    await world.event(message_event("Scanner jams", ts="1710000200.000001"))
    await world.settle()

    async def say(text: str) -> str:
        return str(json.loads((await world.command(text))[1])["text"])

    assert "parent case CAS-000001" in await say("link CAS-000003 CAS-000001")
    assert (await world.svc.get("CAS-000003")).parent_number == "CAS-000001"
    assert "has no parent case now" in await say("unlink CAS-000003")
    assert "needs a second case number" in await say("merge CAS-000002")
    assert "merged into CAS-000001" in await say("merge cas-000002 cas-000001")
    merged = await world.svc.get("CAS-000002")
    assert (merged.status.value, merged.merged_into) == ("closed", "CAS-000001")
    assert (await say("merge CAS-000003 CAS-000002")).startswith(":warning:")
    assert "cannot change status" in await say("close CAS-000003")
    await world.svc.resolve("CAS-000003", "cleaned the rollers", Actor.user("alice"))
    assert "CAS-000003 is closed" in await say("close CAS-000003")
    assert "escalated to L2" in await say("escalate CAS-000001 customer is a hospital")
    assert "taken" not in await say("pick CAS-000001")
    assert "Usage" in await say("unlink CAS-000001 extra words")


async def test_assign_with_the_user_picker_notifies_the_assignee(world: World) -> None:
    card = await new_case(world)
    action = block_action("case_assign", "CAS-000001", message_ts=card.ts, selected_user=BOB)
    await world.interact(action)
    case = await world.svc.get("CAS-000001")
    assert case.owner_user == "bob"  # mapped through the email of his Slack profile
    assert {e.actor_name for e in await audit(world, "assign")} == {"alice"}
    await world.settle()
    [dm] = world.posts(BOB)  # a DM: posted to the user id
    assert "CAS-000001" in dm["text"]
    assert "assigned" in dm["text"]
    assert "Bob Chen" in updates_of(world, card)[-1].blocks_text


async def test_unmapped_and_inactive_users_are_refused(world: World) -> None:
    card = await new_case(world)
    for user in (STRANGER, DAVE):
        await world.interact(block_action("case_pick", "CAS-000001", user=user, message_ts=card.ts))
    await world.interact(
        block_action("case_assign", "CAS-000001", message_ts=card.ts, selected_user=STRANGER)
    )
    await world.settle()
    assert "not an agent" in ephemerals(world, STRANGER)[0]
    assert "not an active agent" in ephemerals(world, DAVE)[0]
    assert "not an active agent" in ephemerals(world, ALICE)[0]
    case = await world.svc.get("CAS-000001")
    assert (case.status.value, case.worked_by, case.owner_user) == ("new", None, None)
    assert {e.action for e in (await world.svc.show("CAS-000001")).audit} == {"create", "routed"}
    assert updates_of(world, card) == []


async def test_agent_reply_in_a_card_thread_goes_to_the_outbox(
    world: World, smtp_sink: SmtpSink
) -> None:
    card = await email_case(world)
    reply = message_event(
        "Have you tried <https://example.com/reset|the reset page>?",
        user=ALICE,
        channel=AGENTS_CHANNEL,
        thread_ts=card.ts,
    )
    assert (await world.event(reply))[0] == 200
    async with world.db.transaction() as session:
        stmt = select(ActivityRow).where(ActivityRow.direction == "outgoing")
        [out] = (await session.execute(stmt)).scalars()
    assert (out.kind, out.channel, out.delivery_state) == ("email", "email", "pending")
    assert (out.message_id or "").endswith("@support.example.com>")
    assert out.recipients == ["ann@customer.example"]
    assert out.in_reply_to == "<m1@customer.example>"
    assert out.body_text == "Have you tried the reset page (https://example.com/reset)?"
    assert out.actor == "user:alice"
    assert (await world.svc.get("CAS-000001")).first_responded_at is not None
    # and the outbox delivers it, threaded, to the customer's mail server
    box = MailboxSettings(
        name="support", address="support@support.example.com", kind="maildir", path=Path("/x"),
        smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
    )  # fmt: skip
    outbox = Outbox(world.db, {"email": EmailSender({"support": SmtpSender(box)})})
    assert await outbox.run_once() == 1
    [got] = smtp_sink.received
    mail = got.message
    assert got.rcpt_tos == ("ann@customer.example",)
    assert mail["Message-ID"] == out.message_id
    assert mail["In-Reply-To"] == "<m1@customer.example>"
    assert "<m1@customer.example>" in mail["References"]
    assert "[CAS-000001]" in mail["Subject"]
    assert "the reset page (https://example.com/reset)" in mail.get_body(("plain",)).get_content()


async def test_the_files_of_an_agent_reply_go_to_the_customer_by_email(
    world: World, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    card = await email_case(world)
    patch = b"--- a/config\n+++ b/config\n-debug = no\n+debug = yes\n"
    fix = world.api.add_file("F0FIX", "fix.patch", patch, "text/x-diff")
    gone = {"id": "F0GONE", "name": "old.png", "mode": "tombstone"}
    reply = message_event("Apply this patch.", user=ALICE, channel=AGENTS_CHANNEL,
                          thread_ts=card.ts, subtype="file_share", files=[fix, gone])  # fmt: skip
    assert (await world.event(reply))[0] == 200
    await world.settle()
    async with world.db.transaction() as session:
        stmt = select(ActivityRow).where(ActivityRow.direction == "outgoing")
        [out] = (await session.execute(stmt)).scalars()
        stored = (
            await session.execute(select(AttachmentRow).where(AttachmentRow.activity_id == out.id))
        ).scalars()
        assert [(a.filename, a.content_type, a.sha256, a.size) for a in stored] == [
            ("fix.patch", "text/x-diff", hashlib.sha256(patch).hexdigest(), len(patch))
        ]
    [told] = ephemerals(world, ALICE)
    assert "With 1 file: fix.patch." in told
    assert "'old.png'" in told  # and the one that could not be had, with why
    [event] = await audit(world, "reply")
    assert event.detail["files"] == ["fix.patch"]
    box = MailboxSettings(
        name="support", address="support@support.example.com", kind="maildir", path=Path("/x"),
        smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
    )  # fmt: skip
    senders = {"email": EmailSender({"support": SmtpSender(box)})}
    outbox = Outbox(world.db, senders, files=FileStore(tmp_path / "attachments"))
    assert await outbox.run_once() == 1
    [got] = smtp_sink.received
    [sent] = list(got.message.iter_attachments())
    assert sent.get_filename() == "fix.patch"
    assert sent.get_payload(decode=True) == patch


async def test_files_of_a_note_or_of_a_slack_answer_stay_in_slack(world: World) -> None:
    card = await new_case(world)  # the customer writes in Slack
    log = world.api.add_file("F0LOG2", "trace.log", b"boom\n", "text/plain")
    for text in ("!note see the trace", "Here is what we found."):
        event = message_event(text, user=ALICE, channel=AGENTS_CHANNEL, thread_ts=card.ts,
                              subtype="file_share", files=[log])  # fmt: skip
        assert (await world.event(event))[0] == 200
    await world.settle()
    note, answer = ephemerals(world, ALICE)
    assert note.endswith("Its files stay in Slack.")
    assert "Its files stay in Slack: they are passed on by email only." in answer
    assert await world.count(AttachmentRow) == 0


async def test_note_marker_keeps_it_internal(world: World) -> None:
    card = await email_case(world)
    for text in ("!note checked the billing system", "!NOTE\nsecond look", "!notebook arrived?"):
        await world.event(
            message_event(text, user=ALICE, channel=AGENTS_CHANNEL, thread_ts=card.ts)
        )
    activities = await world.activities("CAS-000001")
    assert [(a.kind, a.direction, a.body_text) for a in activities] == [
        ("email", "incoming", "Where is my invoice?"),
        ("note", "internal", "checked the billing system"),
        ("note", "internal", "second look"),
        ("email", "outgoing", "!notebook arrived?"),  # not the marker: a reply
    ]
    assert {a.actor for a in activities[1:]} == {"user:alice"}


async def test_thread_messages_outside_cards_and_from_strangers(world: World) -> None:
    card = await email_case(world)
    elsewhere = message_event("chit-chat", user=ALICE, channel=AGENTS_CHANNEL, thread_ts="1.2")
    stranger = message_event("hi", user=STRANGER, channel=AGENTS_CHANNEL, thread_ts=card.ts)
    await world.event(elsewhere)
    await world.event(stranger)
    await world.settle()
    assert len(await world.activities("CAS-000001")) == 1
    [refusal] = ephemerals(world, STRANGER)
    assert "not an agent" in refusal


async def test_add_as_internal_note_shortcut(world: World) -> None:
    first = message_event("My order never came")
    await world.event(first)
    await world.settle()
    await world.interact(note_shortcut(first))
    await world.settle()
    activities = await world.activities("CAS-000001")
    assert [a.kind for a in activities] == ["slack_message", "note"]
    assert activities[1].body_text.startswith("My order never came")
    assert activities[1].actor == "user:alice"
    assert "note added" in ephemerals(world, ALICE)[0].lower()


async def test_case_command(world: World) -> None:
    await new_case(world)
    status, body = await world.command("list")
    assert status == 200
    listing = json.dumps(json.loads(body))
    assert "CAS-000001" in listing
    assert "Waiting to be picked" in listing

    shown = json.loads((await world.command("show cas-000001"))[1])
    assert "Printer on fire" in json.dumps(shown["blocks"])

    picked = json.loads((await world.command("pick CAS-000001"))[1])
    assert "You picked CAS-000001" in picked["text"]
    assert (await world.svc.get("CAS-000001")).worked_by == "alice"
    mine = json.dumps(json.loads((await world.command("list"))[1]))
    assert "Your open cases* (1)" in mine

    noted = json.loads((await world.command("note CAS-000001 customer is a VIP"))[1])
    assert "note" in noted["text"].lower()
    resolved = json.loads((await world.command("resolve CAS-000001 sent a new printer"))[1])
    assert "resolved" in resolved["text"]
    assert (await world.svc.get("CAS-000001")).resolution == "sent a new printer"

    missing = json.loads((await world.command("show CAS-999999"))[1])
    assert missing["text"].startswith(":warning:")
    usage = json.loads((await world.command("frobnicate"))[1])
    assert "Usage" in usage["text"]
    refused = json.loads((await world.command("list", user=STRANGER))[1])
    assert "not an agent" in refused["text"]


async def test_sync_catches_up_with_changes_made_elsewhere(world: World) -> None:
    world.api.fail("chat.postMessage", "service_unavailable", status=200)
    await world.event(message_event("Nobody saw this one"))
    await world.settle()
    assert await world.count(SlackCardRow) == 0  # Slack was down: no card yet
    assert await world.agents.cards.sync() == 1  # the periodic pass posts it
    card = await world.card("CAS-000001")
    assert await world.agents.cards.sync() == 0  # nothing behind
    await world.svc.assign("CAS-000001", Actor.user("carol"), user="carol")  # e.g. from the CLI
    assert await world.agents.cards.sync() == 1
    [update] = updates_of(world, card)
    assert "<@U0CAROL>" in update.blocks_text


async def test_a_reply_that_cannot_be_delivered_is_reported_in_the_card_thread(
    world: World, smtp_sink: SmtpSink
) -> None:
    card = await email_case(world)
    reply = message_event("Try this.", user=ALICE, channel=AGENTS_CHANNEL, thread_ts=card.ts)
    assert (await world.event(reply))[0] == 200
    smtp_sink.refuse_recipients(1)  # 550: no such user
    box = MailboxSettings(
        name="support", address="support@support.example.com", kind="maildir", path=Path("/x"),
        smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
    )  # fmt: skip
    outbox = Outbox(world.db, {"email": EmailSender({"support": SmtpSender(box)})})
    outbox.on_failed.append(world.agents.delivery_failed)
    await outbox.run_once()
    await world.settle()
    warnings = [
        c["text"] for c in world.posts(AGENTS_CHANNEL, thread=True) if ":warning:" in c["text"]
    ]
    assert len(warnings) == 1
    assert "could not be delivered" in warnings[0]
    assert "550" in warnings[0]
    assert all(c["thread_ts"] == card.ts for c in world.posts(AGENTS_CHANNEL, thread=True))


async def test_an_agent_message_delivered_again_makes_one_reply(world: World) -> None:
    """Slack redelivers after a restart (in-memory dedup gone): the receipt still holds."""
    card = await email_case(world)
    reply = message_event("On it.", user=ALICE, channel=AGENTS_CHANNEL, thread_ts=card.ts)
    note = message_event("!note VIP", user=ALICE, channel=AGENTS_CHANNEL, thread_ts=card.ts)
    for event_id in ("EvFirst01", "EvAfterRestart01"):
        assert (await world.event(reply, event_id=event_id))[0] == 200
    for event_id in ("EvFirst02", "EvAfterRestart02"):
        assert (await world.event(note, event_id=event_id))[0] == 200
    await world.settle()
    activities = await world.activities("CAS-000001")
    assert [(a.direction, a.kind) for a in activities] == [
        ("incoming", "email"),
        ("outgoing", "email"),
        ("internal", "note"),
    ]


async def test_a_case_moved_to_another_queue_gets_its_card_there(world: World) -> None:
    card = await new_case(world)
    await world.svc.assign("CAS-000001", Actor.user("alice"), queue="escalations")
    await world.agents.cards.refresh("CAS-000001")
    await world.settle()
    moved = updates_of(world, card)[-1]
    assert "moved to queue *Escalations*" in moved.blocks_text
    assert "<#C0ESCALATE>" in moved.blocks_text
    [new_card] = world.posts("C0ESCALATE", thread=False)
    assert "CAS-000001" in json.dumps(new_card.get("blocks"))
    now = await world.card("CAS-000001")
    assert (now.channel, now.ts) != (card.channel, card.ts)
    assert now.channel == "C0ESCALATE"


async def test_edit_through_the_modal_reclassifies_the_case(world: World) -> None:
    card = await new_case(world)
    await world.interact(block_action("case_edit", "CAS-000001", message_ts=card.ts))
    [opened] = world.api.calls_to("views.open")
    view = opened["view"]
    assert (view["callback_id"], view["private_metadata"]) == ("case_edit_modal", "CAS-000001")
    blocks = {b["block_id"]: b for b in view["blocks"]}
    assert blocks["title"]["element"]["initial_value"] == "Printer on fire"
    assert blocks["priority"]["element"]["initial_option"]["value"] == "medium"
    assert "account" not in blocks  # rules.yaml has no accounts here

    form = edit_submission("CAS-000001", title="Printer on fire", priority="medium")
    _, body = await world.interact(form)
    assert "nothing to change" in json.loads(body)["errors"]["title"]
    form = edit_submission(
        "CAS-000001", title="Printer on fire", priority="high", category="hardware"
    )
    assert await world.interact(form) == (200, "")
    case = await world.svc.get("CAS-000001")
    assert (case.priority.value, case.category, case.title) == (
        "high",
        "hardware",
        "Printer on fire",
    )
    edits = await audit(world, "edit")
    assert {(e.field, e.actor_name) for e in edits} == {
        ("priority", "alice"),
        ("category", "alice"),
    }
    await world.settle()
    assert "High" in updates_of(world, card)[-1].blocks_text
