"""The Maildir channel on a real folder: delivery, acknowledgement (new/ → cur/ with S),
watching, polling, failing sinks and unreadable files."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import random
import shutil
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from channel_helpers import Sink, simple_parse
from sqlalchemy import select

from inbox_daemon.channels.base import BatchingSink, Delivery, IngestResult
from inbox_daemon.channels.email.maildir import MaildirChannel, seen_name, unique_name
from inbox_daemon.channels.email.parse_worker import ParseWorker
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.messages import InboundMessage
from inbox_daemon.router.loader import load_rules_text
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import AttachmentRow, CaseRow, QuarantineRow


def make_mail(subject: str) -> bytes:
    return (
        "From: Customer <customer@example.com>\r\n"
        "To: support@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{abs(hash(subject))}@customer.example>\r\n"
        "\r\n"
        "Hello.\r\n"
    ).encode()


def settings_for(path: Path, **overrides: Any) -> MailboxSettings:
    values: dict[str, Any] = {
        "name": "drop",
        "address": "support@example.com",
        "kind": "maildir",
        "path": path,
        "poll_interval": 30,
    }
    values.update(overrides)
    return MailboxSettings(**values)


def drop(maildir: Path, name: str, raw: bytes, *, age: float = 0.0) -> Path:
    """Deliver like an MTA: write into tmp/, then rename into new/."""
    tmp = maildir / "tmp" / name
    tmp.write_bytes(raw)
    if age:
        then = time.time() - age
        os.utime(tmp, (then, then))
    target = maildir / "new" / name
    os.rename(tmp, target)
    return target


@contextlib.asynccontextmanager
async def running(channel: MaildirChannel, sink: Sink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(channel.run(sink))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    path = tmp_path / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (path / sub).mkdir(parents=True)
    return path


async def test_a_file_in_new_is_delivered_then_moved_to_cur_as_seen(maildir: Path) -> None:
    name = "1736157600.M1P2Q3.host"
    drop(maildir, name, make_mail("Printer on fire"), age=5)
    where_during: list[list[str]] = []

    async def look(_delivery: Delivery) -> None:
        where_during.append(sorted(os.listdir(maildir / "new")))

    sink = Sink(look)
    channel = MaildirChannel(settings_for(maildir), simple_parse)
    async with running(channel, sink):
        [delivery] = await sink.wait_for(1)
        for _ in range(100):
            if (maildir / "cur" / f"{name}:2,S").exists():
                break
            await asyncio.sleep(0.01)
    assert where_during == [[name]]  # still in new/ while the sink ran
    assert delivery.channel == "email"
    assert delivery.mailbox == "drop"
    assert delivery.external_id == name
    assert delivery.message is not None
    assert delivery.message.subject == "Printer on fire"
    assert delivery.message.external_id == name
    assert delivery.raw == make_mail("Printer on fire")
    assert delivery.checkpoint is None
    assert os.listdir(maildir / "new") == []
    assert os.listdir(maildir / "cur") == [f"{name}:2,S"]


async def test_files_are_delivered_oldest_first(maildir: Path) -> None:
    drop(maildir, "c", make_mail("third"), age=10)
    drop(maildir, "a", make_mail("second"), age=20)
    drop(maildir, "b", make_mail("first"), age=30)
    sink = Sink()
    channel = MaildirChannel(settings_for(maildir), simple_parse)
    assert await channel.scan(sink) is None
    assert [d.external_id for d in sink.deliveries] == ["b", "a", "c"]
    assert sorted(os.listdir(maildir / "cur")) == ["a:2,S", "b:2,S", "c:2,S"]


async def test_a_file_added_while_running_is_picked_up_within_two_seconds(
    maildir: Path, tmp_path: Path
) -> None:
    sink = Sink()
    channel = MaildirChannel(settings_for(maildir, poll_interval=300), simple_parse)
    async with running(channel, sink):
        await asyncio.sleep(0.3)  # the watcher is up
        started = time.monotonic()
        drop(maildir, "dropped.1", make_mail("dropped by an MTA"))
        await sink.wait_for(1, within=2.0)
        assert time.monotonic() - started < 2.0

        # A file copied straight into new/ (not through tmp/) is read once it stops changing.
        source = tmp_path / "copied.eml"
        source.write_bytes(make_mail("copied by hand"))
        started = time.monotonic()
        await asyncio.to_thread(shutil.copy, source, maildir / "new" / "copied.2")
        await sink.wait_for(2, within=2.0)
        assert time.monotonic() - started < 2.0
    assert [d.external_id for d in sink.deliveries] == ["dropped.1", "copied.2"]
    assert sink.deliveries[1].raw == make_mail("copied by hand")


async def test_without_a_watcher_new_is_polled(maildir: Path) -> None:
    sink = Sink()
    channel = MaildirChannel(settings_for(maildir, poll_interval=0.1), simple_parse, watch=False)
    async with running(channel, sink):
        await asyncio.sleep(0.15)
        drop(maildir, "polled", make_mail("polled"), age=1)
        await sink.wait_for(1, within=2.0)


async def test_a_failing_watcher_falls_back_to_polling(
    maildir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "inotify watch limit reached")

    monkeypatch.setattr("inbox_daemon.channels.email.maildir.watchfiles.awatch", broken)
    sink = Sink()
    channel = MaildirChannel(settings_for(maildir, poll_interval=0.1), simple_parse)
    with structlog.testing.capture_logs() as logs:
        async with running(channel, sink):
            await asyncio.sleep(0.15)
            drop(maildir, "polled", make_mail("polled"), age=1)
            await sink.wait_for(1, within=2.0)
    assert any(e["event"] == "maildir.watch_failed" for e in logs)


async def test_a_failing_sink_leaves_the_file_in_new(maildir: Path) -> None:
    drop(maildir, "fragile", make_mail("fragile"), age=5)
    channel = MaildirChannel(settings_for(maildir), simple_parse, failure_pause=0.05)
    failing = Sink(fail=True)
    with pytest.raises(RuntimeError, match="database is down"):
        await asyncio.wait_for(channel.run(failing), 5)
    assert len(failing.deliveries) == 1
    assert os.listdir(maildir / "new") == ["fragile"]
    assert os.listdir(maildir / "cur") == []

    sink = Sink()  # the supervisor runs it again
    assert await channel.scan(sink) is None
    assert [d.external_id for d in sink.deliveries] == ["fragile"]
    assert os.listdir(maildir / "cur") == ["fragile:2,S"]


async def test_an_unreadable_file_is_skipped_and_retried(
    maildir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drop(maildir, "locked", make_mail("locked"), age=5)
    drop(maildir, "fine", make_mail("fine"), age=4)
    real_read = Path.read_bytes
    locked = {"locked"}

    def read_bytes(self: Path) -> bytes:
        if self.name in locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    channel = MaildirChannel(settings_for(maildir), simple_parse)
    sink = Sink()
    await channel.scan(sink)
    assert [d.external_id for d in sink.deliveries] == ["fine"]
    assert os.listdir(maildir / "new") == ["locked"]

    locked.clear()
    await channel.scan(sink)
    assert [d.external_id for d in sink.deliveries] == ["fine", "locked"]
    assert os.listdir(maildir / "new") == []


async def test_a_rejected_message_is_delivered_with_its_reason(maildir: Path) -> None:
    drop(maildir, "junk", b"\x00\x01 not a mail", age=5)

    def rejecting(raw: bytes, **_: Any) -> InboundMessage:
        raise RejectedMessage("no headers")

    sink = Sink()
    await MaildirChannel(settings_for(maildir), rejecting).scan(sink)
    [delivery] = sink.deliveries
    assert delivery.message is None
    assert delivery.error == "no headers"
    assert os.listdir(maildir / "cur") == ["junk:2,S"]


async def test_the_layout_is_created_and_dotfiles_and_folders_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "Maildir"
    channel = MaildirChannel(settings_for(path), simple_parse, watch=False)
    task = asyncio.create_task(channel.run(Sink()))
    await asyncio.sleep(0.05)
    assert {p.name for p in path.iterdir()} == {"new", "cur", "tmp"}
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    (path / "new" / ".hidden").write_bytes(make_mail("hidden"))
    (path / "new" / "folder").mkdir()
    sink = Sink()
    assert await channel.scan(sink) is None
    assert sink.deliveries == []


async def test_run_once_delivers_what_is_there_and_returns(maildir: Path) -> None:
    drop(maildir, "old", make_mail("old"), age=5)
    drop(maildir, "fresh", make_mail("fresh"))  # just written: waited for, not skipped
    sink = Sink()
    channel = MaildirChannel(settings_for(maildir), simple_parse)
    assert await asyncio.wait_for(channel.run_once(sink), 5) == 2
    assert [d.external_id for d in sink.deliveries] == ["old", "fresh"]
    assert await channel.run_once(sink) == 0


def test_names() -> None:
    assert unique_name("1736157600.M1P2.host:2,FS") == "1736157600.M1P2.host"
    assert unique_name("plain") == "plain"
    assert seen_name("plain") == "plain:2,S"
    assert seen_name("x:2,F") == "x:2,FS"
    assert seen_name("x:2,S") == "x:2,S"


# -- large mail: parsed from the file, attachments spooled ------------------------------------

LARGE_RULES = """
version: 1
users:
  - {id: alice, name: Alice, email: alice@example.com}
