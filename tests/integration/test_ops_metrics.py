"""``/metrics`` and ``/healthz`` of a daemon run in-process on known traffic (SQLite + Maildir)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from inbox_daemon.config import Settings
from inbox_daemon.daemon import Daemon, Runtime
from inbox_daemon.notify import Notifier
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


def make_settings(home: Path, maildir: Path, **extra: Any) -> Settings:
    (home / "rules.yaml").write_text(RULES)
    return Settings(
        database={"url": f"sqlite:///{home / 'inbox.db'}"},
        storage={"path": str(home / "storage")},
        rules={"path": str(home / "rules.yaml")},
        mailbox=[
            {"name": "support", "address": "support@example.com", "kind": "maildir",
             "path": str(maildir), "poll_interval": 0.5}
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
