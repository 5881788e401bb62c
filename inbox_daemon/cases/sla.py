"""Service level agreements: the due dates of a case's first response and resolution.

Owns SLA policies (targets per priority, in business or calendar time), the due dates they
give a case, how pauses push them (the SLA clock stops while a case is in a paused status, see
:attr:`Status.paused`), recalculation after a priority change, and breach / time-left checks.
Business time comes from :class:`~inbox_daemon.cases.calendar.BusinessCalendar`. Pure code,
no I/O; every datetime must be timezone-aware and results are UTC.

A target is a :class:`SlaTarget`: weeks and days, then hours and minutes. In business time a
day is one business *day* of the calendar (from 15:00 to 15:00 on the next business day, its
opening hours however long) and a week as many business days as the calendar's week has open
weekdays; the hours and minutes that follow are open hours. Around the clock a day is 24
hours. A plain ``timedelta`` target is open time, however many days it spans.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from inbox_daemon.cases.calendar import BusinessCalendar, to_utc
from inbox_daemon.cases.enums import Priority, Status

__all__ = [
    "BusinessCalendar",
    "SlaDueDates",
    "SlaPolicy",
    "SlaTarget",
    "extend_for_pause",
    "is_breached",
    "pauses_from_history",
    "recalculate",
    "time_left",
]

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class SlaDueDates:
    """When a case must have its first response and be resolved; None: no target."""

    first_response_due: datetime | None
    resolve_by_due: datetime | None


@dataclass(frozen=True, slots=True)
class SlaTarget:
    """A target as written (``2d4h``): whole weeks and days, then the rest as time."""

    weeks: int = 0
    days: int = 0
    time: timedelta = _ZERO

    @classmethod
    def of(cls, value: SlaTarget | timedelta) -> SlaTarget:
        return value if isinstance(value, SlaTarget) else cls(time=value)

    @property
    def nominal(self) -> timedelta:
        """Its length around the clock (a day of 24 hours)."""
        return timedelta(weeks=self.weeks, days=self.days) + self.time

    def advance(self, start: datetime, calendar: BusinessCalendar, business_time: bool) -> datetime:
        """When this much time has passed since ``start`` (see the module docstring)."""
        if not business_time:
            return to_utc(start, "start") + self.nominal
        days = self.weeks * calendar.open_weekdays + self.days
        point = calendar.add_business_days(start, days) if days else to_utc(start, "start")
        return calendar.add_business_time(point, self.time)

    def __str__(self) -> str:
        parts = [f"{self.weeks}w" if self.weeks else "", f"{self.days}d" if self.days else ""]
        seconds = int(self.time.total_seconds())
        for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
            if seconds >= size:
                parts.append(f"{seconds // size}{unit}")
                seconds %= size
        return "".join(parts) or "0s"


@dataclass(frozen=True)
class SlaPolicy:
    """Targets per priority. ``business_time=False`` ignores the calendar (24×7 clock)."""

    name: str
    first_response: Mapping[Priority, SlaTarget | timedelta]
    resolve_by: Mapping[Priority, SlaTarget | timedelta]
    business_time: bool = True

    def __post_init__(self) -> None:
        for kind, targets in (
            ("first_response", self.first_response),
            ("resolve_by", self.resolve_by),
        ):
            for priority, target in targets.items():
                if not isinstance(priority, Priority):
                    raise ValueError(f"SLA {self.name!r}: {kind} has unknown priority {priority!r}")
                if SlaTarget.of(target).nominal <= _ZERO:
                    raise ValueError(
                        f"SLA {self.name!r}: {kind} target for {priority} must be positive, "
                        f"got {target}"
                    )

    def due_dates(
        self, start: datetime, priority: Priority, calendar: BusinessCalendar
    ) -> SlaDueDates:
        """The due dates of a case created (or whose clock started) at ``start``."""
        start = to_utc(start, "start")

        def due(target: SlaTarget | timedelta | None) -> datetime | None:
            if target is None:
                return None
            return SlaTarget.of(target).advance(start, calendar, self.business_time)

        return SlaDueDates(
            first_response_due=due(self.first_response.get(priority)),
            resolve_by_due=due(self.resolve_by.get(priority)),
        )


def _advance(
    start: datetime, duration: timedelta, calendar: BusinessCalendar, business_time: bool
) -> datetime:
    if business_time:
        return calendar.add_business_time(start, duration)
    if duration < _ZERO:
        raise ValueError(f"duration must not be negative, got {duration}")
    return to_utc(start, "start") + duration


def _elapsed(
    a: datetime, b: datetime, calendar: BusinessCalendar, business_time: bool
) -> timedelta:
    if business_time:
        return calendar.business_time_between(a, b)
    return max(to_utc(b, "b") - to_utc(a, "a"), _ZERO)


def extend_for_pause(
    due: datetime,
    paused_from: datetime,
    resumed_at: datetime,
    calendar: BusinessCalendar,
    business_time: bool,
) -> datetime:
    """Push ``due`` by the (business or calendar) time spent paused.

    The clock stopped at ``paused_from`` with ``due - paused_from`` left and restarts at
    ``resumed_at``, so the new due date is that much after ``resumed_at``; in calendar time
    that is ``due + (resumed_at - paused_from)``. A pause that starts at or after ``due``
    (or with no open time left before it) does not move it: the target was already missed.
    """
    due = to_utc(due, "due")
    start = to_utc(paused_from, "paused_from")
    end = to_utc(resumed_at, "resumed_at")
    if end < start:
        raise ValueError(f"pause resumes at {end.isoformat()} before it starts {start.isoformat()}")
    if start >= due or end == start:
        return due
    left = _elapsed(start, due, calendar, business_time)
    if left <= _ZERO:
        return due
    return max(due, _advance(end, left, calendar, business_time))


def recalculate(
    policy: SlaPolicy,
    created_at: datetime,
    priority: Priority,
    calendar: BusinessCalendar,
    paused_intervals: Sequence[tuple[datetime, datetime]],
) -> SlaDueDates:
    """Due dates as if the case had had ``priority`` since creation, extended by its pauses.

    ``paused_intervals`` are ``(paused_from, resumed_at)`` pairs (close a running pause at
    "now"); they may come in any order but may not overlap. Parts before ``created_at`` are
    ignored.
    """
    created = to_utc(created_at, "created_at")
    pauses: list[tuple[datetime, datetime]] = []
    for paused_from, resumed_at in paused_intervals:
        start, end = to_utc(paused_from, "paused_from"), to_utc(resumed_at, "resumed_at")
        if end < start:
            raise ValueError(
                f"pause resumes at {end.isoformat()} before it starts {start.isoformat()}"
            )
        pauses.append((max(start, created), max(end, created)))
    pauses.sort()
    for (_, end1), (start2, _) in itertools.pairwise(pauses):
        if start2 < end1:
            raise ValueError(f"paused intervals overlap at {start2.isoformat()}")

    def extend(due: datetime | None) -> datetime | None:
        if due is None:
            return None
        for start, end in pauses:
            due = extend_for_pause(due, start, end, calendar, policy.business_time)
        return due

    base = policy.due_dates(created, priority, calendar)
    return SlaDueDates(extend(base.first_response_due), extend(base.resolve_by_due))


def pauses_from_history(
    transitions: Iterable[tuple[datetime, Status]], now: datetime
) -> list[tuple[datetime, datetime]]:
    """Paused intervals from a case's status changes ``(when, new status)``, oldest first.

    A pause still running is closed at ``now``.
    """
    out: list[tuple[datetime, datetime]] = []
    since: datetime | None = None
    for when, status in sorted(transitions, key=lambda t: to_utc(t[0], "transition")):
        when = to_utc(when, "transition")
        if status.paused and since is None:
            since = when
        elif not status.paused and since is not None:
            out.append((since, when))
            since = None
    if since is not None:
        out.append((since, max(since, to_utc(now, "now"))))
    return out


def is_breached(due: datetime, now: datetime) -> bool:
    """True once ``now`` is past ``due`` (the due instant itself is still in time)."""
    return to_utc(now, "now") > to_utc(due, "due")


def time_left(
    due: datetime, now: datetime, calendar: BusinessCalendar, business_time: bool
) -> timedelta:
    """Time from ``now`` to ``due`` (business or calendar time); negative when overdue."""
    due, now = to_utc(due, "due"), to_utc(now, "now")
    if now <= due:
        return _elapsed(now, due, calendar, business_time)
    return -_elapsed(due, now, calendar, business_time)