teams:
  - {id: tier1, name: Tier 1, members: [alice], strategy: none}
queues:
  - {id: general, name: General, team: tier1}
default: {queue: general}
"""


def large_mail(data: bytes) -> bytes:
    encoded = base64.b64encode(data).decode("ascii")
    lines = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return (
        "From: Big Sender <big@customer.example>\r\nTo: support@example.com\r\n"
        "Subject: The full log archive\r\nMessage-ID: <big-maildir@customer.example>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="=_b"\r\n\r\n'
        "--=_b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe logs are attached.\r\n"
        '--=_b\r\nContent-Type: application/zip; name="logs.zip"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{lines}\r\n--=_b--\r\n"
    ).encode("ascii")


@pytest.fixture
def ingestor(db: Database, tmp_path: Path) -> Ingestor:
    rules = load_rules_text(LARGE_RULES, "rules.yaml")
    service = CaseService(db, directory=rules.directory, message_domain="ours.example")
    return Ingestor(
        service,
        files=FileStore(tmp_path / "attachments"),
        quarantine=FileStore(tmp_path / "quarantine"),
        rules=lambda: rules,
        options=IntakeOptions(our_addresses=frozenset({"support@example.com"})),
    )


async def test_a_large_mail_becomes_a_case_with_its_attachment_from_the_spool(
    maildir: Path, tmp_path: Path, db: Database, ingestor: Ingestor
) -> None:
    data = random.Random(3).randbytes(4 * 1024 * 1024)
    name = "1736157600.M9P9Q9.host"
    drop(maildir, name, large_mail(data), age=5)
    spool = tmp_path / "spool-parent"
    spool.mkdir()
    seen: list[tuple[Delivery, list[Path]]] = []

    async def sink(delivery: Delivery) -> IngestResult:
        seen.append((delivery, sorted(spool.rglob("*.bin"))))
        return await ingestor(delivery)

    channel = MaildirChannel(settings_for(maildir), spool_parent=spool, watch=False)
    assert await channel.run_once(sink) == 1
    [(delivery, spooled)] = seen
    assert delivery.raw == b""
    assert delivery.raw_path == maildir / "new" / name
    assert delivery.message is not None
    [att] = delivery.message.attachments
    assert att.content is None
    assert spooled == [att.path]
    assert list(spool.iterdir()) == []  # removed once the sink returned
    assert (maildir / "cur" / f"{name}:2,S").exists()
    async with db.transaction() as session:
        case = (await session.execute(select(CaseRow))).scalar_one()
        row = (await session.execute(select(AttachmentRow))).scalar_one()
    assert case.title == "The full log archive"
    sha = hashlib.sha256(data).hexdigest()
    assert (row.sha256, row.size, row.filename) == (sha, len(data), "logs.zip")
    assert FileStore(tmp_path / "attachments").read(sha) == data


async def test_a_large_file_that_is_no_mail_is_quarantined_from_the_file(
    maildir: Path, tmp_path: Path, db: Database, ingestor: Ingestor
) -> None:
    junk = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + random.Random(4).randbytes(5 * 1024 * 1024)
    drop(maildir, "1736157601.M1P1Q1.host", junk, age=5)
    channel = MaildirChannel(settings_for(maildir), watch=False)
    assert await channel.run_once(ingestor) == 1
    async with db.transaction() as session:
        row = (await session.execute(select(QuarantineRow))).scalar_one()
    assert (row.sha256, row.size) == (hashlib.sha256(junk).hexdigest(), len(junk))
    assert "Outlook" in row.reason
    assert FileStore(tmp_path / "quarantine").read(row.sha256) == junk


@pytest.fixture(params=["thread", "worker"])
def parse_worker(request: pytest.FixtureRequest) -> Iterator[ParseWorker | None]:
    """None: small files parsed in a thread, one group after the other; a ParseWorker: in a
    worker process, the next group while the sink stores the one before."""
    if request.param == "thread":
        yield None
        return
    worker = ParseWorker()
    try:
        yield worker
    finally:
        worker.close()


async def test_a_batch_taking_ingestor_gets_small_files_together_and_large_ones_alone(
    maildir: Path,
    tmp_path: Path,
    db: Database,
    ingestor: Ingestor,
    parse_worker: ParseWorker | None,
) -> None:
    names = [f"17361576{10 + i}.M{i}P{i}Q{i}.host" for i in range(8)]
    for i, name in enumerate(names):
        raw = large_mail(random.Random(9).randbytes(2 * 1024 * 1024)) if i == 2 else None
        raw = b"\x00 no mail at all" if i == 6 else raw
        drop(maildir, name, raw or make_mail(f"small {i}"), age=50 - i)
    groups: list[list[str]] = []

    async def one(delivery: Delivery) -> IngestResult:
        groups.append([delivery.external_id])
        return await ingestor(delivery)

    async def many(deliveries: Sequence[Delivery]) -> list[IngestResult]:
        groups.append([d.external_id for d in deliveries])
        return await ingestor.batch(deliveries)

    channel = MaildirChannel(
        settings_for(maildir, batch_messages=2),
        spool_parent=tmp_path,
        watch=False,
        spool_threshold=1024 * 1024,
        parse_worker=parse_worker,
    )
    assert await channel.run_once(BatchingSink(one, many)) == 8
    # Oldest first: two small ones together, the large one alone, then the rest by two.
    assert groups == [names[0:2], [names[2]], names[3:5], names[5:7], names[7:]]
    assert sorted(os.listdir(maildir / "cur")) == sorted(f"{n}:2,S" for n in names)
    async with db.transaction() as session:
        titles = (await session.execute(select(CaseRow.title).order_by(CaseRow.id))).scalars()
        assert list(titles) == ["small 0", "small 1", "The full log archive"] + [
            f"small {i}" for i in (3, 4, 5, 7)
        ]
        held = (await session.execute(select(QuarantineRow.external_id))).scalars()
        assert list(held) == [names[6]]
    if parse_worker is not None:
        assert parse_worker.pids  # the small files went through the worker
