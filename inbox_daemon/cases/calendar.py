"""Business calendars: when the service desk is open, and business-time arithmetic.

Owns the weekly opening hours, the holiday schedule (named days, shut-down periods and,
optionally, a country's public holidays from the ``holidays`` package) and the arithmetic of
open time that SLA due dates (:mod:`inbox_daemon.cases.sla`) are built on. Pure code: the
standard library, :mod:`zoneinfo` and ``holidays``; no I/O.

Conventions:

* Every method takes timezone-aware datetimes (a naive one raises ``ValueError``) and returns
  UTC datetimes.
* Opening ranges are half-open, ``[start, end)``, in local wall time, and may not span midnight
  (split a night shift over two days). An end of ``time(0, 0)`` or of ``23:59:59`` or later
  means the end of the day, i.e. the next day's midnight; ``build`` spells it "24:00" (or
  "00:00"). A holiday closes its whole local day.
* Each boundary is placed with ``datetime.combine(day, t, tzinfo=tz)``, i.e. ``fold=0``: an
  ambiguous wall time (the hour repeated when clocks go back) means its first occurrence, and a
  nonexistent one (the hour skipped when clocks go forward) is shifted later by the length of the
  gap. A day's intervals are then clamped so they stay ordered and disjoint. Hence a day open
  00:00-24:00 that contains a switch lasts 23 or 25 hours, one open 09:00-17:00 lasts 8 hours.
* Long spans are walked a whole week at a time where a week has no holiday and no DST switch,
  else a day at a time (never a minute at a time); per-day intervals are cached, and a
  calendar that is always open takes a constant-time shortcut.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

__all__ = ["WEEKDAYS", "BusinessCalendar", "to_utc"]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NAMES = {name: i % 7 for i, name in enumerate(WEEKDAYS + _FULL_WEEKDAYS)}
_MIDNIGHT = time(0, 0)
_END_OF_DAY_FROM = time(23, 59, 59)
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_ZERO = timedelta(0)
# After this many closed days in a row (past the last explicit holiday) we give up.
_MAX_CLOSED_RUN = 400
_CACHE_SIZE = 4096
_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")

Range = tuple[time, time]
_Slot = tuple[time, time | None]  # None: until the end of the day
_K = TypeVar("_K")
_V = TypeVar("_V")


def to_utc(value: datetime, what: str = "datetime") -> datetime:
    """Return ``value`` in UTC; raise ``ValueError`` if it is naive."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _fmt(t: time | None) -> str:
    if t is None:
        return "24:00"
    return t.strftime("%H:%M:%S" if t.second or t.microsecond else "%H:%M")


def _slot(start: time, end: time) -> _Slot:
    """Normalise an end-of-day end to None."""
    return (start, None if end == _MIDNIGHT or end >= _END_OF_DAY_FROM else end)


def _slot_length(slot: _Slot) -> timedelta:
    """Wall-clock length of a range on a day without a DST switch."""
    stop = _DAY if slot[1] is None else datetime.combine(date.min, slot[1]) - datetime.min
    return stop - (datetime.combine(date.min, slot[0]) - datetime.min)


