"""Customer messages from Slack over HTTP: cases, cards, threads, retries, bots, signatures."""

from __future__ import annotations

import json
import time

from servers.slack_api import BOT_ID, BOT_USER
from slack_helpers import AGENTS_CHANNEL, CUSTOMER, INTAKE, World, message_event

from inbox_daemon.channels.slack.intake import RecentEvents
from inbox_daemon.store.slack import SlackCardRow
from inbox_daemon.store.tables import ActivityRow, AttachmentRow, CaseRow, ReceiptRow


async def test_customer_message_opens_a_case_with_a_card(world: World) -> None:
    status, _ = await world.event(message_event("The printer is on fire <@U01ALICE> &amp; smokes"))
    assert status == 200
    case = await world.svc.get("CAS-000001")  # committed before Slack got its answer
    assert (case.origin.value, case.contact_slack, case.queue) == ("slack", CUSTOMER, "general")
    assert case.contact_name == "Ann Customer"
    assert case.title == "The printer is on fire @U01ALICE & smokes"
    await world.settle()
    [card] = world.posts(AGENTS_CHANNEL, thread=False)
    assert "CAS-000001" in card.blocks_text
    assert card.token is not None
    action_ids = {
        e.get("action_id") for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]
    }
    assert action_ids == {
        "case_pick",
        "case_release",
        "case_resolve",
        "case_escalate",
        "case_assign",
        "case_log_call",
        "case_add_task",
        "case_edit",
    }
    row = await world.card("CAS-000001")
    assert row.channel == AGENTS_CHANNEL
    assert world.api.messages[(row.channel, row.ts)]["blocks"] == card["blocks"]
    [mirror] = world.posts(AGENTS_CHANNEL, thread=True)
    assert mirror["thread_ts"] == row.ts
    assert "printer is on fire" in mirror["text"]
    [activity] = await world.activities("CAS-000001")
    assert activity.message_id == f"slack:{INTAKE}:{activity.slack_ts}"
    assert (activity.kind, activity.direction, activity.sender) == (
        "slack_message",
        "incoming",
        CUSTOMER,
    )


async def test_thread_reply_joins_the_case_and_updates_the_same_card(world: World) -> None:
    first = message_event("VPN down for me")
    await world.event(first)
    await world.settle()
    card = await world.card("CAS-000001")
    await world.event(message_event("Still down", thread_ts=first["ts"]))
    await world.settle()
    assert await world.count(CaseRow) == 1
    activities = await world.activities("CAS-000001")
    assert [a.body_text for a in activities] == ["VPN down for me", "Still down"]
    assert activities[1].slack_thread_ts == first["ts"]
    assert len(world.posts(AGENTS_CHANNEL, thread=False)) == 1  # one card per case
    [update] = world.api.calls_to("chat.update")
    assert (update["channel"], update["ts"]) == (card.channel, card.ts)
    assert "Still down" in update.blocks_text
    mirrored = [c["text"] for c in world.posts(AGENTS_CHANNEL, thread=True)]
    assert len(mirrored) == 2
    assert "Still down" in mirrored[1]


async def test_retried_event_is_taken_in_once(world: World) -> None:
    event = message_event("Where is my invoice?")
    assert (await world.event(event, event_id="Ev0RETRY"))[0] == 200
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert (await world.event(event, event_id="Ev0RETRY", headers=retry))[0] == 200
    world.app.handlers.recent = RecentEvents()  # as after a restart: the receipt still knows
    retry["X-Slack-Retry-Num"] = "2"
    assert (await world.event(event, event_id="Ev0RETRY", headers=retry))[0] == 200
    await world.settle()
    assert await world.count(ActivityRow) == 1
    assert await world.count(ReceiptRow) == 1
    assert len(world.posts(AGENTS_CHANNEL, thread=False)) == 1


async def test_slack_is_answered_before_the_card_is_posted(world: World) -> None:
    world.api.slow("chat.postMessage", 0.6)
    started = time.monotonic()
    assert (await world.event(message_event("Is anyone there?")))[0] == 200
    assert time.monotonic() - started < 0.5
    assert (await world.svc.get("CAS-000001")).title == "Is anyone there?"
    assert len(world.background) > 0  # the card is still on its way
    await world.settle()
    assert len(world.posts(AGENTS_CHANNEL, thread=False)) == 1


