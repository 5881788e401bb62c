"""SLA targets in business days: `1d` is one business day of the calendar, not 24 open hours."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.enums import Priority
from inbox_daemon.cases.sla import SlaPolicy, SlaTarget
from inbox_daemon.router.fields import parse_sla_target

BERLIN = ZoneInfo("Europe/Berlin")
WEEKDAYS = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
#: 09:00-17:00 on weekdays; Friday 12 June 2026 is a holiday.
OFFICE = BusinessCalendar.build(
    "Europe/Berlin", WEEKDAYS, holidays=[{"name": "Offsite", "date": "2026-06-12"}]
)
#: Long days with a lunch break, a short Friday.
SHOP = BusinessCalendar.build(
    "Europe/Berlin",
    {**{d: ["08:00-12:00", "13:00-18:00"] for d in ("mon", "tue", "wed", "thu")},
     "fri": ["08:00-16:00"]},
)  # fmt: skip


def at(day: int, hour: int, minute: int = 0, month: int = 6) -> datetime:
    """A wall time in Berlin, June 2026 (Monday the 8th, Friday the 12th a holiday)."""
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def days(calendar: BusinessCalendar, start: datetime, n: int) -> datetime:
    return calendar.add_business_days(start, n).astimezone(BERLIN)


@pytest.mark.parametrize(
    ("start", "n", "due"),
    [
        (at(8, 15), 1, at(9, 15)),  # mid-afternoon to mid-afternoon
        (at(8, 15), 2, at(10, 15)),
        (at(11, 15), 1, at(15, 15)),  # over the holiday (Fri 12) and the weekend
        (at(5, 15, 30), 1, at(8, 15, 30)),  # Friday to Monday
        (at(6, 10), 1, at(8, 17)),  # Saturday: the clock starts Monday 09:00, a day ends 17:00
        (at(8, 8), 1, at(8, 17)),  # before the opening: the same day's close
        (at(8, 9), 2, at(9, 17)),
        (at(8, 18), 1, at(9, 17)),  # after the close: the next opening starts it
        (at(8, 17), 1, at(9, 17)),  # at the close: a whole day has passed on Monday
        (at(8, 15), 0, at(8, 15)),
    ],
)
def test_a_business_day_keeps_the_point_of_the_day(start: datetime, n: int, due: datetime) -> None:
    assert days(OFFICE, start, n) == due


def test_lunch_breaks_and_a_shorter_next_day() -> None:
    assert days(SHOP, at(8, 12, 30), 1) == at(9, 12)  # 4 open hours in: the end of the morning
    assert days(SHOP, at(8, 14), 1) == at(9, 14)
    assert days(SHOP, at(11, 17, 30), 1) == at(12, 16)  # 8.5 h into Thursday; Friday has 8


def test_daylight_saving_time_keeps_the_wall_time() -> None:
    friday = datetime(2026, 3, 27, 15, 0, tzinfo=BERLIN)  # clocks go forward on Sunday 29th
    assert days(OFFICE, friday, 1) == datetime(2026, 3, 30, 15, 0, tzinfo=BERLIN)


def test_one_day_of_business_time_is_not_24_business_hours() -> None:
    policy = SlaPolicy(
        "standard", first_response={Priority.MEDIUM: parse_sla_target("1d")}, resolve_by={}
    )
    due = policy.due_dates(at(8, 15), Priority.MEDIUM, OFFICE).first_response_due
    assert due is not None
    assert due.astimezone(BERLIN) == at(9, 15)
    hours = SlaPolicy("h", first_response={Priority.MEDIUM: timedelta(hours=24)}, resolve_by={})
    due24 = hours.due_dates(at(8, 15), Priority.MEDIUM, OFFICE).first_response_due
    assert due24 is not None
    assert due24.astimezone(BERLIN) == at(11, 15)  # 24 open hours: three 8-hour days later


def test_days_then_hours_and_weeks_of_open_weekdays() -> None:
    one_day_four_hours = parse_sla_target("1d4h")
    assert one_day_four_hours == SlaTarget(days=1, time=timedelta(hours=4))
    due = one_day_four_hours.advance(at(8, 15), OFFICE, business_time=True)
    assert due.astimezone(BERLIN) == at(10, 11)  # Tue 15:00, then 2 h Tuesday and 2 h Wednesday
    week = parse_sla_target("1w")
    assert week.advance(at(1, 15), OFFICE, True).astimezone(BERLIN) == at(8, 15)
    # The week with the holiday needs a sixth day.
    assert week.advance(at(8, 15), OFFICE, True).astimezone(BERLIN) == at(16, 15)
    assert str(parse_sla_target("1w2d3h30m")) == "1w2d3h30m"


def test_around_the_clock_a_day_is_24_hours() -> None:
    target = parse_sla_target("1d")
    assert target.advance(at(6, 10), OFFICE, business_time=False).astimezone(BERLIN) == at(7, 10)
    policy = SlaPolicy("p", {Priority.HIGH: target}, {}, business_time=True)
    always = policy.due_dates(at(6, 10), Priority.HIGH, BusinessCalendar.always())
    assert always.first_response_due is not None
    assert always.first_response_due.astimezone(BERLIN) == at(7, 10)
