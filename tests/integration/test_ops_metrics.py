"""``/metrics`` and ``/healthz`` of a daemon run in-process on known traffic (SQLite + Maildir)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from inbox_daemon.channels.email.imap_auth import refresh_token_days_left_for
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.config import Settings
from inbox_daemon.daemon import Daemon
from inbox_daemon.metrics import Metrics
from inbox_daemon.notify import Notifier
from inbox_daemon.runtime import Runtime
from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import upgrade
from inbox_daemon.store.tables import CaseRow

RULES = """version: 1
users: [{id: alice, name: Alice}]
teams: [{id: tier1, name: Tier 1, members: [alice]}]
queues:
  - {id: general, name: General, team: tier1}
  - {id: billing, name: Billing, team: tier1}
rules:
  - name: invoices
    when: {subject: invoice}
    then: {queue: billing}
default: {queue: general}
"""


def mail(n: int, subject: str) -> bytes:
    return (
        f"From: Customer {n} <c{n}@example.com>\r\nTo: support@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <m{n}@example.com>\r\n\r\nbody {n}\r\n"
    ).encode()


def drop(maildir: Path, n: int, raw: bytes) -> None:
    tmp = maildir / "tmp" / f"{n}.eml"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    (maildir / "new").mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(raw)
    tmp.replace(maildir / "new" / f"{time.time_ns()}.{n}.test")


def make_settings(
    home: Path, maildir: Path, *, boxes: Sequence[dict[str, Any]] = (), **extra: Any
) -> Settings:
    (home / "rules.yaml").write_text(RULES)
    return Settings(
        database={"url": f"sqlite:///{home / 'inbox.db'}"},
        storage={"path": str(home / "storage")},
        rules={"path": str(home / "rules.yaml")},
        mailbox=[
            {"name": "support", "address": "support@example.com", "kind": "maildir",
             "path": str(maildir), "poll_interval": 0.5},
            *boxes,
        ],
        http={"enabled": True, "port": 0},
        source=home / "inbox-daemon.toml",
        **extra,
    )  # fmt: skip


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Daemon]:
    runtime = Runtime(settings)
    await upgrade(runtime.db)
    daemon = Daemon(runtime, notifier=Notifier(None))
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.http is not None and bool(daemon.watched), within=10)
        yield daemon
    finally:
        daemon.stopping.set()
        await asyncio.wait_for(task, 30)


async def until(predicate: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


async def get(daemon: Daemon, path: str) -> tuple[int, str]:
    assert daemon.http is not None
    url = f"http://127.0.0.1:{daemon.http.port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


async def test_metrics_count_known_traffic(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    settings = make_settings(tmp_path, maildir)
    async with running(settings) as daemon:
        drop(maildir, 1, mail(1, "invoice 1"))
        drop(maildir, 2, mail(2, "Printer on fire"))
        drop(maildir, 3, b"")  # no headers at all: quarantined
        await until(lambda: not list((maildir / "new").iterdir()))

        async def sent() -> float:
            _, text = await get(daemon, "/metrics")
            return samples(text).get(("inbox_outbox_sent_total", (("channel", "email"),)), 0)

        deadline = time.monotonic() + 15
        while await sent() < 2:  # the two acknowledgements
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

        async with daemon.runtime.db.transaction() as session:  # one case past its due date
            await session.execute(
                update(CaseRow)
                .where(CaseRow.title == "Printer on fire")
                .values(first_response_due=CaseRow.created_at)
            )
        status, text = await get(daemon, "/metrics")
        assert status == 200
        got = samples(text)
        box = (("channel", "email"), ("mailbox", "support"))
        assert got[("inbox_messages_ingested_total", (*box, ("outcome", "created")))] == 2
        assert got[("inbox_messages_ingested_total", (*box, ("outcome", "quarantined")))] == 1
        assert len([k for k in got if k[0] == "inbox_messages_ingested_total"]) == 2
        assert got[("inbox_messages_quarantined_total", box)] == 1
        assert got[("inbox_cases_created_total", ())] == 2
        assert got[("inbox_cases_reopened_total", ())] == 0
        assert got[("inbox_routing_decisions_total", (("rule", "invoices"),))] == 1
        assert got[("inbox_routing_decisions_total", (("rule", "default"),))] == 1
        assert got[("inbox_outbox_sent_total", (("channel", "email"),))] == 2
        assert got[("inbox_outbox_failed_total", ())] == 0
        assert got[("inbox_outbox_pending", ())] == 0
        assert got[("inbox_delivery_latency_seconds_count", ())] == 2
        assert 0 <= got[("inbox_delivery_latency_seconds_sum", ())] < 30
        assert got[("inbox_sla_breached_cases", (("due", "first_response"),))] == 1
        assert got[("inbox_sla_breached_cases", (("due", "resolve_by"),))] == 0

        # Scraping again counts nothing twice.
        again = samples((await get(daemon, "/metrics"))[1])
        assert again[("inbox_outbox_sent_total", (("channel", "email"),))] == 2
        assert again[("inbox_routing_decisions_total", (("rule", "default"),))] == 1

        status, body = await get(daemon, "/healthz")
        assert status == 200
        health = json.loads(body)
        assert health["status"] == "ok"
        channel = health["channels"]["maildir:support"]
        assert (channel["state"], channel["up"], channel["connected"]) == ("running", True, True)
        assert channel["last_delivery"] is not None
        assert health["outbox"] == {"pending": 0}
        assert health["rules"]["version"] == daemon.runtime.rules.current.version  # type: ignore[union-attr]
        assert health["rules"]["last_reload_error"] is None


async def test_healthz_is_503_when_a_channel_is_down(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the Maildir should be")
    settings = make_settings(tmp_path, blocker / "maildir")
    async with running(settings) as daemon:
        (tmp_path / "rules.yaml").write_text("version: 1\nrules: [")
        await daemon.runtime.rules.reload()
        await asyncio.sleep(0.2)
        status, body = await get(daemon, "/healthz")
        health = json.loads(body)
        assert status == 503
        assert health["status"] == "degraded"
        assert health["channels"]["maildir:support"]["state"] == "down"
        assert health["rules"]["last_reload_error"]


DAYS_LEFT = "inbox_oauth2_refresh_token_days_left"


def imap_box(name: str, home: Path, port: int, expires: str | None = None) -> dict[str, Any]:
    """An IMAP ``[[mailbox]]`` table with XOAUTH2 (its refresh token in a file)."""
    secret = home / f"{name}.token"
    secret.write_text("refresh-token")
    oauth2 = {
        "token_endpoint": f"http://127.0.0.1:{port}/token",
        "client_id": "inbox-daemon",
        "refresh_token_file": str(secret),
        "refresh_token_expires": expires,
    }
    return {"name": name, "address": f"{name}@example.com", "host": "127.0.0.1", "port": port,
            "oauth2": oauth2}  # fmt: skip


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_refresh_token_days_left_is_computed_at_each_scrape(tmp_path: Path) -> None:
    now = datetime(2025, 6, 1, 12, tzinfo=UTC)
    clock = [now]
    metrics = Metrics(Database(f"sqlite:///{tmp_path / 'm.db'}"), clock=lambda: clock[0])
    password = tmp_path / "password"
    password.write_text("secret")
    boxes = [
        imap_box("support", tmp_path, 1, expires="2025-06-11T12:00:00+00:00"),
        imap_box("billing", tmp_path, 1, expires="2025-06-04"),  # a date: midnight UTC
        imap_box("sales", tmp_path, 1),  # no known expiry
        {"name": "legacy", "address": "legacy@example.com", "host": "127.0.0.1",
         "password_file": str(password)},
        {"name": "drop", "address": "drop@example.com", "kind": "maildir",
         "path": str(tmp_path / "maildir")},
    ]  # fmt: skip
    for box in boxes:
        settings = MailboxSettings.model_validate(box)
        days_left = refresh_token_days_left_for(settings, now=metrics.clock)
        if days_left is not None:
            metrics.watch_refresh_token(settings.name, days_left)

    got = samples(metrics.exposition().decode())
    assert got[(DAYS_LEFT, (("mailbox", "support"),))] == 10.0
    assert got[(DAYS_LEFT, (("mailbox", "billing"),))] == 2.5
    assert [k for k in got if k[0] == DAYS_LEFT] == [
        (DAYS_LEFT, (("mailbox", "billing"),)),
        (DAYS_LEFT, (("mailbox", "support"),)),
    ]

    clock[0] = now + timedelta(days=3)  # a later scrape sees the time that passed
    got = samples(metrics.exposition().decode())
    assert got[(DAYS_LEFT, (("mailbox", "support"),))] == 7.0
    assert got[(DAYS_LEFT, (("mailbox", "billing"),))] == -0.5  # expired


async def test_daemon_serves_the_refresh_token_days_left(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    port = closed_port()  # the IMAP channels stay down: the gauge does not need them
    expires = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    boxes = [imap_box("expiring", tmp_path, port, expires), imap_box("unknown", tmp_path, port)]
    settings = make_settings(tmp_path, maildir, boxes=boxes)
    async with running(settings) as daemon:
        assert set(daemon.watched) == {"maildir:support", "imap:expiring", "imap:unknown"}
        status, text = await get(daemon, "/metrics")
    assert status == 200
    got = samples(text)
    days = {dict(labels)["mailbox"]: v for (name, labels), v in got.items() if name == DAYS_LEFT}
    assert list(days) == ["expiring"]
    assert 9.99 < days["expiring"] <= 10.0
    assert f"# TYPE {DAYS_LEFT} gauge" in text