async def test_url_verification(world: World) -> None:
    body = json.dumps({"token": "x", "challenge": "c0ffee", "type": "url_verification"})
    status, answer = await world.post(body, "application/json")
    assert (status, json.loads(answer)) == (200, {"challenge": "c0ffee"})


async def test_bot_messages_are_ignored(world: World) -> None:
    await world.event(message_event("beep", subtype="bot_message", bot_id="B0OTHER"))
    await world.event(message_event("our own card", user=BOT_USER))
    await world.event(message_event("ours, with bot_id", bot_id=BOT_ID))
    await world.event(message_event("joined", subtype="channel_join"))
    await world.settle()
    assert await world.count(CaseRow) == 0
    assert world.api.calls_to("chat.postMessage") == []


async def test_forged_and_replayed_requests_are_refused(world: World) -> None:
    forged = await world.event(message_event("let me in"), secret="not-the-secret")
    assert forged[0] == 401
    old = int(time.time()) - 6 * 60
    replayed = await world.event(message_event("again"), timestamp=old)
    assert replayed[0] == 401
    assert (await world.command("list", user="U01ALICE"))[0] == 200  # the real thing works
    assert await world.count(CaseRow) == 0
    assert await world.count(ReceiptRow) == 0


async def test_files_are_downloaded_with_the_bot_token(world: World) -> None:
    file = world.api.add_file("F0LOG", "error.log", b"Traceback: boom\n", "text/plain")
    gone = {"id": "F0GONE", "name": "old.png", "mode": "tombstone"}
    await world.event(message_event("see the log", subtype="file_share", files=[file, gone]))
    [activity] = await world.activities("CAS-000001")
    assert "old.png" in activity.body_text  # the agent learns a file could not be had
    async with world.db.transaction() as session:
        from sqlalchemy import select

        [att] = (await session.execute(select(AttachmentRow))).scalars()
    assert (att.filename, att.content_type, att.size) == ("error.log", "text/plain", 16)
    assert att.activity_id == activity.id


async def test_edit_of_a_customer_message_is_noted(world: World) -> None:
    first = message_event("Printer broken")
    await world.event(first)
    edited = {
        "type": "message",
        "subtype": "message_changed",
        "channel": INTAKE,
        "hidden": True,
        "ts": "1710009999.000001",
        "message": {**first, "text": "Printer broken, model X2", "edited": {"user": CUSTOMER}},
        "previous_message": first,
    }
    await world.event(edited)
    await world.settle()
    activities = await world.activities("CAS-000001")
    assert [a.kind for a in activities] == ["slack_message", "note"]
    assert "model X2" in activities[1].body_text
    assert activities[1].actor == "channel:slack:T0TEST"
    # the activity itself now reads as edited, and keeps what it said before
    assert activities[0].body_text == "Printer broken, model X2"
    [revision] = activities[0].flags["revisions"]
    assert (revision["kind"], revision["previous_text"]) == ("edited", "Printer broken")
    thread = [c["text"] for c in world.posts(AGENTS_CHANNEL, thread=True)]
    assert any("model X2" in t for t in thread)
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": INTAKE,
        "hidden": True,
        "ts": "1710009999.000002",
        "deleted_ts": first["ts"],
        "previous_message": {**first, "text": "Printer broken, model X2"},
    }
    await world.event(deleted)
    await world.settle()
    activities = await world.activities("CAS-000001")
    assert activities[0].flags["deleted"] is True
    assert [r["kind"] for r in activities[0].flags["revisions"]] == ["edited", "deleted"]


async def test_card_update_event_of_our_own_is_not_an_edit(world: World) -> None:
    ours = message_event("card", user=BOT_USER, bot_id=BOT_ID)
    changed = {
        "type": "message",
        "subtype": "message_changed",
        "channel": INTAKE,
        "message": {**ours, "text": "card v2"},
        "previous_message": ours,
    }
    assert (await world.event(changed))[0] == 200
    await world.settle()
    assert await world.count(ActivityRow) == 0
    assert world.responses == [(200, "")]
    assert await world.count(SlackCardRow) == 0
