"""Parsing mail in a worker process, beside the event loop's database work.

Parsing is pure Python and holds the GIL: in a thread it takes its time from the event loop,
which meanwhile stores the previous batch. :class:`ParseWorker` parses a whole fetched batch in
one call to a worker process (a ``forkserver`` child: none of the daemon's threads, sockets or
database connections) and hands back, per mail, the message or why it was rejected, exactly as
:func:`~inbox_daemon.channels.email.delivery.make_delivery` would have.

A worker that dies (killed, out of memory) costs nothing but time: the batch is parsed again in
a thread of the daemon, logged, and the next batch starts a fresh worker. The program that uses
it must guard its main module (``if __name__ == "__main__":``), as multiprocessing requires;
``python -m inbox_daemon`` and the installed ``inbox-daemon`` script do.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import select
import threading
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from inbox_daemon.channels.base import Checkpoint, Delivery
from inbox_daemon.channels.email.delivery import (
    CHANNEL,
    Parsed,
    ParseMessage,
    log_parsed,
    parse_lazily,
    parse_one,
)
from inbox_daemon.gc_tuning import tune_gc

#: Imported by the fork server once, before it forks a worker.
PRELOAD = "inbox_daemon.channels.email.parse"


#: What :meth:`ParseWorker.start` has the worker parse: a reply with text, HTML and quotes.
_WARM_UP = (
    b"From: Ann <ann@example.com>\r\nTo: support@example.com\r\n"
    b"Subject: Re: =?utf-8?q?Caf=C3=A9?=\r\n"
    b"Date: Mon, 2 Mar 2026 09:00:00 +0000\r\nMessage-ID: <warm-up@example.com>\r\n"
    b"In-Reply-To: <earlier@example.com>\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nThanks.\r\n\r\n"
    b"On Mon, 2 Mar 2026, Bob wrote:\r\n> Hello\r\n--b\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>Thanks.</p><blockquote>Hello</blockquote>\r\n"
    b"--b--\r\n"
)


@dataclass(frozen=True, slots=True)
class RawMail:
    """One fetched mail to parse."""

    raw: bytes
    external_id: str
    received_at: datetime | None = None
    checkpoint: Checkpoint | None = None


def watch_parent(pid: int) -> None:
    """In the worker, first thing: exit as soon as the daemon (``pid``) is gone, however it
    ended. A pool's worker that loses its parent to SIGKILL otherwise waits forever, and keeps
    the fork server alive with it."""

    def watch() -> None:
        try:
            handle = os.pidfd_open(pid)
        except OSError:  # gone already, or no pidfd here: ask every second
            while True:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    os._exit(0)
                except PermissionError:
                    pass
                time.sleep(1)
        select.select([handle], [], [])  # readable once the process has ended
        os._exit(0)

    threading.Thread(target=watch, name="watch-daemon", daemon=True).start()


def _start_worker(daemon_pid: int) -> None:
    """The worker process's first steps."""
    watch_parent(daemon_pid)
    tune_gc()


def parse_all(
    parse: ParseMessage, mailbox: str, our_addresses: Collection[str], mails: Sequence[RawMail]
) -> list[Parsed]:
    """Parse every mail (in the worker): a rejection or a crash is an answer, never raised."""
    return [
        parse_one(
            partial(
                parse,
                mail.raw,
                channel_mailbox=mailbox,
                external_id=mail.external_id,
                our_addresses=our_addresses,
                received_at=mail.received_at,
            )
        )
        for mail in mails
    ]


class ParseWorker:
    """Parses batches of mail in a worker process (see the module docstring)."""

    def __init__(self, parse: ParseMessage = parse_lazily) -> None:
        #: A module-level function: the worker finds it again by its module and name.
        self.parse = parse
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        #: Why no worker process could be used, once that happened: parsing stays in-process.
        self.unavailable: str | None = None

    async def deliveries(
        self,
        mails: Sequence[RawMail],
        *,
        mailbox: str,
        our_addresses: Collection[str],
        log: Any,
    ) -> list[Delivery]:
        """The deliveries of ``mails``, parsed in the worker (or here, if it was lost)."""
        if not mails:
            return []
        call = (self.parse, mailbox, frozenset(our_addresses), list(mails))
        if self.unavailable is not None:
            parsed = await asyncio.to_thread(parse_all, *call)
        else:
            parsed = await self._in_worker(call, log)
        deliveries = []
        for mail, (message, error, trace) in zip(mails, parsed, strict=True):
            log_parsed(log, mail.external_id, error, trace)
            deliveries.append(
                Delivery(
                    channel=CHANNEL,
                    mailbox=mailbox,
                    external_id=mail.external_id,
                    raw=mail.raw,
                    message=message,
                    error=error,
                    checkpoint=mail.checkpoint,
                )
            )
        return deliveries

    async def _in_worker(self, call: tuple[Any, ...], log: Any) -> list[Parsed]:
        pool: ProcessPoolExecutor | None = None
        try:
            pool = self._running()
            return await asyncio.get_running_loop().run_in_executor(pool, parse_all, *call)
        except BrokenProcessPool:
            log.warning("parse_worker.lost", mails=len(call[3]), action="parsing them here")
            self._discard(pool)
        except Exception as exc:  # no process can be started here (a sandbox, a limit)
            self.unavailable = f"{type(exc).__name__}: {exc}"
            log.error("parse_worker.unavailable", error=self.unavailable,
                      action="parsing in the daemon from now on")  # fmt: skip
            if pool is not None:
                self._discard(pool)
        return await asyncio.to_thread(parse_all, *call)

    def start(self) -> None:
        """Start the worker process now (blocking: call it in a thread) and have it parse a
        small mail, so that the first batch waits neither for the process nor for what a first
        parse loads; any failure is left for the first batch to meet."""
        if self.unavailable is not None:
            return
        warm_up = [RawMail(_WARM_UP, "warm-up")]
        with contextlib.suppress(Exception):
            self._running().submit(parse_all, self.parse, "warm-up", frozenset(), warm_up).result()

    @property
    def pids(self) -> list[int]:
        """The worker's process id, once it runs (for diagnostics and tests)."""
        pool = self._pool
        processes = getattr(pool, "_processes", None) or {}
        return sorted(int(pid) for pid in processes)

    def close(self) -> None:
        """Stop the worker (a later batch starts another)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _running(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload([PRELOAD])
                self._pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
            return self._pool

    def _discard(self, pool: ProcessPoolExecutor | None) -> None:
        if pool is None:
            return
        with self._lock:
            if self._pool is pool:
                self._pool = None
        pool.shutdown(wait=False, cancel_futures=True)
