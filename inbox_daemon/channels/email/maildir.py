"""The Maildir intake channel: a local drop folder (the embedded default) → deliveries.

This module owns :class:`MaildirChannel`. Every file in ``new/`` (oldest first) is handed to the
sink with the Maildir unique name as its external id (up to ``batch_messages`` at once when the
sink takes batches: one transaction) and, only after the sink returned, renamed into ``cur/``
with the ``:2,S`` (seen) info. ``new/`` is watched with watchfiles, so a file
dropped there is picked up within about a second; a rescan every ``poll_interval`` seconds
catches anything a watcher missed (or replaces it where watching is impossible). A file that
cannot be read is left where it is, logged, and tried again on the next scan. A file larger
than :data:`~inbox_daemon.channels.email.spool.SPOOL_MAIL` is not read into memory: it is
parsed from the file (its large attachments decoded into a spool directory, removed once the
sink returned) and delivered with ``raw_path``.

With a parse worker (:class:`~inbox_daemon.channels.email.parse_worker.ParseWorker`), a group
of small files is parsed in the worker while the sink stores the group before it, as the IMAP
channel does with its batches; without one, in a thread, one group after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import watchfiles

from inbox_daemon.channels.base import BatchSink, Delivery, IngestResult, Sink, take_batch
from inbox_daemon.channels.email.delivery import (
    ParseFile,
    ParseMessage,
    make_delivery,
    make_file_delivery,
    parse_file_lazily,
    parse_lazily,
)
from inbox_daemon.channels.email.parse_worker import ParseWorker, RawMail
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.channels.email.spool import SPOOL_MAIL, should_spool, spool_directory
from inbox_daemon.errors import ConfigError
from inbox_daemon.logging import get_logger

#: A file modified more recently than this may still be being written: wait for it.
SETTLE_SECONDS = 0.2
#: Pause after a failing sink before its error leaves ``run``.
SINK_FAILURE_PAUSE = 1.0


def unique_name(filename: str) -> str:
    """The Maildir unique name: the file name without its ``:2,…`` info."""
    return filename.split(":", 1)[0]


def seen_name(filename: str) -> str:
    """The file name in ``cur/``: the info with the S (seen) flag added."""
    unique, sep, info = filename.partition(":")
    flags = info[2:] if sep and info.startswith("2,") else ""
    return f"{unique}:2,{''.join(sorted(set(flags) | {'S'}))}"


class MaildirChannel:
    """A Maildir folder as an inbound channel (see the module docstring)."""

    def __init__(
        self,
        settings: MailboxSettings,
        parse: ParseMessage = parse_lazily,
        our_addresses: Collection[str] | None = None,
        *,
        watch: bool = True,
        settle: float = SETTLE_SECONDS,
        failure_pause: float = SINK_FAILURE_PAUSE,
        parse_file: ParseFile = parse_file_lazily,
        spool_threshold: int = SPOOL_MAIL,
        spool_parent: Path | None = None,
        parse_worker: ParseWorker | None = None,
    ) -> None:
        if settings.path is None:
            raise ConfigError(f"mailbox {settings.name}: kind maildir needs path")
        self.name = f"maildir:{settings.name}"
        self.settings = settings
        self.path = Path(settings.path)
        self._parse = parse
        self._parse_file = parse_file
        self._spool_threshold = spool_threshold
        #: Where spool directories are made (None: the system's temp dir).
        self._spool_parent = spool_parent
        #: Parses groups of small files in a worker process (None: in a thread, with ``parse``).
        self._worker = parse_worker
        self._our_addresses = (
            settings.our_addresses if our_addresses is None else frozenset(our_addresses)
        )
        self._watch = watch
        self._settle = settle
        self._failure_pause = failure_pause
        self._unreadable: set[str] = set()
        #: Files delivered and moved to ``cur/`` by this channel object (for metrics).
        self.delivered = 0
        self._changed = asyncio.Event()
        self._log = get_logger("inbox_daemon.channels.email.maildir").bind(
            channel=self.name, mailbox=settings.name
        )

    @property
    def new_dir(self) -> Path:
        return self.path / "new"

    @property
    def cur_dir(self) -> Path:
        return self.path / "cur"

    def ensure_layout(self) -> None:
        """Create ``new/``, ``cur/`` and ``tmp/`` if missing."""
        for sub in ("new", "cur", "tmp"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    async def run(self, sink: Sink) -> None:
        """Deliver until cancelled; a failing sink's error leaves after a short pause."""
        self.ensure_layout()
        watcher = asyncio.create_task(self._watch_new()) if self._watch else None
        # A file that lands between the first scan and the watcher being ready is only seen by
        # a later scan: look again soon after starting, then at the poll interval.
        catch_up = 2
        try:
            while True:
                self._changed.clear()
                try:
                    wait_for = await self.scan(sink)
                except Exception:
                    # Leave the file in new/; pause so a restarting supervisor does not spin.
                    await asyncio.sleep(self._failure_pause)
                    raise
                timeout = self.settings.poll_interval
                if catch_up:
                    catch_up -= 1
                    timeout = min(timeout, 1.0)
                if wait_for is not None:
                    timeout = min(timeout, wait_for)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def run_once(self, sink: Sink) -> int:
        """Deliver what is in ``new/`` now and return how many (for ``run --once``).

        A file still being written is waited for (briefly); a failing sink's error leaves at once.
        """
        self.ensure_layout()
        before = self.delivered
        wait_for = await self.scan(sink)
        for _ in range(20):
            if wait_for is None:
                break
            await asyncio.sleep(wait_for)
            wait_for = await self.scan(sink)
        return self.delivered - before

    async def scan(self, sink: Sink) -> float | None:
        """Deliver what is in ``new/`` now, oldest first.

        Returns how long to wait for a file that is still being written, or None.
        """
        wait_for: float | None = None
        # A sink that takes batches gets up to ``batch_messages`` small files at once (one
        # transaction); any other sink, and every large file, one at a time.
        limit = self.settings.batch_messages if isinstance(sink, BatchSink) else 1
        units: list[list[Path] | Path] = []  # groups of small files; a large one alone
        group: list[Path] = []
        for path, mtime, size in self._pending():
            age = time.time() - mtime
            if 0 <= age < self._settle:
                remaining = self._settle - age
                wait_for = remaining if wait_for is None else min(wait_for, remaining)
                continue
            if should_spool(size, self._spool_threshold):
                units += [group, path] if group else [path]
                group = []
                continue
            group.append(path)
            if len(group) >= limit:
                units.append(group)
                group = []
        if group:
            units.append(group)
        await self._deliver_all(units, sink)
        return wait_for

    async def _deliver_all(self, units: list[list[Path] | Path], sink: Sink) -> None:
        """Deliver groups and large files in order; with a parse worker, the next group is
        read and parsed while the sink stores the one before it."""
        reading: asyncio.Task[list[tuple[Path, Delivery]]] | None = None
        try:
            for unit in units:
                if isinstance(unit, Path):
                    if reading is not None:
                        await self._deliver_group(await reading, sink)
                        reading = None
                    await self._deliver(unit, sink)
                    continue
                if self._worker is None:
                    await self._deliver_group(await self._read_group(unit), sink)
                    continue
                current, reading = reading, asyncio.create_task(self._read_group(unit))
                if current is not None:
                    await self._deliver_group(await current, sink)
            if reading is not None:
                await self._deliver_group(await reading, sink)
                reading = None
        finally:
            if reading is not None:
                reading.cancel()
                with contextlib.suppress(BaseException):
                    await reading

    async def _read_group(self, paths: list[Path]) -> list[tuple[Path, Delivery]]:
        """Read and parse small files (those that cannot be read are left for a later scan)."""
        raws: list[tuple[Path, bytes]] = []
        for path in paths:
            try:
                raws.append((path, await asyncio.to_thread(path.read_bytes)))
            except OSError as exc:
                name = path.name
                self._cannot_read(name, exc, self._log.bind(external_id=unique_name(name)))
                continue
            self._unreadable.discard(path.name)
        if self._worker is not None:
            mails = [RawMail(raw, unique_name(path.name)) for path, raw in raws]
            deliveries = await self._worker.deliveries(
                mails, mailbox=self.settings.name, our_addresses=self._our_addresses,
                log=self._log,
            )  # fmt: skip
            return [(path, d) for (path, _raw), d in zip(raws, deliveries, strict=True)]
        return [
            (
                path,
                await make_delivery(
                    raw,
                    parse=self._parse,
                    mailbox=self.settings.name,
                    external_id=unique_name(path.name),
                    our_addresses=self._our_addresses,
                    log=self._log.bind(external_id=unique_name(path.name)),
                ),
            )
            for path, raw in raws
        ]

    async def _deliver_group(self, read: list[tuple[Path, Delivery]], sink: Sink) -> None:
        """Hand parsed small files over together, then move each to ``cur/``."""
        if not read:
            return
        try:
            results = await take_batch(sink, [delivery for _, delivery in read])
        except Exception as exc:
            self._log.error("maildir.sink_failed", error=f"{type(exc).__name__}: {exc}")
            raise
        for (path, delivery), result in zip(read, results, strict=True):
            log = self._log.bind(external_id=delivery.external_id)
            if delivery.message is not None:
                log = log.bind(message_id=delivery.message.message_id)
            self._acknowledge(path, log)
            self.delivered += 1
            log.info("maildir.delivered", outcome=result.outcome, case=result.case_number)

    def _pending(self) -> list[tuple[Path, float, int]]:
        """``(path, mtime, size)`` of the files in ``new/``, oldest first."""
        entries: list[tuple[int, str, Path, float, int]] = []
        try:
            with os.scandir(self.new_dir) as scan:
                for entry in scan:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if not entry.is_file():
                            continue
                        stat = entry.stat()
                    except OSError:
                        continue  # vanished meanwhile
                    entries.append(
                        (stat.st_mtime_ns, entry.name, Path(entry.path), stat.st_mtime,
                         stat.st_size)
                    )  # fmt: skip
        except FileNotFoundError:
            self.ensure_layout()
        entries.sort()
        return [(path, mtime, size) for _, _, path, mtime, size in entries]

    async def _deliver(self, path: Path, sink: Sink) -> None:
        """A large file: parsed from the file (see :mod:`.spool`), never read whole."""
        name = path.name
        external_id = unique_name(name)
        log = self._log.bind(external_id=external_id)
        with spool_directory(self._spool_parent) as spool_dir:
            try:
                delivery = await make_file_delivery(
                    path,
                    mailbox=self.settings.name,
                    external_id=external_id,
                    our_addresses=self._our_addresses,
                    log=log,
                    spool_dir=spool_dir,
                    parse=self._parse_file,
                )
            except OSError as exc:
                self._cannot_read(name, exc, log)
                return
            self._unreadable.discard(name)
            result = await self._hand_over(delivery, sink, log)
        if delivery.message is not None:
            log = log.bind(message_id=delivery.message.message_id)
        self._acknowledge(path, log)
        self.delivered += 1
        log.info("maildir.delivered", outcome=result.outcome, case=result.case_number)

    def _cannot_read(self, name: str, exc: OSError, log: Any) -> None:
        if isinstance(exc, FileNotFoundError):
            return  # taken by someone else meanwhile
        level = log.debug if name in self._unreadable else log.warning
        level("maildir.unreadable", error=f"{type(exc).__name__}: {exc.strerror or exc}")
        self._unreadable.add(name)

    async def _hand_over(self, delivery: Delivery, sink: Sink, log: Any) -> IngestResult:
        if delivery.message is not None:
            log = log.bind(message_id=delivery.message.message_id)
        try:
            return await sink(delivery)
        except Exception as exc:
            log.error("maildir.sink_failed", error=f"{type(exc).__name__}: {exc}")
            raise

    def _acknowledge(self, path: Path, log: Any) -> None:
        target = self.cur_dir / seen_name(path.name)
        try:
            os.rename(path, target)
        except OSError as exc:
            log.error("maildir.move_failed", error=f"{type(exc).__name__}: {exc}")

    async def _watch_new(self) -> None:
        """Set ``_changed`` whenever something appears in ``new/``; on failure, rely on polls."""
        try:
            async for _changes in watchfiles.awatch(
                self.new_dir,
                watch_filter=None,
                debounce=400,
                step=20,
                recursive=False,
                rust_timeout=60_000,
            ):
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._log.warning(
                "maildir.watch_failed",
                error=f"{type(exc).__name__}: {exc}",
                fallback=f"polling every {self.settings.poll_interval:g} s",
            )
