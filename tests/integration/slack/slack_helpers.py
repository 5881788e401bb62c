"""Helpers of the Slack tests: the workspace, signed requests, and Slack payloads built in code.

:class:`World` is a running Slack app (HTTP mode on 127.0.0.1) over a real database, with the
Slack Web API played by the stand-in of tests/servers/slack_api.py. Requests are signed like
Slack signs them (``v0:{timestamp}:{body}``, HMAC-SHA256 with the signing secret) and POSTed to
the app; the app answers once the case is changed, and :meth:`World.settle` waits for the work
it does afterwards (cards, thread posts, notices).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import aiohttp
from servers.slack_api import SIGNING_SECRET, TEAM, Call, SlackStandIn
from sqlalchemy import func, select

from inbox_daemon.agents import SlackAgents
from inbox_daemon.channels.base import Sink
from inbox_daemon.channels.slack import SlackSettings
from inbox_daemon.channels.slack.app import SlackApp
from inbox_daemon.channels.slack.background import Background
from inbox_daemon.ingest import Ingestor
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.slack import SlackCardRow
from inbox_daemon.store.tables import ActivityRow, CaseRow

RULES = """
version: 1
users:
  - {id: alice, name: Alice Martin, email: alice@example.com, slack_id: U01ALICE}
  - {id: bob, name: Bob Chen, email: bob@example.com}
  - {id: carol, name: Carol Diaz, email: carol@example.com, slack_id: U0CAROL}
  - {id: dave, name: Dave Okafor, email: dave@example.com, slack_id: U0DAVE, active: false}
teams:
  - {id: tier1, name: First line, members: [alice, bob, dave], strategy: none}
  - {id: tier2, name: Second line, members: [carol, alice], strategy: none}
queues:
  - {id: general, name: General, team: tier1, slack_channel: C0SUPPORT}
  - {id: escalations, name: Escalations, team: tier2, slack_channel: C0ESCALATE}
support_levels:
  - L1
  - {name: L2, team: tier2, queue: escalations}
rules:
  - name: outages
    when: {subject: {regex: "(?i)outage"}}
    then: {queue: escalations}
default: {queue: general}
"""

INTAKE = "C0HELP"
AGENTS_CHANNEL = "C0SUPPORT"
CUSTOMER = "U0CUSTOMER"
ALICE = "U01ALICE"
BOB = "U0BOB"  # mapped by the email of his Slack profile
DAVE = "U0DAVE"  # inactive
STRANGER = "U0STRANGER"  # a workspace member who is no agent

_ids = itertools.count(1)


def workspace(api: SlackStandIn) -> None:
    """The members of the test workspace."""
    api.add_user(CUSTOMER, name="Ann Customer", email="ann@customer.example")
    api.add_user(ALICE, name="Alice", email="alice@example.com")
    api.add_user(BOB, name="Bob", email="bob@example.com")
    api.add_user("U0CAROL", name="Carol", email="carol@example.com")
    api.add_user(DAVE, name="Dave", email="dave@example.com")
    api.add_user(STRANGER, name="Stranger", email="someone@elsewhere.example")


def settings_for(api: SlackStandIn, mode: Literal["socket", "http"] = "http") -> SlackSettings:
    """The ``[slack]`` settings of the tests: secrets from TEST_SLACK_* variables."""
    return SlackSettings(
        mode=mode,
        http_host="127.0.0.1",
        http_port=0,
        bot_token_env="TEST_SLACK_BOT_TOKEN",
        app_token_env="TEST_SLACK_APP_TOKEN",
        signing_secret_env="TEST_SLACK_SIGNING_SECRET",
        api_url=api.api_url,
        intake_channels=[INTAKE],
    )


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, timestamp: int | None = None
) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    base = f"v0:{stamp}:{body}".encode()
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}


def message_event(
    text: str,
    *,
    user: str = CUSTOMER,
    channel: str = INTAKE,
    ts: str | None = None,
    thread_ts: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts or f"1710000000.{next(_ids):06d}",
        "team": TEAM,
        "channel_type": "channel",
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    event.update(extra)
    return event


def event_body(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "unused",
        "team_id": TEAM,
        "api_app_id": "A0TEST",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_ids):08d}",
        "event_time": int(time.time()),
    }


def block_action(
    action_id: str,
    number: str,
    *,
    user: str = ALICE,
    channel: str = AGENTS_CHANNEL,
    message_ts: str = "",
    selected_user: str | None = None,
) -> dict[str, Any]:
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": f"case_actions:{number}",
        "action_ts": str(time.time()),
    }
    if selected_user is None:
        action.update(type="button", value=number, text={"type": "plain_text", "text": "x"})
    else:
        action.update(type="users_select", selected_user=selected_user)
    return {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0TEST",
        "trigger_id": f"trigger-{next(_ids)}",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel},
        "channel": {"id": channel, "name": channel.lower()},
        "message": {"type": "message", "ts": message_ts, "text": "card"},
        "response_url": "https://hooks.slack.example/unused",
        "actions": [action],
    }


def view_submission(
    callback_id: str, number: str, values: dict[str, Any], *, user: str = ALICE
) -> dict[str, Any]:
    """A submitted modal: ``values`` as Slack sends its state (block id -> action id -> value)."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0TEST",
        "trigger_id": f"trigger-{next(_ids)}",
        "view": {
            "id": f"V0{callback_id.upper()}",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": number,
            "state": {"values": values},
        },
    }


