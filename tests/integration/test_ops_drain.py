"""Graceful stop: messages in flight and the outbox pass under way finish, within a bound."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sqlalchemy import select

from inbox_daemon.cases.enums import DeliveryState, Direction
from inbox_daemon.channels.base import Delivery, IngestResult, OutboundChannel
from inbox_daemon.daemon import Daemon
from inbox_daemon.messages import DeliveryReceipt, OutboundMessage
from inbox_daemon.notify import Notifier
from inbox_daemon.runtime import Runtime
from inbox_daemon.store.migrate import upgrade
from inbox_daemon.store.tables import ActivityRow, CaseRow
from tests.integration.test_ops_metrics import drop, mail, make_settings, until


async def started(runtime: Runtime) -> tuple[Daemon, asyncio.Task[None]]:
    await upgrade(runtime.db)
    daemon = Daemon(runtime, notifier=Notifier(None))
    task = asyncio.create_task(daemon.run())
    await until(lambda: bool(daemon.watched) and all(w.running for w in daemon.watched.values()))
    return daemon, task


async def titles(runtime: Runtime) -> list[str]:
    async with runtime.db.transaction() as session:
        return list((await session.execute(select(CaseRow.title))).scalars())


async def test_a_message_in_flight_is_finished_before_exit(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    runtime = Runtime(make_settings(tmp_path, maildir, daemon={"drain_seconds": 10}))
    inner = runtime.sink

    async def slow(delivery: Delivery) -> IngestResult:
        await asyncio.sleep(0.8)
        return await inner(delivery)

    runtime.sink = slow
    daemon, task = await started(runtime)
    drop(maildir, 1, mail(1, "Printer on fire"))
    await until(lambda: daemon.gate.in_flight == 1)
    daemon.stopping.set()
    await asyncio.wait_for(task, 10)
    assert daemon.gate.in_flight == 0
    assert not list((maildir / "new").iterdir())  # taken in and acknowledged
    check = Runtime(runtime.settings, with_rules=False)
    try:
        assert await titles(check) == ["Printer on fire"]
    finally:
        await check.close()


async def test_a_stuck_message_is_cancelled_after_drain_seconds(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    runtime = Runtime(make_settings(tmp_path, maildir, daemon={"drain_seconds": 0.3}))

    async def stuck(delivery: Delivery) -> IngestResult:
        await asyncio.Event().wait()
        raise AssertionError("never")

    runtime.sink = stuck
    daemon, task = await started(runtime)
    drop(maildir, 1, mail(1, "Printer on fire"))
    await until(lambda: daemon.gate.in_flight == 1)
    began = time.monotonic()
    daemon.stopping.set()
    await asyncio.wait_for(task, 10)
    assert 0.25 <= time.monotonic() - began < 3
    assert len(list((maildir / "new").iterdir())) == 1  # still there for the next start


async def test_the_outbox_pass_under_way_is_finished(tmp_path: Path) -> None:
    maildir = tmp_path / "maildir"
    runtime = Runtime(make_settings(tmp_path, maildir, daemon={"drain_seconds": 10}))
    real: OutboundChannel = runtime.outbox.senders["email"]
    sending = asyncio.Event()

    class Slow:
        async def send(self, message: OutboundMessage) -> DeliveryReceipt:
            sending.set()
            await asyncio.sleep(0.8)
            return await real.send(message)

    runtime.outbox.senders["email"] = Slow()
    daemon, task = await started(runtime)
    drop(maildir, 1, mail(1, "Printer on fire"))  # acknowledged by mail
    await asyncio.wait_for(sending.wait(), 10)
    daemon.stopping.set()
    await asyncio.wait_for(task, 10)
    check = Runtime(runtime.settings, with_rules=False)
    try:
        async with check.db.transaction() as session:
            states = (
                await session.execute(
                    select(ActivityRow.delivery_state).where(
                        ActivityRow.direction == Direction.OUTGOING.value
                    )
                )
            ).scalars()
            assert list(states) == [DeliveryState.SENT.value]
    finally:
        await check.close()


async def test_the_gate_holds_new_deliveries_once_closed(tmp_path: Path) -> None:
    from inbox_daemon.daemon import IntakeGate

    gate = IntakeGate()
    calls: list[str] = []

    async def sink(delivery: Delivery) -> IngestResult:
        calls.append(delivery.external_id)
        return IngestResult("created")

    gated = gate.wrap(sink)
    d = Delivery("email", "support", "1", b"", None)
    assert (await gated(d)).outcome == "created"
    gate.close()
    held = asyncio.ensure_future(gated(Delivery("email", "support", "2", b"", None)))
    await asyncio.sleep(0.05)
    assert not held.done()
    await asyncio.wait_for(gate.idle(), 1)
    held.cancel()
    assert calls == ["1"]
