"""Mailbox leases on PostgreSQL: one poller per mailbox among several daemons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from inbox_daemon.daemon import Daemon
from inbox_daemon.notify import Notifier
from inbox_daemon.runtime import Runtime
from inbox_daemon.store.db import Database
from inbox_daemon.store.leases import Leases
from inbox_daemon.store.migrate import upgrade
from inbox_daemon.store.tables import LeaseRow
from tests.conftest import drop_postgres_database, make_postgres_database
from tests.integration.test_ops_metrics import make_settings, until

pytestmark = pytest.mark.postgres

TTL = timedelta(seconds=30)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    url = await make_postgres_database()
    database = Database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


@pytest.fixture
async def two(pg_url: str) -> AsyncIterator[tuple[Leases, Leases, Clock]]:
    clock = Clock()
    a, b = Database(pg_url), Database(pg_url)
    try:
        yield Leases(a, holder="a", clock=clock), Leases(b, holder="b", clock=clock), clock
    finally:
        await a.dispose()
        await b.dispose()


async def test_take_refuse_renew_take_over(two: tuple[Leases, Leases, Clock]) -> None:
    a, b, clock = two
    assert await a.acquire("mailbox:support", TTL)
    assert not await b.acquire("mailbox:support", TTL)  # held
    assert await b.acquire("mailbox:sales", TTL)  # another mailbox is free
    assert await a.holder_of("mailbox:support") == "a"

    clock.now += timedelta(seconds=20)
    assert await a.renew("mailbox:support", TTL)  # now held until +50 s
    clock.now += timedelta(seconds=20)  # +40 s: the first expiry has passed, the renewal holds
    assert not await b.acquire("mailbox:support", TTL)

    clock.now += timedelta(seconds=11)  # +51 s: a stopped renewing
    assert await a.holder_of("mailbox:support") is None
    assert await b.acquire("mailbox:support", TTL)  # taken over
    assert await b.holder_of("mailbox:support") == "b"
    assert not await a.renew("mailbox:support", TTL)  # a lost it
    assert not await a.acquire("mailbox:support", TTL)


async def test_racing_takers_get_one_winner(two: tuple[Leases, Leases, Clock]) -> None:
    a, b, _ = two
    results = await asyncio.gather(*(x.acquire("mailbox:race", TTL) for x in (a, b, a, b)))
    holder = await a.holder_of("mailbox:race")
    assert holder in ("a", "b")
    assert results.count(True) == 2  # the winner twice (take, then renew), the loser never
    winner = 0 if holder == "a" else 1
    assert results[winner]
    assert results[winner + 2]


async def test_release_frees_the_lease_at_once(two: tuple[Leases, Leases, Clock]) -> None:
    a, b, _ = two
    assert await a.acquire("mailbox:support", TTL)
    await b.release("mailbox:support")  # not b's to release
    assert await a.holder_of("mailbox:support") == "a"
    await a.release("mailbox:support")
    assert await b.acquire("mailbox:support", TTL)


async def test_two_daemons_share_a_mailbox_one_at_a_time(pg_url: str, tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    daemons: list[tuple[Daemon, asyncio.Task[None]]] = []
    for n in (1, 2):
        home = tmp_path / f"home{n}"
        home.mkdir()
        settings = make_settings(home, maildir, daemon={"lease_seconds": 0.6}).model_copy(
            update={"database": make_settings(home, maildir).database.model_copy(
                update={"url": pg_url})}
        )  # fmt: skip
        daemon = Daemon(Runtime(settings), notifier=Notifier(None))
        daemons.append((daemon, asyncio.create_task(daemon.run())))
        await until(lambda d=daemon: bool(d.watched), within=10)  # type: ignore[misc]
    first, second = (d.watched["maildir:support"] for d, _ in daemons)

    def states() -> set[str | None]:
        return {first.lease, second.lease}

    await until(lambda: states() == {"held", "standby"})
    await asyncio.sleep(0.5)  # renewals keep it that way
    assert states() == {"held", "standby"}
    assert first.running != second.running
    holder, other = (0, 1) if first.lease == "held" else (1, 0)
    assert daemons[other][0].health()[0] == 200  # a standby channel is healthy

    # Another holder takes the lease (ours "expired" as far as it knows): ours stops polling.
    thief = Leases(daemons[0][0].runtime.db, holder="thief")
    async with thief.db.transaction() as session:
        await session.execute(
            update(LeaseRow).values(holder="thief", expires_at=datetime.now(UTC) + TTL)
        )
    await until(lambda: states() == {"standby"} and not first.running and not second.running)
    await thief.release("mailbox:support")
    await until(lambda: states() == {"held", "standby"})
    holder, other = (0, 1) if first.lease == "held" else (1, 0)

    daemons[holder][0].stopping.set()
    await asyncio.wait_for(daemons[holder][1], 10)  # releases the lease on its way out
    survivor = (first, second)[other]
    await until(lambda: survivor.lease == "held" and survivor.running, within=5)
    daemons[other][0].stopping.set()
    await asyncio.wait_for(daemons[other][1], 10)