def _memo(cache: dict[_K, _V], key: _K, compute: Callable[[_K], _V]) -> _V:
    """``compute(key)`` through ``cache``, which is emptied when it holds _CACHE_SIZE items."""
    found = cache.get(key)
    if found is None:
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[key] = found = compute(key)
    return found


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours of a time zone, weekly ranges per weekday (0 = Monday) minus holidays.

    ``holidays`` are closed local dates; ``country``/``subdiv`` add that country's public
    holidays, loaded one year at a time as computations reach it.
    """

    tz: ZoneInfo
    hours: Mapping[int, tuple[Range, ...]]
    holidays: frozenset[date] = frozenset()
    country: str | None = None
    subdiv: str | None = None
    _week: tuple[tuple[_Slot, ...], ...] = field(init=False, repr=False, compare=False)
    _always: bool = field(init=False, repr=False, compare=False)
    _weekly: timedelta = field(init=False, repr=False, compare=False)
    _last_holiday: date = field(init=False, repr=False, compare=False)
    # Caches (the dataclass is frozen, these dicts are not): holidays per year, days, weeks.
    _country_years: dict[int, frozenset[date]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _days: dict[date, tuple[tuple[datetime, datetime], ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _weeks: dict[date, date] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.tz, ZoneInfo):
            raise ValueError(f"tz must be a ZoneInfo, got {self.tz!r}")
        for key in self.hours:
            if not isinstance(key, int) or not 0 <= key <= 6:
                raise ValueError(f"unknown weekday {key!r}; expected 0 (Monday) to 6 (Sunday)")
        week = [self._check_day(WEEKDAYS[d], self.hours.get(d, ())) for d in range(7)]
        if self.subdiv is not None and self.country is None:
            raise ValueError(f"subdivision {self.subdiv!r} given without a country")
        if self.country is not None:
            try:
                holidays_lib.country_holidays(self.country, subdiv=self.subdiv, years=())
            except NotImplementedError as exc:
                if self.subdiv is not None and "subdivision" in str(exc):
                    raise ValueError(
                        f"unknown subdivision {self.subdiv!r} of country {self.country!r}"
                    ) from None
                raise ValueError(f"unknown country {self.country!r}") from None
        always = not self.holidays and self.country is None
        always = always and all(day == ((_MIDNIGHT, None),) for day in week)
        object.__setattr__(self, "_week", tuple(week))
        object.__setattr__(self, "_always", always)
        object.__setattr__(self, "_weekly", sum(map(_slot_length, itertools.chain(*week)), _ZERO))
        object.__setattr__(self, "_last_holiday", max(self.holidays, default=date.min))

    def __hash__(self) -> int:
        return hash((self.tz, self._week, frozenset(self.holidays), self.country, self.subdiv))

    @staticmethod
    def _check_day(name: str, ranges: Sequence[Range]) -> tuple[_Slot, ...]:
        slots: list[_Slot] = []
        for item in ranges:
            start, end = item
            if not isinstance(start, time) or not isinstance(end, time):
                raise ValueError(f"opening hours on {name} must be (time, time), got {item!r}")
            if start.tzinfo is not None or end.tzinfo is not None:
                raise ValueError(f"opening hours on {name} must be naive wall times")
            slot = _slot(start, end)
            if slot[1] is not None and slot[1] <= start:
                raise ValueError(
                    f"bad range {_fmt(start)}-{_fmt(end)} on {name}: start must be before end"
                )
            slots.append(slot)
        slots.sort(key=lambda s: s[0])
        for (s1, e1), (s2, e2) in itertools.pairwise(slots):
            if e1 is None or s2 < e1:
                raise ValueError(
                    f"overlapping ranges on {name}: {_fmt(s1)}-{_fmt(e1)} and {_fmt(s2)}-{_fmt(e2)}"
                )
        return tuple(slots)

    @classmethod
    def always(cls) -> BusinessCalendar:
        """Open 24×7 in UTC with no holidays: business time is calendar time."""
        return cls(tz=ZoneInfo("UTC"), hours=dict.fromkeys(range(7), ((_MIDNIGHT, _MIDNIGHT),)))

    @classmethod
    def build(
        cls,
        tz: str,
        hours: Mapping[str, Sequence[str]],
        holidays: Sequence[Mapping[str, object]] = (),
        country: str | None = None,
        subdiv: str | None = None,
    ) -> BusinessCalendar:
        """Build from configuration values; raise ``ValueError`` naming what is wrong.

        ``hours`` maps weekday names ("mon" or "monday", any case) to "HH:MM-HH:MM" ranges
        (an end of "24:00" or "00:00" means midnight at the end of the day); missing days are
        closed. ``holidays`` entries are ``{"name", "date"}`` or ``{"name", "from", "to"}``
        (inclusive), dates as ``date`` or ISO strings; entries may not overlap.
        """
        try:
            zone = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise ValueError(f"unknown time zone {tz!r}") from None
        weekly: dict[int, tuple[Range, ...]] = {}
        for key, ranges in hours.items():
            weekday = _DAY_NAMES.get(str(key).strip().lower(), -1)
            if weekday < 0:
                raise ValueError(f"unknown weekday {key!r}; expected one of {', '.join(WEEKDAYS)}")
            if weekday in weekly:
                raise ValueError(f"weekday {WEEKDAYS[weekday]} is given twice")
            if isinstance(ranges, str):
                raise ValueError(f"hours of {key} must be a list of ranges, got {ranges!r}")
            weekly[weekday] = tuple(_parse_range(r, WEEKDAYS[weekday]) for r in ranges)
        return cls(
            tz=zone,
            hours=weekly,
            holidays=_parse_holidays(holidays),
            country=country.strip().upper() if country else None,
            subdiv=subdiv.strip().upper() if subdiv else None,
        )

    def is_holiday(self, day: date) -> bool:
        """True when the local date ``day`` is closed all day by a holiday."""
        if day in self.holidays:
            return True
        if self.country is None:
            return False
        country, subdiv = self.country, self.subdiv

        def load(year: int) -> frozenset[date]:
            return frozenset(holidays_lib.country_holidays(country, subdiv=subdiv, years=year))

        return day in _memo(self._country_years, day.year, load)

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` falls in an opening range (ranges are half-open)."""
        point = to_utc(at, "at")
        if self._always:
            return True
        return self._weekly > _ZERO and self._walk(point)[0] == point

    def next_open(self, at: datetime) -> datetime:
        """The first instant at or after ``at`` when the calendar is open."""
        point = to_utc(at, "at")
        return point if self._always else self._walk(point)[0]

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest instant by which ``duration`` of open time has elapsed after ``start``.

        In closed time the clock starts at the next opening; a zero duration returns ``start``;
        the result can be a closing instant (17:00, not the next day's 09:00).
        """
        point = to_utc(start, "start")
        if duration < _ZERO:
            raise ValueError(f"duration must not be negative, got {duration}")
        if self._always or duration == _ZERO:
            return point + duration
        return self._walk(point, budget=duration)[0]

    @property
    def open_weekdays(self) -> int:
        """How many weekdays have opening hours: the business days of a regular week."""
        return sum(1 for day in self._week if day)

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """The same point of the business day ``days`` business days after ``start``'s.

        A business day is a local date with opening hours (not a holiday). The point is the
        open time already elapsed on the start's day: 15:00 on a 09:00-17:00 day is 6 hours
        in, so one business day later is 15:00 on the next business day (not 24 open hours
        later). Before the opening the clock starts at it, so a whole day ends at that day's
        close; after the close (or on a closed day) at the next opening. On a shorter target
        day the result is capped at its close.
        """
        point = to_utc(start, "start")
        if days < 0:
            raise ValueError(f"days must not be negative, got {days}")
        if days == 0:
            return point
        if self._always:
            return point + days * _DAY
        day, elapsed = self._position(point)
        if elapsed == _ZERO:
            # At the opening the day itself is the first one: the last ends at its close.
            for _ in range(days - 1):
                day = self._next_business_day(day)
            return self.day_intervals(day)[-1][1]
        for _ in range(days):
            day = self._next_business_day(day)
        return self._at_elapsed(day, elapsed)

    def _position(self, point: datetime) -> tuple[date, timedelta]:
        """The business day ``point`` counts on and the open time before it on that day."""
        day = point.astimezone(self.tz).date()
        intervals = self.day_intervals(day)
        if not intervals or point > intervals[-1][1]:
            point = self.next_open(point)
            day = point.astimezone(self.tz).date()
            intervals = self.day_intervals(day)
        elapsed = sum((min(end, point) - begin for begin, end in intervals if begin < point), _ZERO)
        return day, elapsed

    def _next_business_day(self, day: date) -> date:
        for _ in range(_MAX_CLOSED_RUN + 7):
            day += _DAY
            if self.day_intervals(day):
                return day
        raise ValueError("calendar has no open time")

    def _at_elapsed(self, day: date, elapsed: timedelta) -> datetime:
        """The instant on ``day`` when ``elapsed`` of its open time has passed (its close at
        most)."""
        left = elapsed
        intervals = self.day_intervals(day)
        for begin, end in intervals:
            if end - begin >= left:
                return begin + left
            left -= end - begin
        return intervals[-1][1]

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Open time between ``a`` and ``b``; zero if ``b <= a``."""
        lo, hi = to_utc(a, "a"), to_utc(b, "b")
        if hi <= lo:
            return _ZERO
        if self._always:
            return hi - lo
        if self._weekly == _ZERO:
            return _ZERO
        return self._walk(lo, until=hi)[1]

    def day_intervals(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The open intervals of the local date ``day``, in UTC, ordered and disjoint."""
        return _memo(self._days, day, self._compute_day)

    def _compute_day(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        slots = self._week[day.weekday()]
        if not slots or self.is_holiday(day):
            return ()
        out: list[tuple[datetime, datetime]] = []
        floor: datetime | None = None
        for start, end in slots:
            a = datetime.combine(day, start, tzinfo=self.tz).astimezone(UTC)
            if end is None:
                b = self._midnight(day + _DAY)
            else:
                b = datetime.combine(day, end, tzinfo=self.tz).astimezone(UTC)
            if floor is not None and a < floor:
                a = floor
            if b > a:
                out.append((a, b))
                floor = b
        return tuple(out)

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, _MIDNIGHT, tzinfo=self.tz).astimezone(UTC)

    def _next_regular_week(self, day: date) -> date:
        """The first day from ``day`` on that could begin a week of exactly ``_weekly``.

        A regular week has no holiday and one UTC offset at all 8 midnights, so no DST switch
        (assuming no zone changes its offset twice within a day, which tzdata never does).
        Returns ``day`` itself when the week from ``day`` is regular.
        """
        return _memo(self._weeks, day, self._find_regular_week)

    def _find_regular_week(self, day: date) -> date:
        for i in range(6, -1, -1):
            if self.is_holiday(day + timedelta(days=i)):
                return day + timedelta(days=i + 1)
        offsets = [
            datetime.combine(day + timedelta(days=i), _MIDNIGHT, tzinfo=self.tz).utcoffset()
            for i in range(8)
        ]
        for i in range(7, 0, -1):
            if offsets[i] != offsets[i - 1]:
                return day + timedelta(days=i)
        return day

    def _walk(
        self,
        point: datetime,
        *,
        budget: timedelta | None = None,
        until: datetime | None = None,
    ) -> tuple[datetime, timedelta]:
        """Walk the open time from ``point`` (UTC) on, one local day or whole week at a time.

        With ``budget``: return the instant when that much open time is used up. With
        ``until``: return ``until`` and the open time before it. With neither: return the
        first open instant. Raises ``ValueError`` when no open time can be found.
        """
        if self._weekly == _ZERO:
            raise ValueError("calendar has no open time")
        # A day's intervals may start before its local midnight (a shifted boundary), so start
        # one day early; the cursor keeps neighbouring days from overlapping.
        day = point.astimezone(self.tz).date() - _DAY
        cursor, used, closed_run = point, _ZERO, 0
        skip_from = day  # no regular week starts before this day
        while True:
            while (budget is not None or until is not None) and day >= skip_from:
                if budget is not None and budget - used <= self._weekly:
                    break
                midnight = self._midnight(day)
                week_end = self._midnight(day + _WEEK)
                if cursor > midnight or (until is not None and week_end > until):
                    break
                skip_from = self._next_regular_week(day)
                if skip_from != day:
                    break
                used += self._weekly
                cursor, day, skip_from, closed_run = week_end, day + _WEEK, day + _WEEK, 0
            found = False
            for begin, end in self.day_intervals(day):
                if end <= cursor:
                    continue
                begin = max(begin, cursor)
                if until is not None:
                    if begin >= until:
                        return until, used
                    used += min(end, until) - begin
                    if end >= until:
                        return until, used
                elif budget is None:
                    return begin, used
                elif end - begin >= budget - used:
                    return begin + (budget - used), budget
                else:
                    used += end - begin
                cursor, found = end, True
            if found or day <= self._last_holiday:
                closed_run = 0
            else:
                closed_run += 1
                if closed_run > _MAX_CLOSED_RUN:
                    raise ValueError("calendar has no open time")
            day += _DAY
            if until is not None and self._midnight(day) > until + _DAY:
                return until, used


def _parse_time(text: str, *, end: bool) -> time:
    match = _TIME_RE.match(text)
    if not match:
        raise ValueError(f"bad time {text.strip()!r}: expected HH:MM")
    hour, minute = int(match[1]), int(match[2])
    if end and (hour, minute) == (24, 0):
        return _MIDNIGHT
    if hour > 23 or minute > 59:
        raise ValueError(f"bad time {text.strip()!r}: out of range")
    return time(hour, minute)


def _parse_range(text: object, day: str) -> Range:
    if not isinstance(text, str) or text.count("-") != 1:
        raise ValueError(f"bad range {text!r} on {day}: expected 'HH:MM-HH:MM'")
    first, second = text.split("-")
    try:
        return _parse_time(first, end=False), _parse_time(second, end=True)
    except ValueError as exc:
        raise ValueError(f"bad range {text!r} on {day}: {exc}") from None


def _parse_date(value: object, name: str, key: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"holiday {name!r}: bad {key} {value!r}, expected YYYY-MM-DD")


def _parse_holidays(entries: Sequence[Mapping[str, object]]) -> frozenset[date]:
    spans: list[tuple[date, date, str]] = []
    for entry in entries:
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"holiday {dict(entry)!r} has no name")
        keys = set(entry) - {"name"}
        if keys == {"date"}:
            first = last = _parse_date(entry["date"], name, "date")
        elif keys == {"from", "to"}:
            first = _parse_date(entry["from"], name, "from")
            last = _parse_date(entry["to"], name, "to")
            if last < first:
                raise ValueError(f"holiday {name!r}: 'to' {last} is before 'from' {first}")
        else:
            raise ValueError(
                f"holiday {name!r} needs either 'date' or both 'from' and 'to', "
                f"got {', '.join(sorted(keys)) or 'neither'}"
            )
        spans.append((first, last, name))
    spans.sort()
    days: set[date] = set()
    reach: tuple[date, date, str] | None = None  # the span reaching furthest so far
    for span in spans:
        if reach is not None and span[0] <= reach[1]:
            raise ValueError(f"holidays {reach[2]!r} and {span[2]!r} overlap on {span[0]}")
        if reach is None or span[1] > reach[1]:
            reach = span
        days.update(span[0] + timedelta(days=i) for i in range((span[1] - span[0]).days + 1))
    return frozenset(days)
