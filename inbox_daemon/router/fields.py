"""The field types of rules.yaml, each with its own error message.

Owns parsing and checking of the values inside the file: durations (``1h30m``), time ranges
(``09:00-17:00``), weekdays, enum choices (priority, status, strategy, channel) with
did-you-mean, regexes and their flags, non-empty strings, and the "a single string is a list
of one" shorthand. Errors are raised as pydantic custom errors whose message is final (see
:func:`inbox_daemon.router.validate.translate`).
"""

from __future__ import annotations

import datetime as dt
import difflib
import enum
import functools
import itertools
import re
import zoneinfo
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import holidays as holidays_lib
from pydantic import AfterValidator, BeforeValidator, PlainValidator, ValidationInfo
from pydantic_core import PydanticCustomError

from inbox_daemon.cases.accounts import EntitlementState, Period
from inbox_daemon.cases.calendar import WEEKDAYS
from inbox_daemon.cases.directory import AssignmentStrategy
from inbox_daemon.cases.enums import AutomaticMail, Priority, Status
from inbox_daemon.cases.sla import SlaTarget
from inbox_daemon.kinds import kinds

__all__ = [
    "AutomaticMailChoice",
    "ChannelList",
    "Country",
    "DayHours",
    "Duration",
    "EntitlementChoice",
    "PeriodChoice",
    "PriorityChoice",
    "PriorityList",
    "SlaDuration",
    "StatusChoice",
    "StrategyChoice",
    "Text",
    "TextList",
    "TimeZone",
    "WeekdayKey",
    "check_flags",
    "check_regex",
    "describe",
    "did_you_mean",
    "fail",
    "listify",
    "non_empty_list",
    "parse_duration",
    "parse_sla_target",
    "parse_time_range",
    "regex_flags",
    "supported_countries",
]


def did_you_mean(name: object, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    if not isinstance(name, str):
        return ""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def fail(message: str) -> PydanticCustomError:
    # The message goes through the context so that braces in user text are not a template.
    return PydanticCustomError("rules", "{detail}", {"detail": message})


# -- field types ---------------------------------------------------------------------------

E = TypeVar("E", bound=enum.Enum)


def _choice(enum_cls: type[E], what: str) -> Callable[[object], object]:
    values = [str(member.value) for member in enum_cls]

    def check(value: object) -> object:
        if isinstance(value, enum_cls) or (isinstance(value, str) and value in values):
            return value
        hint = did_you_mean(value, values)
        raise fail(f"unknown {what} {value!r}{hint}; expected one of: {', '.join(values)}")

    return check


def listify(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise fail("expected a non-empty string")
    return value


def non_empty_list(value: list[Any]) -> list[Any]:
    if not value:
        raise fail("expected at least one entry")
    return value


Text = Annotated[str, AfterValidator(_non_empty)]
PriorityChoice = Annotated[Priority, BeforeValidator(_choice(Priority, "priority"))]
StatusChoice = Annotated[Status, BeforeValidator(_choice(Status, "status"))]
AutomaticMailChoice = Annotated[
    AutomaticMail, BeforeValidator(_choice(AutomaticMail, "automatic_mail policy"))
]
PeriodChoice = Annotated[Period, BeforeValidator(_choice(Period, "allowance period"))]
EntitlementChoice = Annotated[
    EntitlementState, BeforeValidator(_choice(EntitlementState, "entitlement state"))
]
StrategyChoice = Annotated[
    AssignmentStrategy, BeforeValidator(_choice(AssignmentStrategy, "strategy"))
]


def _channel_kind(value: object) -> object:
    """A registered channel kind's name (:mod:`inbox_daemon.kinds`, which knows them all)."""
    names = sorted(spec.name for spec in kinds())
    if isinstance(value, str) and value in names:
        return value
    hint = did_you_mean(value, names)
    raise fail(f"unknown channel {value!r}{hint}; expected one of: {', '.join(names)}")


ChannelChoice = Annotated[str, BeforeValidator(_channel_kind)]
TextList = Annotated[list[Text], BeforeValidator(listify), AfterValidator(non_empty_list)]
PriorityList = Annotated[
    list[PriorityChoice], BeforeValidator(listify), AfterValidator(non_empty_list)
]
ChannelList = Annotated[
    list[ChannelChoice], BeforeValidator(listify), AfterValidator(non_empty_list)
]

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_DURATION_HELP = "expected a duration such as '4h', '30m', '2d' or '1h30m'"


def parse_duration(value: object) -> dt.timedelta:
    """``"1h30m"`` → 90 minutes. Units w, d, h, m, s in that order; the total must be positive."""
    if isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str):
        raise fail(f"{_DURATION_HELP}, got {describe(value)}")
    text = value.replace(" ", "").lower()
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise fail(f"bad duration {value!r}: {_DURATION_HELP}")
    w, d, h, m, s = (int(part or 0) for part in match.groups())
    total = dt.timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=s)
    if total <= dt.timedelta(0):
        raise fail(f"bad duration {value!r}: must be longer than zero")
    return total


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]


