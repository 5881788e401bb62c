"""ParseWorker: a fetched batch parsed in a worker process gives exactly the deliveries that
parsing in a thread gives, and a lost worker costs nothing but time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from inbox_daemon.channels.base import Checkpoint
from inbox_daemon.channels.email.delivery import make_delivery, parse_lazily
from inbox_daemon.channels.email.parse_worker import ParseWorker, RawMail

OURS = frozenset({"support@example.com"})


def mails() -> list[RawMail]:
    plain = (
        b"From: Ann <ann@example.com>\r\nTo: support@example.com\r\n"
        b"Subject: =?utf-8?q?Drucker?=\r\nMessage-ID: <w1@example.com>\r\n\r\n"
        b"The printer is on fire.\r\n"
    )
    reply = (
        b"From: Bob <bob@example.com>\r\nTo: support@example.com\r\nSubject: Re: [CAS-000001]\r\n"
        b"In-Reply-To: <w1@example.com>\r\nMessage-ID: <w2@example.com>\r\n\r\n"
        b"Still burning.\r\n\r\nOn Monday Ann wrote:\r\n> The printer is on fire.\r\n"
    )
    loop = (
        b"From: support@example.com\r\nTo: ann@example.com\r\nSubject: Auto: away\r\n"
        b"Auto-Submitted: auto-replied\r\n\r\nAway.\r\n"
    )
    return [
        RawMail(raw, f"7:{n}", None, Checkpoint(7, n, group_start=1))
        for n, raw in enumerate([plain, reply, b"\x00 not mail at all", loop, b""], start=1)
    ]


@pytest.fixture
def worker() -> Iterator[ParseWorker]:
    worker = ParseWorker()
    try:
        yield worker
    finally:
        worker.close()


async def in_thread(batch: list[RawMail]) -> list[tuple[object, ...]]:
    log = structlog.get_logger()
    return [
        shape(
            await make_delivery(
                mail.raw, parse=parse_lazily, mailbox="support", external_id=mail.external_id,
                our_addresses=OURS, log=log, received_at=mail.received_at,
                checkpoint=mail.checkpoint,
            )
        )
        for mail in batch
    ]  # fmt: skip


def shape(delivery: object) -> tuple[object, ...]:
    d = delivery
    return (d.channel, d.mailbox, d.external_id, d.raw, d.message, d.error, d.checkpoint)  # type: ignore[attr-defined]


async def test_a_batch_parsed_in_the_worker_is_what_a_thread_parses(worker: ParseWorker) -> None:
    batch = mails()
    got = await worker.deliveries(batch, mailbox="support", our_addresses=OURS,
                                  log=structlog.get_logger())  # fmt: skip
    assert [shape(d) for d in got] == await in_thread(batch)
    assert [d.error is None for d in got] == [True, True, False, True, False]
    first, second = got[0].message, got[1].message
    assert first is not None
    assert second is not None
    assert first.subject == "Drucker"
    assert second.new_text == "Still burning."
    assert got[3].message is not None
    assert got[3].message.flags.auto_reply  # from our own address
    assert worker.pids
    assert os.getpid() not in worker.pids


async def test_a_lost_worker_costs_a_batch_nothing(worker: ParseWorker) -> None:
    batch = mails()
    log = structlog.get_logger()
    await worker.deliveries(batch[:1], mailbox="support", our_addresses=OURS, log=log)
    [pid] = worker.pids
    os.kill(pid, signal.SIGKILL)
    with structlog.testing.capture_logs() as logs:
        got = await worker.deliveries(batch, mailbox="support", our_addresses=OURS, log=log)
    assert [shape(d) for d in got] == await in_thread(batch)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["parse_worker.lost"]
    again = await worker.deliveries(batch[:1], mailbox="support", our_addresses=OURS, log=log)
    assert again[0].message == got[0].message
    assert worker.pids
    assert pid not in worker.pids


async def test_where_no_process_can_start_mail_is_parsed_in_the_daemon(
    worker: ParseWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(worker, "_running", refuse)
    batch = mails()
    log = structlog.get_logger()
    with structlog.testing.capture_logs() as logs:
        first = await worker.deliveries(batch, mailbox="support", our_addresses=OURS, log=log)
        second = await worker.deliveries(batch, mailbox="support", our_addresses=OURS, log=log)
    assert [shape(d) for d in first] == [shape(d) for d in second] == await in_thread(batch)
    unavailable = [e for e in logs if e["event"] == "parse_worker.unavailable"]
    assert len(unavailable) == 1  # said once; no more attempts
    assert worker.unavailable == "PermissionError: [Errno 1] Operation not permitted"
    assert worker.pids == []


SCRIPT = """
import asyncio, structlog
from inbox_daemon.channels.email.parse_worker import ParseWorker, RawMail

async def main():
    worker = ParseWorker()
    mail = RawMail(b"From: a@example.com\\r\\nSubject: x\\r\\n\\r\\nhi\\r\\n", "1")
    await worker.deliveries([mail], mailbox="m", our_addresses=(), log=structlog.get_logger())
    print(*worker.pids, flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_worker_does_not_outlive_a_killed_daemon(tmp_path: Path) -> None:
    script = tmp_path / "daemon.py"
    script.write_text(SCRIPT)
    daemon = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        [pid] = [int(word) for word in daemon.stdout.readline().split()]
        assert alive(pid)
        daemon.kill()  # SIGKILL: no shutdown of the pool
        daemon.wait(5)
        deadline = time.monotonic() + 5
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(pid), "the parse worker outlived its daemon"
    finally:
        daemon.kill()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat")
    return not (status.exists() and status.read_text().split(")")[-1].split()[0] == "Z")