def edit_submission(
    number: str, *, title: str, priority: str, category: str | None = None, user: str = ALICE
) -> dict[str, Any]:
    option = {"text": {"type": "plain_text", "text": priority}, "value": priority}
    values = {
        "title": {"value": {"type": "plain_text_input", "value": title}},
        "priority": {"value": {"type": "static_select", "selected_option": option}},
        "category": {"value": {"type": "plain_text_input", "value": category}},
        "reason": {"value": {"type": "plain_text_input", "value": None}},
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0TEST",
        "trigger_id": f"trigger-{next(_ids)}",
        "view": {
            "id": "V0EDIT",
            "type": "modal",
            "callback_id": "case_edit_modal",
            "private_metadata": number,
            "state": {"values": values},
        },
    }


def escalate_submission(
    number: str,
    reason: str,
    *,
    level: str | None = None,
    team: str | None = None,
    assignee: str | None = None,
    user: str = ALICE,
) -> dict[str, Any]:
    def chosen(value: str | None) -> dict[str, Any]:
        option = {"text": {"type": "plain_text", "text": "x"}, "value": value}
        return {"choice": {"type": "static_select", "selected_option": option if value else None}}

    values = {
        "level": chosen(level),
        "team": chosen(team),
        "assignee": {"choice": {"type": "users_select", "selected_user": assignee}},
        "reason": {"choice": {"type": "plain_text_input", "value": reason}},
    }
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM},
        "api_app_id": "A0TEST",
        "trigger_id": f"trigger-{next(_ids)}",
        "view": {
            "id": "V0ESCALATE",
            "type": "modal",
            "callback_id": "case_escalate_modal",
            "private_metadata": number,
            "state": {"values": values},
        },
    }


def _radio(value: str | None) -> dict[str, Any]:
    chosen = {"text": {"type": "plain_text", "text": value}, "value": value} if value else None
    return {"type": "radio_buttons", "selected_option": chosen}


def _text(value: str) -> dict[str, Any]:
    return {"type": "plain_text_input", "value": value}


def resolve_submission(
    number: str,
    resolution: str,
    *,
    cancel: bool = False,
    choice: str | None = None,
    asked: bool = True,
    user: str = ALICE,
) -> dict[str, Any]:
    """The Resolve modal submitted; ``asked``: it had the open-activities question, answered
    ``choice`` (complete, cancel, fail) or, with ``cancel``, "cancel"."""
    values: dict[str, Any] = {"resolution": {"text": _text(resolution)}}
    if asked:
        values["options"] = {"open_activities": _radio("cancel" if cancel else choice)}
    return view_submission("case_resolve_modal", number, values, user=user)


def call_submission(
    number: str, direction: str | None, text: str, *, user: str = ALICE, spent: str | None = None
) -> dict[str, Any]:
    values = {"direction": {"way": _radio(direction)}, "text": {"text": _text(text)},
              "spent": {"time": _text(spent)}}  # fmt: skip
    return view_submission("case_call_modal", number, values, user=user)


