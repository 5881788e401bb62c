"""Fixtures of the Slack tests: the Slack stand-in (tests/servers/slack_api.py) and the app.

``world`` is the Slack app in HTTP mode on 127.0.0.1, over the ``db`` fixture (SQLite and
PostgreSQL), with the case service, the ingestor and the agents wired as the daemon wires them.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from inbox_daemon.agents import SlackAgents
from inbox_daemon.channels.slack.app import SlackApp
from inbox_daemon.channels.slack.background import Background
from inbox_daemon.ingest import Ingestor
from inbox_daemon.router.loader import LoadedRules, load_rules_text
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore

# tests/servers is imported as the top-level package ``servers``, whether or not ``tests`` is
# itself a package (pytest puts tests/ on sys.path only when it is not).
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from servers.slack_api import (  # noqa: E402
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    SlackStandIn,
    slack_api,
)
from servers.smtp import smtp_sink, smtp_sink_factory  # noqa: E402
from slack_helpers import RULES, World, settings_for, workspace  # noqa: E402

__all__ = ["slack_api", "smtp_sink", "smtp_sink_factory"]


@pytest.fixture
def rules() -> LoadedRules:
    return load_rules_text(RULES, "rules.yaml")


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("TEST_SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("TEST_SLACK_SIGNING_SECRET", SIGNING_SECRET)


@pytest.fixture
async def parts(
    db: Database, rules: LoadedRules, tmp_path: Path, slack_api: SlackStandIn, secrets_env: None
) -> tuple[CaseService, Ingestor, SlackAgents, Background, AsyncWebClient]:
    workspace(slack_api)
    svc = CaseService(db, directory=rules.directory, message_domain="support.example.com")
    ingestor = Ingestor(
        svc,
        files=FileStore(tmp_path / "attachments"),
        quarantine=FileStore(tmp_path / "quarantine"),
        rules=lambda: rules,
    )
    client = AsyncWebClient(token=BOT_TOKEN, base_url=slack_api.api_url, timeout=5)
    background = Background()
    agents = SlackAgents(
        svc, client, background=background, files=FileStore(tmp_path / "attachments")
    )
    return svc, ingestor, agents, background, client


@pytest.fixture
async def world(
    db: Database,
    slack_api: SlackStandIn,
    parts: tuple[CaseService, Ingestor, SlackAgents, Background, AsyncWebClient],
) -> AsyncIterator[World]:
    svc, ingestor, agents, background, client = parts
    app = SlackApp(
        settings_for(slack_api),
        actions=agents,
        client=client,
        background=background,
        on_revision=agents.revised,
    )
    sink = agents.observe(ingestor)
    await app.start(sink)
    async with aiohttp.ClientSession() as http:
        try:
            yield World(app, agents, slack_api, svc, db, ingestor, background, sink, http)
        finally:
            await app.stop()
