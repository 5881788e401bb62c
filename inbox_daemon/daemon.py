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
from functools import partial

from inbox_daemon.acknowledge import AckTemplates, load_templates
from inbox_daemon.agents import SlackAgents
from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.model import Actor
from inbox_daemon.cases.sla import SlaPolicy
from inbox_daemon.channels.base import InboundChannel, Sink
from inbox_daemon.channels.email.imap import ImapChannel
from inbox_daemon.channels.email.maildir import MaildirChannel
from inbox_daemon.channels.email.smtp import EmailSender
from inbox_daemon.channels.slack.app import SlackApp, make_client
from inbox_daemon.channels.slack.background import Background
from inbox_daemon.channels.slack.sender import SlackSender
from inbox_daemon.config import Settings
from inbox_daemon.errors import ChannelAuthError, ConfigError
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.logging import get_logger
from inbox_daemon.outbox import Outbox, OutboxPolicy, Sender
from inbox_daemon.router.loader import LoadedRules
from inbox_daemon.router.reload import RulesHolder
from inbox_daemon.service import CaseService
from inbox_daemon.store import cases as repo
from inbox_daemon.store import intake
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
            except ChannelAuthError as exc:
                # Permanent until an admin fixes the credentials: retry rarely, say so loudly.
                log.error("channel refused our credentials; fix the configuration",
                          task=name, error=str(exc), retry_in_s=self.max_backoff)  # fmt: skip
                await asyncio.sleep(self.max_backoff)
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

    def __init__(self, settings: Settings, *, with_rules: bool = True) -> None:
        """``with_rules=False`` skips rules.yaml (commands that only read cases)."""
        self.settings = settings
        self.db = Database(settings.database_url)
        self.rules = RulesHolder(settings.rules_path, queues_with_open_cases=self.open_queues)
        if with_rules and settings.rules_path.exists():
            self.rules.load()
        current = self.rules.current
        self.service = CaseService(
            self.db,
            directory=current.directory if current else None,
            message_domain=settings.cases.message_domain,
            auto_close_after=settings.cases.auto_close_after,
            sla_lookup=self.sla_policy,
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
                max_attachment_bytes=int(settings.storage.max_attachment_mb * 1024 * 1024),
            ),
        )
        self.rules.on_change.append(self._reload_templates)
        out = settings.outbox
        senders: dict[str, Sender] = {
            "email": EmailSender.from_settings(settings.mailboxes, storage)
        }
        #: What every channel feeds: the intake pipeline, watched by Slack's case cards if on.
        self.sink: Sink = self.ingestor
        self.slack: SlackApp | None = None
        self.slack_agents: SlackAgents | None = None
        if settings.slack is not None:
            slack = settings.slack
            secrets = slack.secrets()
            client = make_client(slack, secrets.bot_token)
            background = Background()
            self.slack_agents = SlackAgents(self.service, client, background=background)
            self.sink = self.slack_agents.observe(self.ingestor)
            self.slack = SlackApp(
                slack,
                actions=self.slack_agents,
                client=client,
                secrets=secrets,
                background=background,
                on_revision=self.slack_agents.revised,
            )
            senders["slack"] = SlackSender(client)
        self.outbox = Outbox(
            self.db,
            senders,
            files=self.files,
            policy=OutboxPolicy(
                max_attempts=out.max_attempts, lease=timedelta(minutes=out.lease_minutes)
            ),
        )
        self.service.on_outgoing = self.outbox.wake
        if self.slack_agents is not None:
            self.outbox.on_failed.append(self.slack_agents.delivery_failed)

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

    def sla_policy(self, name: str) -> tuple[SlaPolicy, BusinessCalendar] | None:
        """The SLA policy of that name in the rules in force, with its calendar."""
        rules = self.rules.current
        if rules is None or name not in rules.sla:
            return None
        return rules.sla[name], rules.calendar_for(name)

    async def inbound_channels(self) -> list[InboundChannel]:
        """One channel per configured mailbox, IMAP ones resuming from their checkpoint."""
        settings = self.settings
        channels: list[InboundChannel] = []
        for box in settings.mailboxes:
            if box.kind == "maildir":
                channels.append(MaildirChannel(box, our_addresses=settings.our_addresses))
                continue
            async with self.db.transaction() as session:
                checkpoint = await intake.checkpoint(session, box.name)
            channels.append(
                ImapChannel.from_settings(
                    box, checkpoint=checkpoint, our_addresses=settings.our_addresses
                )
            )
        return channels

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
        jobs = [Periodic("auto-close", self._auto_close, 300.0)]
        agents = self.runtime.slack_agents
        if agents is not None:
            jobs.append(Periodic("slack-cards", self._sync_cards, 60.0))
        return jobs

    async def _sync_cards(self) -> None:
        if self.runtime.slack_agents is not None:
            await self.runtime.slack_agents.cards.sync()

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
                for channel in await self.runtime.inbound_channels():
                    await channel.run_once(self.runtime.sink)
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
        for channel in await self.runtime.inbound_channels():
            supervisor.start(f"channel:{channel.name}", partial(channel.run, self.runtime.sink))
        if self.runtime.slack is not None:
            supervisor.start("slack", partial(self.runtime.slack.run, self.runtime.sink))
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
