"""Prometheus metrics, in a registry of their own (never the process-global one).

Counting happens at the daemon's edges, without touching the pipeline: :meth:`Metrics.observe`
wraps the sink every channel feeds (each :class:`IngestResult` counts by channel, mailbox and
outcome), :meth:`Metrics.delivery_failed` listens to the outbox, and :meth:`Metrics.refresh`
reads what only the database knows: routing decisions (the ``routed`` audit events), messages
sent and their latency (``created_at`` → ``sent_at``), the outbox's pending rows and the open
cases past their SLA due dates. ``refresh`` runs periodically and before every scrape; what it
counts starts at the daemon's start (the database's history is not replayed). On PostgreSQL
with several daemons, those database-derived figures cover every instance.
:meth:`Metrics.watch_refresh_token` adds an IMAP mailbox's XOAUTH2 refresh token, whose days
left (``refresh_token_expires``) are computed at each scrape. Mailboxes and channels are known
here by name only: this module imports neither the channels nor the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases.enums import PAUSED, DeliveryState, Direction, Status
from inbox_daemon.sinks import BatchingSink, Delivery, IngestResult, Sink, take_batch
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, AuditRow, CaseRow

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Statuses whose SLA clock runs: not paused, not resolved or final.
_RUNNING = sorted(
    s.value for s in Status if s not in PAUSED and s not in {Status.RESOLVED} and not s.final
)


class _RefreshTokens(Collector):
    """``inbox_oauth2_refresh_token_days_left{mailbox}``, computed when scraped.

    A mailbox whose source answers None (no known expiry) has no sample.
    """

    NAME = "inbox_oauth2_refresh_token_days_left"
    HELP = "Days until an IMAP mailbox's OAuth2 refresh token expires (negative once expired)"

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], float | None]] = {}

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.NAME, self.HELP, labels=["mailbox"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["mailbox"])
        for mailbox, days_left in sorted(self.sources.items()):
            value = days_left()
            if value is not None:
                family.add_metric([mailbox], value)
        yield family


class Metrics:
    """The daemon's metrics and the bookkeeping behind them."""

    def __init__(
        self, db: Database, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.db = db
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.ingested = Counter(
            "inbox_messages_ingested", "Messages taken in, by channel, mailbox and outcome",
            ["channel", "mailbox", "outcome"], registry=r,
        )  # fmt: skip
        self.quarantined = Counter(
            "inbox_messages_quarantined", "Messages set aside in quarantine",
            ["channel", "mailbox"], registry=r,
        )  # fmt: skip
        self.cases_created = Counter(
            "inbox_cases_created", "Cases created from incoming messages (follow-ups included)",
            registry=r,
        )  # fmt: skip
        self.cases_reopened = Counter(
            "inbox_cases_reopened", "Cases reopened by a customer reply", registry=r
        )
        self.routing = Counter(
            "inbox_routing_decisions", "Routing decisions, by rule fired ('default': none)",
            ["rule"], registry=r,
        )  # fmt: skip
        self.outbox_pending = Gauge(
            "inbox_outbox_pending", "Outgoing messages waiting to be sent (or being sent)",
            registry=r,
        )  # fmt: skip
        self.outbox_sent = Counter(
            "inbox_outbox_sent", "Outgoing messages sent, by channel", ["channel"], registry=r
        )
        self.outbox_failed = Counter(
            "inbox_outbox_failed", "Outgoing messages given up as failed", registry=r
        )
        self.delivery_latency = Histogram(
            "inbox_delivery_latency_seconds", "From an outgoing message's creation to its sending",
            buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=r,
        )  # fmt: skip
        self.poll_latency = Histogram(
            "inbox_imap_poll_latency_seconds", "How long listing a mailbox's new mail took",
            ["mailbox"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )  # fmt: skip
        self.sla_breached = Gauge(
            "inbox_sla_breached_cases", "Open cases past a due date (first_response, resolve_by)",
            ["due"], registry=r,
        )  # fmt: skip
        for due in ("first_response", "resolve_by"):
            self.sla_breached.labels(due=due).set(0)
        self._refresh_tokens = _RefreshTokens()
        r.register(self._refresh_tokens)
        #: The last message taken in, per mailbox (or Slack workspace), for the health check.
        self.last_delivery: dict[str, datetime] = {}
        self._audit_mark: int | None = None
        self._sent_mark: datetime | None = None
        self._sent_seen: set[int] = set()
        #: The outbox's pending count as of the last refresh.
        self.pending = 0

    # --- counting at the edges -----------------------------------------------------------

    def observe(self, sink: Sink) -> Sink:
        """The sink, counting what it does with every delivery."""

        async def observed(delivery: Delivery) -> IngestResult:
            result = await sink(delivery)
            self.count(delivery, result)
            return result

        async def observed_batch(deliveries: Sequence[Delivery]) -> list[IngestResult]:
            results = await take_batch(sink, deliveries)
            for delivery, result in zip(deliveries, results, strict=True):
                self.count(delivery, result)
            return results

        return BatchingSink(observed, observed_batch)

    def count(self, delivery: Delivery, result: IngestResult) -> None:
        self.ingested.labels(delivery.channel, delivery.mailbox, result.outcome).inc()
        self.last_delivery[delivery.mailbox] = self.clock()
        if result.outcome == "quarantined":
            self.quarantined.labels(delivery.channel, delivery.mailbox).inc()
        elif result.outcome in ("created", "follow_up"):
            self.cases_created.inc()
        elif result.outcome == "reopened":
            self.cases_reopened.inc()

    def poller(self, mailbox: str) -> Callable[[float], None]:
        """A listener for a channel's ``on_poll``: the listing time of ``mailbox``."""
        histogram = self.poll_latency.labels(mailbox=mailbox)
        return histogram.observe

    def watch_refresh_token(self, mailbox: str, days_left: Callable[[], float | None]) -> None:
        """Expose the days left of ``mailbox``'s OAuth2 refresh token at every scrape.

        ``days_left`` is called at each scrape (None: no sample), e.g. the function
        :func:`~inbox_daemon.channels.email.imap_auth.refresh_token_days_left_for` builds from
        the mailbox's ``oauth2.refresh_token_expires``.
        """
        self._refresh_tokens.sources[mailbox] = days_left

    async def delivery_failed(self, _case_number: str, _error: str) -> None:
        """An outbox ``on_failed`` listener."""
        self.outbox_failed.inc()

    # --- reading the database ------------------------------------------------------------

    async def start(self) -> None:
        """Mark where counting starts: what happened before is not counted."""
        async with self.db.transaction() as session:
            self._audit_mark = (await session.scalar(select(func.max(AuditRow.id)))) or 0
        self._sent_mark = self.clock()

    async def refresh(self) -> None:
        """Bring the database-derived metrics up to date."""
        if self._audit_mark is None:
            await self.start()
        now = self.clock()
        async with self.db.transaction() as session:
            routed = (
                await session.execute(
                    select(AuditRow.id, AuditRow.detail)
                    .where(AuditRow.action == "routed", AuditRow.id > self._audit_mark)
                    .order_by(AuditRow.id)
                )
            ).all()
            for audit_id, detail in routed:
                fired = list((detail or {}).get("rules_fired") or []) or ["default"]
                for rule in fired:
                    self.routing.labels(rule=str(rule)).inc()
                self._audit_mark = audit_id
            await self._count_sent(session)
            pending = await session.scalar(
                select(func.count()).where(
                    ActivityRow.direction == Direction.OUTGOING.value,
                    ActivityRow.delivery_state.in_(
                        [DeliveryState.PENDING.value, DeliveryState.SENDING.value]
                    ),
                )
            )
            self.pending = pending or 0
            self.outbox_pending.set(self.pending)
            running = CaseRow.status.in_(_RUNNING)
            first = await session.scalar(
                select(func.count()).where(
                    running,
                    CaseRow.first_responded_at.is_(None),
                    CaseRow.first_response_due < now,
                )
            )
            resolve = await session.scalar(
                select(func.count()).where(running, CaseRow.resolve_by_due < now)
            )
        self.sla_breached.labels(due="first_response").set(first or 0)
        self.sla_breached.labels(due="resolve_by").set(resolve or 0)

    async def _count_sent(self, session: AsyncSession) -> None:
        mark = self._sent_mark
        assert mark is not None
        rows = (
            await session.execute(
                select(
                    ActivityRow.id, ActivityRow.channel, ActivityRow.created_at, ActivityRow.sent_at
                )
                .where(
                    ActivityRow.direction == Direction.OUTGOING.value,
                    ActivityRow.delivery_state == DeliveryState.SENT.value,
                    or_(
                        ActivityRow.sent_at > mark,
                        and_(ActivityRow.sent_at == mark, ActivityRow.id.not_in(self._sent_seen)),
                    ),
                )
                .order_by(ActivityRow.sent_at)
            )
        ).all()
        for activity_id, channel, created_at, sent_at in rows:
            if sent_at is None:
                continue
            self.outbox_sent.labels(channel=channel or "?").inc()
            self.delivery_latency.observe(max((sent_at - created_at).total_seconds(), 0.0))
            if sent_at > mark:
                mark, self._sent_seen = sent_at, set()
            self._sent_seen.add(activity_id)
        self._sent_mark = mark

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
