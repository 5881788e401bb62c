"""Socket Mode: the app connects to the stand-in's WebSocket, handles envelopes and acks them."""

from __future__ import annotations

import json

import pytest
from servers.slack_api import APP_TOKEN, BOT_TOKEN, SlackStandIn
from slack_helpers import (
    AGENTS_CHANNEL,
    block_action,
    command_payload,
    event_body,
    message_event,
    settings_for,
)
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select

from inbox_daemon.agents import SlackAgents
from inbox_daemon.channels.slack import SlackSecrets
from inbox_daemon.channels.slack.app import SlackApp
from inbox_daemon.channels.slack.background import Background
from inbox_daemon.errors import ChannelAuthError, ChannelUnavailable
from inbox_daemon.ingest import Ingestor
from inbox_daemon.service import CaseService
from inbox_daemon.store.tables import ActivityRow


async def test_envelopes_are_processed_and_acknowledged(
    slack_api: SlackStandIn,
    parts: tuple[CaseService, Ingestor, SlackAgents, Background, AsyncWebClient],
) -> None:
    svc, ingestor, agents, background, client = parts
    app = SlackApp(
        settings_for(slack_api, "socket"), actions=agents, client=client, background=background
    )
    await app.start(agents.observe(ingestor))
    try:
        await slack_api.wait_connected()
        [opened] = slack_api.calls_to("apps.connections.open")
        assert opened.token == APP_TOKEN

        body = event_body(message_event("Hello over the socket"), "Ev0SOCKET")
        envelope = await slack_api.send_envelope("events_api", body)
        assert await slack_api.wait_ack(envelope) == {"envelope_id": envelope}
        case = await svc.get("CAS-000001")  # committed before the ack was sent
        assert case.title == "Hello over the socket"

        again = await slack_api.send_envelope("events_api", body, retry_attempt=1)
        await slack_api.wait_ack(again)
        async with svc.db.transaction() as session:
            count = (await session.execute(select(func.count()).select_from(ActivityRow))).scalar()
        assert count == 1

        await background.drain(5)
        [(channel, ts)] = [k for k, m in slack_api.messages.items() if m["thread_ts"] is None]
        assert channel == AGENTS_CHANNEL
        pick = await slack_api.send_envelope(
            "interactive", block_action("case_pick", "CAS-000001", message_ts=ts)
        )
        await slack_api.wait_ack(pick)
        assert (await svc.get("CAS-000001")).worked_by == "alice"

        command = await slack_api.send_envelope(
            "slash_commands", command_payload("list"), accepts_response_payload=True
        )
        ack = await slack_api.wait_ack(command)
        assert "CAS-000001" in json.dumps(ack["payload"])
        assert ack["payload"]["response_type"] == "ephemeral"
    finally:
        await app.stop()
    assert slack_api.acks  # and the connection is closed again


@pytest.mark.parametrize(
    ("bot", "app_token", "error", "match"),
    [
        ("xoxb-wrong", APP_TOKEN, ChannelAuthError, "bot token was refused: invalid_auth"),
        (BOT_TOKEN, "xapp-wrong", ChannelAuthError, "app token was refused: invalid_auth"),
    ],
)
async def test_start_reports_refused_tokens(
    slack_api: SlackStandIn,
    parts: tuple[CaseService, Ingestor, SlackAgents, Background, AsyncWebClient],
    bot: str,
    app_token: str,
    error: type[Exception],
    match: str,
) -> None:
    _svc, ingestor, agents, background, _client = parts
    app = SlackApp(
        settings_for(slack_api, "socket"),
        actions=agents,
        secrets=SlackSecrets(bot, app_token),
        background=background,
    )
    with pytest.raises(error, match=match):
        await app.start(ingestor)
    await app.stop()


async def test_start_reports_unreachable_slack(
    slack_api: SlackStandIn,
    parts: tuple[CaseService, Ingestor, SlackAgents, Background, AsyncWebClient],
) -> None:
    _svc, ingestor, agents, background, _client = parts
    await slack_api.stop()
    app = SlackApp(settings_for(slack_api, "socket"), actions=agents, background=background)
    app.client.retry_handlers = []
    with pytest.raises(ChannelUnavailable, match="could not be reached"):
        await app.start(ingestor)
