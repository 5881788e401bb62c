"""Tasks and calls from a case card: the Log call and Add task modals, the Resolve modal's
question about open activities, ``/case activity`` — signed requests to the real Slack app,
checked in the database and in what Slack was sent."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from slack_helpers import (
    AGENTS_CHANNEL,
    ALICE,
    DAVE,
    STRANGER,
    World,
    block_action,
    call_submission,
    message_event,
    resolve_submission,
    task_submission,
)
from sqlalchemy import select

from inbox_daemon.cases.enums import ActivityState
from inbox_daemon.cases.model import Actor
from inbox_daemon.store.slack import SlackCardRow
from inbox_daemon.store.tables import ActivityRow, AuditRow

NUMBER = "CAS-000001"


async def new_case(world: World) -> SlackCardRow:
    await world.event(message_event("Printer on fire"))
    await world.settle()
    return await world.card(NUMBER)


async def logged(world: World) -> list[ActivityRow]:
    return [a for a in await world.activities(NUMBER) if a.kind in ("task", "phone_call")]


async def audit(world: World, *actions: str) -> list[AuditRow]:
    return [e for e in (await world.svc.show(NUMBER)).audit if e.action in actions]


def opened_views(world: World) -> list[dict[str, object]]:
    return [c["view"] for c in world.api.calls_to("views.open")]


def thread_posts(world: World, card: SlackCardRow) -> list[str]:
    return [str(c.get("text")) for c in world.posts(card.channel, thread=True)
            if c.get("thread_ts") == card.ts]  # fmt: skip


def errors_of(answer: tuple[int, str]) -> dict[str, str]:
    status, body = answer
    assert status == 200
    data = json.loads(body)
    assert data["response_action"] == "errors"
    errors: dict[str, str] = data["errors"]
    return errors


async def test_the_card_has_log_call_and_add_task(world: World) -> None:
    await new_case(world)
    [card_post] = world.posts(AGENTS_CHANNEL, thread=False)
    [actions] = [b for b in card_post["blocks"] if b["type"] == "actions"]
    buttons = {e["action_id"]: e.get("text", {}).get("text") for e in actions["elements"]}
    assert buttons["case_log_call"] == "Log call"
    assert buttons["case_add_task"] == "Add task"


async def test_log_a_call_through_its_modal(world: World) -> None:
    card = await new_case(world)
    await world.interact(block_action("case_log_call", NUMBER, message_ts=card.ts))
    [view] = opened_views(world)
    assert (view["callback_id"], view["private_metadata"]) == ("case_call_modal", NUMBER)
    assert [b["block_id"] for b in view["blocks"]] == ["direction", "text", "spent"]  # type: ignore[attr-defined]

    assert "direction" in errors_of(await world.interact(call_submission(NUMBER, None, "hi")))
    assert "text" in errors_of(await world.interact(call_submission(NUMBER, "in", "  ")))
    problem = errors_of(await world.interact(call_submission(NUMBER, "in", "hi", spent="ages")))
    assert problem == {"spent": "time spent 'ages' is not a time like 45m, 2h, 1h30m or 1.5h"}
    assert await logged(world) == []

    answer = await world.interact(
        call_submission(NUMBER, "in", "Customer called, it smokes", spent="1h 15m")
    )
    assert answer == (200, "")
    [call] = await logged(world)
    assert (call.kind, call.direction, call.state, call.actor, call.spent_minutes) == (
        "phone_call", "incoming", "completed", "user:alice", 75,
    )  # fmt: skip
    assert call.body_text == "Customer called, it smokes"
    [event] = await audit(world, "phone_call")
    assert (event.actor_name, event.detail["direction"]) == ("alice", "incoming")
    await world.settle()
    assert any(
        "logged an incoming call (1h 15m)" in t and "it smokes" in t
        for t in thread_posts(world, card)
    )

    # A logged call is no customer message: an answer still goes to the customer's Slack thread.
    await world.event(message_event("On my way", user=ALICE, channel=AGENTS_CHANNEL,
                                    thread_ts=card.ts))  # fmt: skip
    [answer_row] = [a for a in await world.activities(NUMBER) if a.direction == "outgoing"
                    and a.kind != "phone_call"]  # fmt: skip
    assert (answer_row.channel, answer_row.delivery_state) == ("slack", "pending")


async def test_add_a_task_through_its_modal(world: World) -> None:
    card = await new_case(world)
    await world.interact(block_action("case_add_task", NUMBER, message_ts=card.ts))
    [view] = opened_views(world)
    assert (view["callback_id"], view["private_metadata"]) == ("case_task_modal", NUMBER)
    due = datetime(2026, 3, 5, 16, 0, tzinfo=UTC)

    assert "text" in errors_of(await world.interact(task_submission(NUMBER, " ")))
    for who in (STRANGER, DAVE):
        problem = errors_of(await world.interact(task_submission(NUMBER, "x", assignee=who)))
        assert problem == {"assignee": f"<@{who}> is not an active agent."}
    refused = errors_of(await world.interact(task_submission(NUMBER, "x", user=STRANGER)))
    assert "not an agent" in refused["text"]
    assert await logged(world) == []

    problem = errors_of(await world.interact(task_submission(NUMBER, "x", spent="30h")))
    assert problem == {"spent": "time spent '30h' is more than 24h for one activity: log it as"
                                " several"}  # fmt: skip
    assert await logged(world) == []

    answer = await world.interact(
        task_submission(NUMBER, "Call back about the fuser", due=int(due.timestamp()),
                        assignee="U0CAROL", spent="20m")
    )  # fmt: skip
    assert answer == (200, "")
    [task] = await logged(world)
    assert (task.kind, task.state, task.subject, task.assignee, task.due_at, task.actor) == (
        "task", "open", "Call back about the fuser", "carol", due, "user:alice",
    )  # fmt: skip
    assert task.spent_minutes == 20
    [event] = await audit(world, "task")
    assert (event.actor_name, event.detail["assignee"]) == ("alice", "carol")
    await world.settle()
    [said] = [t for t in thread_posts(world, card) if "added task" in t]
    assert f"#{task.id} for <@U0CAROL>" in said
    assert "Call back about the fuser" in said

    # On a resolved case it is refused under the task's text, and nothing is added.
    await world.svc.resolve(NUMBER, "fixed", Actor.user("alice"), open_activities="complete")
    problem = errors_of(await world.interact(task_submission(NUMBER, "more")))
    assert "is resolved and read-only" in problem["text"]
    problem = errors_of(await world.interact(call_submission(NUMBER, "out", "hello")))
    assert "is resolved and read-only" in problem["text"]
    assert [a.state for a in await logged(world)] == ["completed"]


async def test_the_resolve_modal_asks_about_open_activities(world: World) -> None:
    card = await new_case(world)
    await world.interact(block_action("case_resolve", NUMBER, message_ts=card.ts))
    await world.svc.add_task(NUMBER, "call back", Actor.user("alice"))
    await world.svc.add_task(NUMBER, "send invoice", Actor.user("alice"))
    await world.interact(block_action("case_resolve", NUMBER, message_ts=card.ts))
    before, after = opened_views(world)
    assert [b["block_id"] for b in before["blocks"]] == ["resolution"]  # type: ignore[attr-defined]
    [question] = [b for b in after["blocks"] if b["block_id"] == "options"]  # type: ignore[attr-defined]
    assert question["label"]["text"] == "The case has 2 open activities"
    choices = [o["value"] for o in question["element"]["options"]]
    assert choices == ["complete", "cancel", "fail"]

    # Leaving them open: refused with the reason under the question.
    problem = errors_of(await world.interact(resolve_submission(NUMBER, "fixed", choice="fail")))
    assert "2 open activities: not resolved" in problem["options"]
    # The modal opened before the tasks were added had no question: the reason says what to do.
    problem = errors_of(await world.interact(resolve_submission(NUMBER, "fixed", asked=False)))
    assert "press Resolve again" in problem["resolution"]
    case = await world.svc.get(NUMBER)
    assert case.status.value == "new"
    assert [a.state for a in await logged(world)] == ["open", "open"]

    answer = await world.interact(resolve_submission(NUMBER, "fixed", choice="complete"))
    assert answer == (200, "")
    case = await world.svc.get(NUMBER)
    assert (case.status.value, case.resolution) == ("resolved", "fixed")
    assert [a.state for a in await logged(world)] == ["completed", "completed"]
    [settled] = await audit(world, "activities_completed")
    assert settled.actor_name == "alice"


async def test_case_activity_command_completes_and_cancels(world: World) -> None:
    await new_case(world)
    first = await world.svc.add_task(NUMBER, "call back", Actor.user("alice"))
    second = await world.svc.add_task(NUMBER, "send invoice", Actor.user("alice"))
    done = json.loads((await world.command(f"activity complete {NUMBER} {first.id}"))[1])
    assert done["text"] == f"Activity #{first.id} of {NUMBER} is completed."
    again = json.loads((await world.command(f"activity cancel {NUMBER} {first.id}"))[1])
    assert again["text"].startswith(":warning:")
    assert "already completed" in again["text"]
    json.loads((await world.command(f"activity cancel cas-000001 #{second.id}"))[1])
    usage = json.loads((await world.command("activity finish CAS-000001 1"))[1])
    assert "needs complete or cancel" in usage["text"]
    async with world.db.transaction() as session:
        stmt = select(ActivityRow.state).where(ActivityRow.kind == "task").order_by(ActivityRow.id)
        assert list((await session.execute(stmt)).scalars()) == [
            ActivityState.COMPLETED.value, ActivityState.CANCELLED.value,
        ]  # fmt: skip
    settled = [(e.action, e.actor_name, e.detail["activity"])
               for e in await audit(world, "activity_completed", "activity_cancelled")]  # fmt: skip
    assert settled == [
        ("activity_completed", "alice", first.id), ("activity_cancelled", "alice", second.id),
    ]  # fmt: skip
