"""Running the daemon: what :class:`~inbox_daemon.runtime.Runtime` built, supervised.

``run`` supervises each long-running task (a task that fails is logged and restarted with
backoff, without taking the others down), reloads rules.yaml on change and on SIGHUP, and stops
cleanly on SIGTERM or SIGINT: new messages are no longer taken, the ones in flight and the
outbox pass under way get ``[daemon] drain_seconds`` to finish, then what is left is cancelled.
``run --once`` does one pass of every job and returns.

Running for real: on SQLite one daemon per database file (an exclusive lock on ``<db>.lock``);
on PostgreSQL each mailbox is read by the instance holding its lease (``mailbox:<name>``). The
daemon talks to systemd (``notify.py``: READY, STATUS, WATCHDOG, RELOADING, STOPPING) and, with
``[http] enabled``, serves ``/healthz`` and ``/metrics`` (``health.py``, ``metrics.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.base import (
    BatchingSink,
    Delivery,
    IngestResult,
    Sink,
    take_batch,
)
from inbox_daemon.channels.email.imap import ImapChannel
from inbox_daemon.channels.email.imap_auth import refresh_token_days_left_for
from inbox_daemon.errors import ChannelAuthError, ConfigError
from inbox_daemon.gc_tuning import tune_gc
from inbox_daemon.health import ChannelStatus, OpsServer, health_report
from inbox_daemon.logging import get_logger
from inbox_daemon.metrics import Metrics
from inbox_daemon.notify import Notifier
from inbox_daemon.runtime import Runtime
from inbox_daemon.store.leases import InstanceLock, Leases
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

    async def wait(self, names: Collection[str], within: float) -> set[str]:
        """Wait (at most ``within`` seconds) for these tasks to end by themselves; returns the
        names of those still running."""
        tasks = {self.tasks[n] for n in names if n in self.tasks}
        if tasks and within > 0:
            await asyncio.wait(tasks, timeout=within)
        return {n for n in names if n in self.tasks and not self.tasks[n].done()}

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()


class IntakeGate:
    """Wraps the sink to know which deliveries are in flight, and to stop taking new ones.

    Once closed, a channel offering a new message waits (unacknowledged) until it is cancelled:
    the message stays at its source and is taken on the next start.
    """

    def __init__(self) -> None:
        self.closed = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def wrap(self, sink: Sink) -> Sink:
        async def gated(delivery: Delivery) -> IngestResult:
            return (await gated_batch([delivery]))[0]

        async def gated_batch(deliveries: Sequence[Delivery]) -> list[IngestResult]:
            if self.closed:
                await asyncio.Event().wait()  # never set: cancelled when the daemon stops
            self.in_flight += 1
            self._idle.clear()
            try:
                if len(deliveries) == 1:
                    return [await sink(deliveries[0])]
                return await take_batch(sink, deliveries)
            finally:
                self.in_flight -= 1
                if not self.in_flight:
                    self._idle.set()

        return BatchingSink(gated, gated_batch)

    def close(self) -> None:
        self.closed = True

    async def idle(self) -> None:
        await self._idle.wait()


@dataclass
class _Watched:
    """A channel the daemon runs, and what the health check needs to know of it."""

    name: str
    channel: object
    running: bool = False
    #: PostgreSQL: "held" while we hold the mailbox's lease, "standby" while another instance does.
    lease: str | None = None
    mailbox: str | None = None


class Daemon:
    def __init__(self, runtime: Runtime, *, notifier: Notifier | None = None) -> None:
        self.runtime = runtime
        self.stopping = asyncio.Event()
        self._background: set[asyncio.Task[bool]] = set()
        self.notifier = notifier or Notifier.from_env()
        self.metrics = Metrics(runtime.db)
        self.gate = IntakeGate()
        self.leases = Leases(runtime.db)
        self.watched: dict[str, _Watched] = {}
        #: The ``[http]`` server while it runs (its port is known once started).
        self.http: OpsServer | None = None

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

    async def _ops(self) -> None:
        """Refresh the database-derived metrics (SLA breaches, pending) and systemd's STATUS."""
        try:
            await self.metrics.refresh()
        except Exception as exc:
            log.warning("metrics refresh failed", error=f"{type(exc).__name__}: {exc}")
        self.notifier.status(self.status_line())

    async def run(self, *, once: bool = False) -> None:
        db = self.runtime.db
        lock = InstanceLock.for_database(db)
        try:
            if lock is not None:
                lock.acquire()
            created = await require_current(db)
            if created is not None:
                log.info("database was empty: schema created", database=db.safe_url,
                         revision=", ".join(created.current))  # fmt: skip
        except BaseException:
            if lock is not None:
                lock.release()
            await self.runtime.close()
            raise
        try:
            tune_gc()
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
            if lock is not None:
                lock.release()
            log.info("daemon stopped")

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        settings = self.runtime.settings
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        supervisor = Supervisor()
        await self.metrics.start()
        self.runtime.outbox.on_failed.append(self.metrics.delivery_failed)
        sink = self.gate.wrap(self.metrics.observe(self.runtime.sink))
        try:
            if settings.http.enabled:
                await self._start_http()
            boxes = {f"{b.kind}:{b.name}": b.name for b in settings.mailboxes}
            for channel in await self.runtime.inbound_channels():
                watched = self._watch(channel.name, channel, mailbox=boxes.get(channel.name))
                if isinstance(channel, ImapChannel):
                    channel.on_poll.append(self.metrics.poller(boxes.get(channel.name, "")))
                    days_left = refresh_token_days_left_for(
                        channel.settings, now=self.metrics.clock
                    )
                    if days_left is not None:
                        self.metrics.watch_refresh_token(channel.settings.name, days_left)
                name = f"channel:{channel.name}"
                if self.runtime.db.is_postgres:
                    watched.lease = "standby"
                    supervisor.start(name, partial(self._leased, watched, channel.run, sink))
                else:
                    supervisor.start(name, partial(self._running, watched, channel.run, sink))
            if self.runtime.slack is not None:
                watched = self._watch("slack", self.runtime.slack)
                run_slack = partial(self._running, watched, self.runtime.slack.run, sink)
                supervisor.start("slack", run_slack)
            for periodic in [*self.jobs(), Periodic("ops", self._ops, 15.0)]:
                supervisor.start(periodic.name, self._every(periodic))
            if settings.rules_path.exists():
                supervisor.start("rules-watch", self.runtime.rules.watch)
            supervisor.start("outbox", self._deliver)
            supervisor.start("watchdog", self.notifier.watchdog)
            await asyncio.sleep(0)  # let every task take its first step
            log.info("daemon ready", tasks=sorted(supervisor.tasks))
            self.notifier.ready(self.status_line())
            await self.stopping.wait()
            log.info("stop requested; finishing", drain_s=settings.daemon.drain_seconds)
            self.notifier.stopping("stopping: finishing messages in flight")
            await self._drain(supervisor)
        finally:
            await supervisor.stop()
            if self.http is not None:
                await self.http.stop()
                self.http = None
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _drain(self, supervisor: Supervisor) -> None:
        """Stop taking messages, and let the ones in flight, the outbox pass under way and the
        periodic jobs finish, within ``drain_seconds``; what is left is then cancelled."""
        self.gate.close()
        timeout = self.runtime.settings.daemon.drain_seconds
        started = asyncio.get_running_loop().time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gate.idle(), timeout)
        elapsed = asyncio.get_running_loop().time() - started
        finishing = ["outbox", "ops", *(p.name for p in self.jobs())]
        left = await supervisor.wait(finishing, max(timeout - elapsed, 0.0))
        if self.gate.in_flight or left:
            log.warning("drain timed out; cancelling", in_flight=self.gate.in_flight,
                        tasks=sorted(left))  # fmt: skip
        else:
            log.info("drained", in_flight=0)

    async def _start_http(self) -> None:
        http = self.runtime.settings.http
        server = OpsServer(self.metrics, self.health, host=http.host, port=http.port)
        try:
            await server.start()
        except OSError as exc:
            raise ConfigError(
                f"[http] cannot listen on {http.host}:{http.port}: {exc.strerror or exc}"
            ) from None
        self.http = server

    def _watch(self, name: str, channel: object, mailbox: str | None = None) -> _Watched:
        watched = _Watched(name, channel, mailbox=mailbox)
        self.watched[name] = watched
        return watched

    async def _running(
        self, watched: _Watched, run: Callable[[Sink], Awaitable[None]], sink: Sink
    ) -> None:
        watched.running = True
        try:
            await run(sink)
        finally:
            watched.running = False

    async def _leased(
        self, watched: _Watched, run: Callable[[Sink], Awaitable[None]], sink: Sink
    ) -> None:
        """Run the channel while this instance holds its mailbox's lease (PostgreSQL)."""
        seconds = self.runtime.settings.daemon.lease_seconds
        duration, every = timedelta(seconds=seconds), seconds / 3
        name = f"mailbox:{watched.mailbox or watched.name}"
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            if not await self.leases.acquire(name, duration):
                watched.lease = "standby"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), every)
                continue
            held_until = loop.time() + seconds
            watched.lease = "held"
            log.info("mailbox lease taken", lease=name, holder=self.leases.holder)
            task = asyncio.create_task(self._running(watched, run, sink), name=name)
            lost = False
            try:
                while not lost:
                    done, _ = await asyncio.wait({task}, timeout=every)
                    if done:
                        task.result()  # the channel's error: the supervisor restarts us
                        return
                    try:
                        if await self.leases.acquire(name, duration):
                            held_until = loop.time() + seconds
                        else:
                            lost = True
                    except Exception as exc:
                        log.warning("mailbox lease not renewed", lease=name, error=str(exc))
                        lost = loop.time() >= held_until - every
                if lost:
                    log.warning("mailbox lease lost; stopping the channel", lease=name)
                    watched.lease = "standby"
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                if not lost:
                    with contextlib.suppress(Exception):
                        await self.leases.release(name)

    def channel_statuses(self) -> list[ChannelStatus]:
        statuses = []
        for watched in self.watched.values():
            connected = bool(getattr(watched.channel, "connected", watched.running))
            if watched.lease == "standby":
                state = "standby"
            elif watched.running and connected:
                state = "running"
            else:
                state = "down"
            last = self.metrics.last_delivery.get(watched.mailbox or "")
            polled = getattr(watched.channel, "last_poll", None)
            statuses.append(ChannelStatus(watched.name, state, connected, last, polled))
        return statuses

    def health(self) -> tuple[int, dict[str, object]]:
        rules = self.runtime.rules
        current = rules.current
        return health_report(
            self.channel_statuses(),
            pending=self.metrics.pending,
            rules_version=current.version if current is not None else None,
            rules_error=rules.last_error,
            stopping=self.stopping.is_set(),
        )

    def status_line(self) -> str:
        statuses = self.channel_statuses()
        up = sum(1 for c in statuses if c.up)
        return f"{up} of {len(statuses)} channels up, {self.metrics.pending} pending"

    def _on_sighup(self) -> None:
        log.info("SIGHUP: reloading the config and the rules")
        self.notifier.reloading()
        task = asyncio.create_task(self._reload(), name="rules-reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload(self) -> bool:
        try:
            try:
                self.runtime.reload_settings()
            except ConfigError as exc:
                log.error("config rejected; the running settings stay", error=str(exc))
            return await self.runtime.rules.reload()
        finally:
            self.notifier.ready(self.status_line())

    def _every(self, periodic: Periodic) -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            while not self.stopping.is_set():
                await periodic.job()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), periodic.interval)

        return loop