def task_submission(
    number: str,
    subject: str,
    *,
    due: int | None = None,
    assignee: str | None = None,
    user: str = ALICE,
    spent: str | None = None,
) -> dict[str, Any]:
    values = {
        "text": {"text": _text(subject)},
        "due": {"when": {"type": "datetimepicker", "selected_date_time": due}},
        "assignee": {"user": {"type": "users_select", "selected_user": assignee}},
        "spent": {"time": _text(spent)},
    }
    return view_submission("case_task_modal", number, values, user=user)


def command_payload(
    text: str, *, user: str = ALICE, channel: str = AGENTS_CHANNEL
) -> dict[str, str]:
    return {
        "token": "unused",
        "team_id": TEAM,
        "team_domain": "test",
        "channel_id": channel,
        "channel_name": "support",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/case",
        "text": text,
        "api_app_id": "A0TEST",
        "response_url": "https://hooks.slack.example/unused",
        "trigger_id": "t1",
    }


def note_shortcut(message: dict[str, Any], *, user: str = ALICE) -> dict[str, Any]:
    return {
        "type": "message_action",
        "callback_id": "case_add_note",
        "team": {"id": TEAM, "domain": "test"},
        "user": {"id": user, "name": user.lower()},
        "channel": {"id": message["channel"], "name": "help"},
        "message": message,
        "message_ts": message["ts"],
        "trigger_id": f"trigger-{next(_ids)}",
        "response_url": "https://hooks.slack.example/unused",
    }


@dataclass
class World:
    """The running Slack app and everything around it."""

    app: SlackApp
    agents: SlackAgents
    api: SlackStandIn
    svc: CaseService
    db: Database
    ingestor: Ingestor
    background: Background
    sink: Sink
    http: aiohttp.ClientSession
    responses: list[tuple[int, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        assert self.app.http_url is not None
        return self.app.http_url

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        headers: dict[str, str] | None = None,
        secret: str = SIGNING_SECRET,
        timestamp: int | None = None,
    ) -> tuple[int, str]:
        sent = {"Content-Type": content_type}
        sent.update(signed_headers(body, secret=secret, timestamp=timestamp))
        sent.update(headers or {})
        async with self.http.post(self.url, data=body.encode(), headers=sent) as resp:
            answer = resp.status, await resp.text()
        self.responses.append(answer)
        return answer

    async def event(
        self, event: dict[str, Any], *, event_id: str | None = None, **kw: Any
    ) -> tuple[int, str]:
        body = json.dumps(event_body(event, event_id))
        return await self.post(body, "application/json", **kw)

    async def interact(self, payload: dict[str, Any], **kw: Any) -> tuple[int, str]:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded", **kw)

    async def command(
        self, text: str, *, user: str = ALICE, channel: str = AGENTS_CHANNEL
    ) -> tuple[int, str]:
        body = urlencode(command_payload(text, user=user, channel=channel))
        return await self.post(body, "application/x-www-form-urlencoded")

    async def settle(self) -> None:
        """Wait for the work done after Slack was answered."""
        assert await self.background.drain(10.0), "background work did not finish"

    async def card(self, number: str) -> SlackCardRow:
        async with self.db.transaction() as session:
            stmt = (
                select(SlackCardRow)
                .join(CaseRow, CaseRow.id == SlackCardRow.case_id)
                .where(CaseRow.number == number)
            )
            return (await session.execute(stmt)).scalar_one()

    async def activities(self, number: str) -> list[ActivityRow]:
        return list((await self.svc.show(number)).activities)

    async def count(self, model: type) -> int:
        async with self.db.transaction() as session:
            stmt = select(func.count()).select_from(model)
            return int((await session.execute(stmt)).scalar_one())

    def posts(self, channel: str | None = None, *, thread: bool | None = None) -> list[Call]:
        """chat.postMessage calls, in a channel, top-level (thread=False) or in threads."""
        found = []
        for call in self.api.calls_to("chat.postMessage"):
            if channel is not None and call.get("channel") != channel:
                continue
            if thread is not None and bool(call.get("thread_ts")) != thread:
                continue
            found.append(call)
        return found
