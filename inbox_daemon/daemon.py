"""The composition root: builds the store, the rules, the case service, the intake pipeline and
the channels, and runs them.

``run`` supervises each long-running task (a task that fails is logged and restarted with
backoff, without taking the others down), reloads rules.yaml on change and on SIGHUP, and stops
cleanly on SIGTERM or SIGINT. ``run --once`` does one pass of every job and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta

from inbox_daemon.acknowledge import AckTemplates, load_templates
from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.email.smtp import EmailSender
from inbox_daemon.config import Settings
from inbox_daemon.errors import ConfigError
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.logging import get_logger
from inbox_daemon.outbox import Outbox, OutboxPolicy
from inbox_daemon.router.loader import LoadedRules
from inbox_daemon.router.reload import RulesHolder
from inbox_daemon.service import CaseService
from inbox_daemon.store import cases as repo
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.migrate import require_current

log = get_logger("inbox_daemon.daemon")


@dataclass
class Periodic:
    """A job run every ``interval`` seconds."""

    name: str
    job: Callable[[], Awaitable[None]]
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


class Runtime:
    """Everything built from the settings, shared by the daemon and the CLI."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self.rules = RulesHolder(settings.rules_path, queues_with_open_cases=self.open_queues)
        if settings.rules_path.exists():
            self.rules.load()
        current = self.rules.current
        self.service = CaseService(
            self.db,
            directory=current.directory if current else None,
            message_domain=settings.cases.message_domain,
            auto_close_after=settings.cases.auto_close_after,
        )
        self.rules.on_change.append(
            lambda loaded: setattr(self.service, "directory", loaded.directory)
        )
        storage = settings.storage_path
        self.files = FileStore(storage / "attachments")
        self.quarantine = FileStore(storage / "quarantine")
        window = settings.cases.reopen_window_days
        self.ingestor = Ingestor(
            self.service,
            files=self.files,
            quarantine=self.quarantine,
            rules=self.rules,
            options=IntakeOptions(
                our_addresses=settings.our_addresses,
                reopen_window=timedelta(days=window) if window else None,
                acknowledgements=self._templates(),
                auto_answers_per_hour=settings.cases.auto_answers_per_hour,
            ),
        )
        self.rules.on_change.append(self._reload_templates)
        out = settings.outbox
        self.outbox = Outbox(
            self.db,
            {"email": EmailSender.from_settings(settings.mailbox, storage)},
            files=self.files,
            policy=OutboxPolicy(
                max_attempts=out.max_attempts, lease=timedelta(minutes=out.lease_minutes)
            ),
        )
        self.service.on_outgoing = self.outbox.wake

    def _templates(self) -> AckTemplates | None:
        if not self.settings.cases.acknowledge:
            return None
        return load_templates(self.settings.rules_path.parent)

    def _reload_templates(self, _rules: LoadedRules) -> None:
        """Acknowledgement templates live beside rules.yaml and are reloaded with it."""
        try:
            templates = self._templates()
        except ConfigError as exc:
            log.error(
                "acknowledgement template rejected; keeping the last good one", error=str(exc)
            )
            return
        self.ingestor.options = replace(self.ingestor.options, acknowledgements=templates)

    async def open_queues(self) -> set[str]:
        async with self.db.transaction() as session:
            return await repo.queues_with_open_cases(session)

    async def close(self) -> None:
        await self.db.dispose()


class Daemon:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stopping = asyncio.Event()
        self._background: set[asyncio.Task[bool]] = set()

    def jobs(self) -> list[Periodic]:
        return [Periodic("auto-close", self._auto_close, 300.0)]

    async def _deliver(self) -> None:
        await self.runtime.outbox.run(self.stopping, self.runtime.settings.outbox.interval_seconds)

    async def _auto_close(self) -> None:
        closed = await self.runtime.service.close_resolved(Actor.system("auto-close"))
        for number in closed:
            log.info("case closed after waiting period", case=number)

    async def run(self, *, once: bool = False) -> None:
        db = self.runtime.db
        try:
            await require_current(db)
        except BaseException:
            await self.runtime.close()
            raise
        try:
            log.info("daemon starting", database=db.safe_url, once=once)
            if once:
                for periodic in self.jobs():
                    await periodic.job()
                await self.runtime.outbox.run_once()
                return
            await self._serve()
        finally:
            await self.runtime.close()
            log.info("daemon stopped")

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        supervisor = Supervisor()
        for periodic in self.jobs():
            supervisor.start(periodic.name, self._every(periodic))
        if self.runtime.settings.rules_path.exists():
            supervisor.start("rules-watch", self.runtime.rules.watch)
        supervisor.start("outbox", self._deliver)
        log.info("daemon ready", tasks=sorted(supervisor.tasks))
        try:
            await self.stopping.wait()
            log.info("stop requested; finishing")
        finally:
            await supervisor.stop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading rules")
        task = asyncio.create_task(self.runtime.rules.reload(), name="rules-reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _every(self, periodic: Periodic) -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            while not self.stopping.is_set():
                await periodic.job()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), periodic.interval)

        return loop
