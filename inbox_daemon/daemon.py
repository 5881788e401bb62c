"""The composition root: builds the store, the case service and the jobs, and runs them.

``run`` supervises each long-running task (a task that fails is logged and restarted with
backoff, without taking the others down) and stops cleanly on SIGTERM or SIGINT.
``run --once`` does one pass of every job and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from inbox_daemon.cases.directory import Directory
from inbox_daemon.cases.model import Actor
from inbox_daemon.config import Settings
from inbox_daemon.logging import get_logger
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import require_current

log = get_logger("inbox_daemon.daemon")

Job = Callable[[], Awaitable[None]]


@dataclass
class Periodic:
    """A job run every ``interval`` seconds."""

    name: str
    job: Job
    interval: float


@dataclass
class Supervisor:
    """Runs tasks, restarts the ones that fail with exponential backoff, stops them all."""

    initial_backoff: float = 1.0
    max_backoff: float = 300.0
    tasks: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        self.tasks[name] = asyncio.create_task(self._keep(name, factory), name=name)

    async def _keep(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        backoff = self.initial_backoff
        while True:
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task failed; restarting", task=name, backoff_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()


def build_service(settings: Settings, db: Database, directory: Directory) -> CaseService:
    return CaseService(
        db,
        directory=directory,
        message_domain=settings.cases.message_domain,
        auto_close_after=settings.cases.auto_close_after,
    )


class Daemon:
    def __init__(self, settings: Settings, directory: Directory) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.service = build_service(settings, self.db, directory)
        self.stopping = asyncio.Event()

    def jobs(self) -> list[Periodic]:
        return [Periodic("auto-close", self._auto_close, 300.0)]

    async def _auto_close(self) -> None:
        closed = await self.service.close_resolved(Actor.system("auto-close"))
        for number in closed:
            log.info("case closed after waiting period", case=number)

    async def run(self, *, once: bool = False) -> None:
        try:
            await require_current(self.db)
            log.info("daemon starting", database=self.db.safe_url, once=once)
            if once:
                for periodic in self.jobs():
                    await periodic.job()
                return
            await self._serve()
        finally:
            await self.db.dispose()
            log.info("daemon stopped")

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        supervisor = Supervisor()
        for periodic in self.jobs():
            supervisor.start(periodic.name, self._every(periodic))
        log.info("daemon ready", tasks=sorted(supervisor.tasks))
        try:
            await self.stopping.wait()
            log.info("stop requested; finishing")
        finally:
            await supervisor.stop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    def _every(self, periodic: Periodic) -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            while not self.stopping.is_set():
                await periodic.job()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), periodic.interval)

        return loop