def parse_sla_target(value: object) -> SlaTarget:
    """``"1d4h"`` → one (business) day and four hours, kept apart: in business time a day is
    a business day of the calendar, not 24 open hours (:class:`SlaTarget`)."""
    if isinstance(value, SlaTarget):
        return value
    total = parse_duration(value)  # the checks and their messages
    assert isinstance(value, str)
    match = _DURATION.fullmatch(value.replace(" ", "").lower())
    assert match is not None
    w, d, h, m, s = (int(part or 0) for part in match.groups())
    target = SlaTarget(weeks=w, days=d, time=dt.timedelta(hours=h, minutes=m, seconds=s))
    assert target.nominal == total
    return target


SlaDuration = Annotated[SlaTarget, PlainValidator(parse_sla_target)]

_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_RANGE_HELP = "expected 'HH:MM-HH:MM' with the start before the end (an end of 24:00 is midnight)"


def parse_time_range(value: object) -> tuple[dt.time, dt.time | None]:
    """``"09:00-17:00"`` → (09:00, 17:00); an end of 24:00 or 00:00 gives None (end of day)."""
    if not isinstance(value, str) or value.count("-") != 1:
        raise fail(f"bad time range {value!r}: {_RANGE_HELP}")
    first, second = (part.strip() for part in value.split("-"))
    a, b = _CLOCK.fullmatch(first), _CLOCK.fullmatch(second)
    if a is None or b is None:
        raise fail(f"bad time range {value!r}: {_RANGE_HELP}")
    sh, sm, eh, em = int(a[1]), int(a[2]), int(b[1]), int(b[2])
    if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
        raise fail(f"bad time range {value!r}: hours go to 23 and minutes to 59")
    start = dt.time(sh, sm)
    end = None if (eh, em) in ((24, 0), (0, 0)) else dt.time(eh, em)
    if end is not None and end <= start:
        raise fail(f"bad time range {value!r}: the start must be before the end")
    return start, end


def _check_range(value: object) -> str:
    parse_time_range(value)
    assert isinstance(value, str)
    return value.strip()


def _check_day(ranges: list[str]) -> list[str]:
    spans = sorted(((parse_time_range(r), r) for r in ranges), key=lambda s: s[0][0])
    for (first, text1), (second, text2) in itertools.pairwise(spans):
        if first[1] is None or second[0] < first[1]:
            raise fail(f"time ranges {text1!r} and {text2!r} overlap")
    return ranges


TimeRange = Annotated[str, BeforeValidator(_check_range)]
DayHours = Annotated[list[TimeRange], BeforeValidator(listify), AfterValidator(_check_day)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
assert WEEKDAYS == ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _check_weekday(value: object) -> object:
    if isinstance(value, str) and value in WEEKDAYS:
        return value
    hint = did_you_mean(value, WEEKDAYS)
    raise fail(f"unknown weekday {value!r}{hint}; expected one of: {', '.join(WEEKDAYS)}")


WeekdayKey = Annotated[Weekday, BeforeValidator(_check_weekday)]

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "a": re.ASCII}


def regex_flags(flags: str | None) -> int:
    """The ``re`` flags of a ``flags:`` value such as ``"im"``."""
    out = 0
    for letter in flags or "":
        out |= _FLAGS[letter]
    return out


def check_flags(value: str | None) -> str | None:
    if value is not None:
        bad = sorted(set(value) - set(_FLAGS))
        if bad:
            raise fail(f"unknown regex flag {bad[0]!r}; expected letters from {''.join(_FLAGS)!r}")
    return value


def check_regex(value: str, info: ValidationInfo) -> str:
    flags = info.data.get("flags")
    try:
        re.compile(value, regex_flags(flags if isinstance(flags, str) else None))
    except re.error as exc:
        where = f" at position {exc.pos}" if exc.pos is not None else ""
        raise fail(f"bad regex {value!r}: {exc.msg}{where}") from None
    return value


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _check_timezone(value: str) -> str:
    if value not in _zones():
        raise fail(f"unknown time zone {value!r}{did_you_mean(value, sorted(_zones()))}")
    return value


def supported_countries() -> dict[str, list[str]]:
    """Country codes the ``holidays`` package knows, with their subdivision codes."""
    countries: dict[str, list[str]] = holidays_lib.list_supported_countries()
    return countries


def _check_country(value: str) -> str:
    countries = supported_countries()
    if value.strip().upper() not in countries:
        hint = did_you_mean(value.strip().upper(), sorted(countries))
        raise fail(f"unknown country {value!r}{hint}; expected an ISO 3166 code such as 'DE'")
    return value


TimeZone = Annotated[str, AfterValidator(_check_timezone)]
Country = Annotated[str, AfterValidator(_check_country)]


def describe(value: object) -> str:
    """A short description of a value for messages: ``'text'``, ``42``, ``a list``."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return repr(value)
