"""Business calendars and SLA due dates, against hand-computed instants.

Unless said otherwise the calendar is Europe/Berlin, Monday to Friday 09:00-12:00 and
13:00-17:00 (7 hours a day), closed on Friday 2026-06-12 and 2026-08-10..14. Berlin is UTC+2
in summer (CEST) and UTC+1 in winter (CET); expectations are written in UTC.
"""

from __future__ import annotations

import re
import time as clock
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.enums import Priority, Status
from inbox_daemon.cases.sla import (
    SlaDueDates,
    SlaPolicy,
    extend_for_pause,
    is_breached,
    pauses_from_history,
    recalculate,
    time_left,
)

BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
WORKDAYS = ("mon", "tue", "wed", "thu", "fri")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def office() -> BusinessCalendar:
    return BusinessCalendar.build(
        "Europe/Berlin",
        {day: ["09:00-12:00", "13:00-17:00"] for day in WORKDAYS},
        holidays=[
            {"name": "Company day", "date": "2026-06-12"},
            {"name": "Summer shutdown", "from": date(2026, 8, 10), "to": "2026-08-14"},
        ],
    )


CAL = office()


# -- business-time arithmetic ------------------------------------------------------------------


def test_within_a_day() -> None:
    assert CAL.add_business_time(berlin(2026, 6, 8, 9, 30), 2 * H) == utc(2026, 6, 8, 9, 30)


def test_across_lunch_break() -> None:
    # 10:30-12:00 (1.5 h) + 13:00-14:30
    assert CAL.add_business_time(berlin(2026, 6, 8, 10, 30), 3 * H) == utc(2026, 6, 8, 12, 30)


def test_ending_exactly_at_a_closing_is_the_closing() -> None:
    assert CAL.add_business_time(berlin(2026, 6, 8, 13), 4 * H) == utc(2026, 6, 8, 15)


def test_across_a_weekend() -> None:
    # Friday 16:00-17:00, then Monday 09:00-10:00
    assert CAL.add_business_time(berlin(2026, 6, 5, 16), 2 * H) == utc(2026, 6, 8, 8)


def test_across_a_holiday() -> None:
    # Thursday 16:00-17:00, Friday 12 June closed, Monday 09:00-10:00
    assert CAL.add_business_time(berlin(2026, 6, 11, 16), 2 * H) == utc(2026, 6, 15, 8)


def test_across_a_holiday_range() -> None:
    # Friday 7 Aug 16:00-17:00, shut 10-14 Aug, Monday 17 Aug 09:00-10:00
    assert CAL.add_business_time(berlin(2026, 8, 7, 16), 2 * H) == utc(2026, 8, 17, 8)
    assert not CAL.is_open(berlin(2026, 8, 12, 10))
    assert CAL.is_holiday(date(2026, 8, 14))
    assert not CAL.is_holiday(date(2026, 8, 15))


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (berlin(2026, 6, 6, 10), H, utc(2026, 6, 8, 8)),  # Saturday -> Monday 10:00
        (berlin(2026, 6, 8, 7), H / 2, utc(2026, 6, 8, 7, 30)),  # before opening -> 09:30
        (berlin(2026, 6, 8, 12, 30), H, utc(2026, 6, 8, 12)),  # lunch -> 14:00
        (berlin(2026, 6, 8, 17), H, utc(2026, 6, 9, 8)),  # at closing -> next day 10:00
        (berlin(2026, 6, 11, 18), H, utc(2026, 6, 15, 8)),  # evening before a holiday
    ],
)
def test_starting_in_closed_time(start: datetime, duration: timedelta, expected: datetime) -> None:
    assert CAL.add_business_time(start, duration) == expected


def test_zero_duration_is_the_start_and_negative_is_refused() -> None:
    assert CAL.add_business_time(berlin(2026, 6, 6, 10), timedelta(0)) == utc(2026, 6, 6, 8)
    with pytest.raises(ValueError, match="duration must not be negative"):
        CAL.add_business_time(berlin(2026, 6, 8, 10), -H)


def test_results_are_utc_whatever_the_input_zone() -> None:
    start = datetime(2026, 6, 8, 3, 30, tzinfo=ZoneInfo("America/New_York"))  # 09:30 Berlin
    result = CAL.add_business_time(start, 2 * H)
    assert result == utc(2026, 6, 8, 9, 30)
    assert result.tzinfo is UTC


def test_500_business_hours_exactly_and_quickly() -> None:
    # 71 days of 7 h + 3 h from Monday 1 June: June 21 days (147 h), July 23 (161 h),
    # August 16 (112 h) = 420 h; Sep 1-4, 7-11, 14, 15 = 77 h; then Wed 16 Sep 09:00-12:00.
    start = berlin(2026, 6, 1, 9)
    assert CAL.add_business_time(start, 500 * H) == utc(2026, 9, 16, 10)
    began = clock.perf_counter()
    for _ in range(20):
        office().add_business_time(start, 500 * H)  # fresh calendars: no warm cache
    assert (clock.perf_counter() - began) / 20 < 0.01


def test_business_time_between() -> None:
    assert CAL.business_time_between(berlin(2026, 6, 8, 9), berlin(2026, 6, 12, 17)) == 28 * H
    assert CAL.business_time_between(berlin(2026, 6, 5, 16), berlin(2026, 6, 8, 10)) == 2 * H
    assert CAL.business_time_between(berlin(2026, 6, 8, 11), berlin(2026, 6, 8, 13, 30)) == (
        1.5 * H
    )
    assert CAL.business_time_between(berlin(2026, 8, 1), berlin(2026, 9, 1)) == 16 * 7 * H
    assert CAL.business_time_between(berlin(2026, 6, 8, 12), berlin(2026, 6, 8, 10)) == (
        timedelta(0)
    )
    assert CAL.business_time_between(berlin(2026, 6, 6), berlin(2026, 6, 7)) == timedelta(0)


def test_is_open_and_next_open() -> None:
    assert CAL.is_open(berlin(2026, 6, 8, 9))
    assert CAL.is_open(berlin(2026, 6, 8, 16, 59, 59))
    assert not CAL.is_open(berlin(2026, 6, 8, 12))
    assert not CAL.is_open(berlin(2026, 6, 8, 17))
    assert not CAL.is_open(berlin(2026, 6, 12, 10))  # holiday
    assert CAL.next_open(berlin(2026, 6, 8, 10)) == utc(2026, 6, 8, 8)
    assert CAL.next_open(berlin(2026, 6, 8, 12)) == utc(2026, 6, 8, 11)
    assert CAL.next_open(berlin(2026, 6, 11, 17)) == utc(2026, 6, 15, 7)


def test_naive_datetimes_are_refused() -> None:
    naive = datetime(2026, 6, 8, 10)
    for call in (
        lambda: CAL.is_open(naive),
        lambda: CAL.next_open(naive),
        lambda: CAL.add_business_time(naive, H),
        lambda: CAL.business_time_between(naive, berlin(2026, 6, 9)),
        lambda: is_breached(naive, berlin(2026, 6, 9)),
    ):
        with pytest.raises(ValueError, match="must be timezone-aware"):
            call()


# -- DST (Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST, 2026-10-25 03:00 CEST -> 02:00 CET)


def sundays(*ranges: str) -> BusinessCalendar:
    return BusinessCalendar.build("Europe/Berlin", {"sun": list(ranges)})


def test_full_day_lasts_23_or_25_hours_over_a_switch() -> None:
    cal = sundays("00:00-24:00")
    spring, autumn = berlin(2026, 3, 29), berlin(2026, 10, 25)
    assert cal.business_time_between(spring, spring + timedelta(days=1)) == 23 * H
    assert cal.business_time_between(autumn, autumn + timedelta(days=1)) == 25 * H
    # Sunday 00:00 CET = Sat 23:00 UTC; 23 hours later is Monday 00:00 CEST.
    assert cal.add_business_time(berlin(2026, 3, 28, 12), 23 * H) == utc(2026, 3, 29, 22)
    assert cal.add_business_time(berlin(2026, 10, 24, 12), 25 * H) == utc(2026, 10, 25, 23)
    assert cal.add_business_time(berlin(2026, 10, 24, 12), 26 * H) == utc(2026, 11, 1, 0)


def test_office_hours_last_8_hours_on_a_switch_day() -> None:
    cal = sundays("09:00-17:00")
    assert cal.add_business_time(berlin(2026, 3, 29, 1), 8 * H) == utc(2026, 3, 29, 15)
    assert cal.add_business_time(berlin(2026, 10, 25, 1), 8 * H) == utc(2026, 10, 25, 16)


def test_range_containing_the_switch() -> None:
    cal = sundays("01:00-04:00")
    assert cal.day_intervals(date(2026, 3, 29)) == ((utc(2026, 3, 29, 0), utc(2026, 3, 29, 2)),)
    assert cal.day_intervals(date(2026, 10, 25)) == ((utc(2026, 10, 24, 23), utc(2026, 10, 25, 3)),)


def test_nonexistent_and_ambiguous_boundaries() -> None:
    cal = sundays("02:30-05:00")
    # 02:30 does not exist on 29 March: shifted by the gap to 03:30 CEST (01:30 UTC).
    assert cal.day_intervals(date(2026, 3, 29)) == ((utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 3)),)
    # 02:30 happens twice on 25 October: the first one (CEST, 00:30 UTC) counts.
    assert cal.day_intervals(date(2026, 10, 25)) == (
        (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 4)),
    )


def test_ranges_clamped_disjoint_when_a_boundary_is_shifted() -> None:
    # 02:30 -> 03:30 CEST overlaps 03:00-04:00: the second range starts where the first ends.
    cal = sundays("01:00-02:30", "03:00-04:00")
    assert cal.day_intervals(date(2026, 3, 29)) == (
        (utc(2026, 3, 29, 0), utc(2026, 3, 29, 1, 30)),
        (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2)),
    )


def test_office_week_across_spring_switch() -> None:
    # Friday 27 March 16:00 CET (15:00 UTC) + 2 h -> Monday 30 March 10:00 CEST
    assert CAL.add_business_time(berlin(2026, 3, 27, 16), 2 * H) == utc(2026, 3, 30, 8)
    assert CAL.business_time_between(berlin(2026, 3, 27, 9), berlin(2026, 3, 30, 17)) == 14 * H


# -- country holidays, year boundary, end of day ---------------------------------------------


def german_shop() -> BusinessCalendar:
    days = (*WORKDAYS, "sat")
    return BusinessCalendar.build("Europe/Berlin", {d: ["09:00-17:00"] for d in days}, country="de")


def test_country_holidays_close_the_day() -> None:
    cal = german_shop()
    assert cal.country == "DE"
    assert cal.is_holiday(date(2026, 12, 25))
    assert cal.is_holiday(date(2026, 12, 26))
    assert not cal.is_open(berlin(2026, 12, 26, 10))
    assert cal.is_open(berlin(2026, 12, 19, 10))
    # Thu 24 Dec 16:00-17:00, Fri 25 + Sat 26 holidays, Sun closed, Mon 28 09:00-10:00 CET
    assert cal.add_business_time(berlin(2026, 12, 24, 16), 2 * H) == utc(2026, 12, 28, 9)


def test_crossing_the_year_boundary_loads_the_next_year() -> None:
    cal = german_shop()
    # Thu 31 Dec 16:00-17:00, Fri 1 Jan 2027 New Year's Day, Sat 2 Jan 09:00-10:00 CET
    assert cal.add_business_time(berlin(2026, 12, 31, 16), 2 * H) == utc(2027, 1, 2, 9)
    assert cal.business_time_between(berlin(2026, 12, 31, 16), berlin(2027, 1, 4)) == 9 * H


def test_subdivision_holidays() -> None:
    cal = BusinessCalendar.build(
        "Europe/Berlin", {"wed": ["09:00-17:00"]}, country="DE", subdiv="BY"
    )
    assert cal.is_holiday(date(2027, 1, 6))  # Epiphany, Bavaria only
    assert not german_shop().is_holiday(date(2027, 1, 6))


@pytest.mark.parametrize("end", ["24:00", "00:00"])
def test_end_of_day_spellings(end: str) -> None:
    cal = BusinessCalendar.build("Europe/Berlin", {"mon": [f"22:00-{end}"]})
    assert cal.is_open(berlin(2026, 6, 8, 23, 59, 59))
    assert cal.business_time_between(berlin(2026, 6, 8), berlin(2026, 6, 9)) == 2 * H
    direct = BusinessCalendar(tz=BERLIN, hours={0: ((time(22), time(23, 59, 59, 999999)),)})
    assert direct.add_business_time(berlin(2026, 6, 8, 22), 2 * H) == utc(2026, 6, 8, 22)


def test_calendars_are_values() -> None:
    assert office() == office()
    assert hash(office()) == hash(office())
    assert office() != german_shop()


def test_adjacent_ranges_are_allowed() -> None:
    cal = BusinessCalendar.build("UTC", {"mon": ["09:00-12:00", "12:00-13:00"]})
    assert cal.add_business_time(utc(2026, 6, 8, 11), 2 * H) == utc(2026, 6, 8, 13)


def test_always_is_calendar_time() -> None:
    cal = BusinessCalendar.always()
    start = berlin(2026, 3, 28, 12)
    assert cal.is_open(start)
    assert cal.next_open(start) == utc(2026, 3, 28, 11)
    assert cal.add_business_time(start, 500 * H) == utc(2026, 3, 28, 11) + 500 * H
    assert cal.business_time_between(start, berlin(2026, 3, 30)) == 35 * H


def test_calendar_without_open_time() -> None:
    cal = BusinessCalendar.build("UTC", {})
    assert not cal.is_open(utc(2026, 6, 8, 10))
    assert cal.business_time_between(utc(2026, 1, 1), utc(2027, 1, 1)) == timedelta(0)
    with pytest.raises(ValueError, match="calendar has no open time"):
        cal.add_business_time(utc(2026, 6, 8), H)
    with pytest.raises(ValueError, match="calendar has no open time"):
        cal.next_open(utc(2026, 6, 8))


CALENDARS = [CAL, sundays("00:00-24:00"), sundays("01:00-02:30", "03:00-04:00"), german_shop()]


@settings(max_examples=300, deadline=None)
@given(
    cal=st.sampled_from(CALENDARS),
    offset=st.integers(0, 3 * 365 * 24 * 3600),
    seconds=st.integers(1, 3000 * 3600),
)
def test_business_time_between_inverts_add(
    cal: BusinessCalendar, offset: int, seconds: int
) -> None:
    start = cal.next_open(utc(2025, 1, 1) + timedelta(seconds=offset))
    assert cal.is_open(start)
    duration = timedelta(seconds=seconds)
    end = cal.add_business_time(start, duration)
    assert cal.business_time_between(start, end) == duration
    assert cal.business_time_between(start, end - timedelta(microseconds=1)) < duration


# -- build errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hours": {"funday": ["09:00-17:00"]}}, "unknown weekday 'funday'"),
        ({"hours": {"mon": ["17:00-09:00"]}}, "bad range 17:00-09:00 on mon: start must be before"),
        ({"hours": {"mon": ["09:00-09:00"]}}, "bad range 09:00-09:00 on mon"),
        ({"hours": {"tue": ["9am-5pm"]}}, "bad range '9am-5pm' on tue: bad time '9am'"),
        ({"hours": {"tue": ["09:00-25:00"]}}, "bad time '25:00': out of range"),
        ({"hours": {"tue": ["24:00-24:00"]}}, "bad time '24:00': out of range"),
        ({"hours": {"tue": "09:00-17:00"}}, "must be a list of ranges"),
        ({"hours": {"mon": ["09:00-17:00"], "Monday": []}}, "weekday mon is given twice"),
        (
            {"hours": {"wed": ["09:00-12:00", "11:00-13:00"]}},
            "overlapping ranges on wed: 09:00-12:00 and 11:00-13:00",
        ),
        (
            {"hours": {"wed": ["20:00-24:00", "21:00-22:00"]}},
            "overlapping ranges on wed: 20:00-24:00 and 21:00-22:00",
        ),
        ({"tz": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"tz": "../etc/passwd"}, "unknown time zone"),
        ({"country": "XX"}, "unknown country 'XX'"),
        ({"country": "DE", "subdiv": "ZZ"}, "unknown subdivision 'ZZ' of country 'DE'"),
        ({"subdiv": "BY"}, "subdivision 'BY' given without a country"),
        (
            {
                "holidays": [
                    {"name": "Shutdown", "from": "2026-12-21", "to": "2027-01-01"},
                    {"name": "New Year", "date": "2027-01-01"},
                ]
            },
            "holidays 'Shutdown' and 'New Year' overlap on 2027-01-01",
        ),
        (
            {
                "holidays": [
                    {"name": "A", "from": "2026-07-01", "to": "2026-07-31"},
                    {"name": "B", "date": "2026-07-03"},
                    {"name": "C", "from": "2026-07-20", "to": "2026-08-02"},
                ]
            },
            "holidays 'A' and 'B' overlap on 2026-07-03",
        ),
        (
            {"holidays": [{"name": "X", "from": "2026-07-05", "to": "2026-07-01"}]},
            "holiday 'X': 'to' 2026-07-01 is before 'from' 2026-07-05",
        ),
        ({"holidays": [{"date": "2026-07-01"}]}, "has no name"),
        ({"holidays": [{"name": "X", "date": "2026-07-01", "to": "2026-07-02"}]}, "needs either"),
        ({"holidays": [{"name": "X", "from": "2026-07-01"}]}, "needs either 'date' or both"),
        ({"holidays": [{"name": "X", "date": "1 July"}]}, "holiday 'X': bad date '1 July'"),
    ],
)
def test_build_errors(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"tz": "Europe/Berlin", "hours": {"mon": ["09:00-17:00"]}}
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        BusinessCalendar.build(**args)  # type: ignore[arg-type]


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ValueError, match="unknown weekday 7"):
        BusinessCalendar(tz=BERLIN, hours={7: ((time(9), time(17)),)})
    with pytest.raises(ValueError, match="overlapping ranges on fri: 09:00-12:00 and 11:00-24:00"):
        BusinessCalendar(tz=BERLIN, hours={4: ((time(11), time(0)), (time(9), time(12)))})
    with pytest.raises(ValueError, match="tz must be a ZoneInfo"):
        BusinessCalendar(tz=UTC, hours={})  # type: ignore[arg-type]


# -- SLA policies -------------------------------------------------------------------------------

POLICY = SlaPolicy(
    name="standard",
    first_response={Priority.HIGH: H, Priority.LOW: 8 * H},
    resolve_by={Priority.HIGH: 8 * H},
)
CALENDAR_POLICY = SlaPolicy(
    name="24x7",
    first_response=POLICY.first_response,
    resolve_by=POLICY.resolve_by,
    business_time=False,
)


def test_due_dates_in_business_time() -> None:
    # Friday 16:00 + 1 h = 17:00; + 8 h = Fri 16-17, Mon 9-12, 13-17 -> Monday 17:00
    assert POLICY.due_dates(berlin(2026, 6, 5, 16), Priority.HIGH, CAL) == SlaDueDates(
        first_response_due=utc(2026, 6, 5, 15), resolve_by_due=utc(2026, 6, 8, 15)
    )


def test_calendar_time_policy_ignores_the_calendar() -> None:
    assert CALENDAR_POLICY.due_dates(berlin(2026, 6, 5, 16), Priority.HIGH, CAL) == SlaDueDates(
        first_response_due=utc(2026, 6, 5, 15), resolve_by_due=utc(2026, 6, 5, 22)
    )


def test_missing_targets_give_none() -> None:
    assert POLICY.due_dates(berlin(2026, 6, 8, 9), Priority.LOW, CAL) == SlaDueDates(
        first_response_due=utc(2026, 6, 9, 8), resolve_by_due=None
    )
    assert POLICY.due_dates(berlin(2026, 6, 8, 9), Priority.MEDIUM, CAL) == SlaDueDates(None, None)


def test_policy_targets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="SLA 'bad': resolve_by target for low must be positive"):
        SlaPolicy("bad", {}, {Priority.LOW: timedelta(0)})


def test_pause_extension_in_business_time() -> None:
    # due Mon 15:00; paused 10:00-14:00 with 4 business hours left (10-12, 13-15):
    # resumes 14:00, 14-17 + Tue 9-10 -> Tuesday 10:00
    due = berlin(2026, 6, 8, 15)
    extended = extend_for_pause(due, berlin(2026, 6, 8, 10), berlin(2026, 6, 8, 14), CAL, True)
    assert extended == utc(2026, 6, 9, 8)
    # paused over the weekend: only Friday 16-17 was business time
    due = berlin(2026, 6, 8, 10)
    extended = extend_for_pause(due, berlin(2026, 6, 5, 16), berlin(2026, 6, 8, 9), CAL, True)
    assert extended == utc(2026, 6, 8, 9)


def test_pause_extension_in_calendar_time() -> None:
    due = berlin(2026, 6, 8, 15)
    extended = extend_for_pause(due, berlin(2026, 6, 8, 10), berlin(2026, 6, 8, 14), CAL, False)
    assert extended == utc(2026, 6, 8, 17)
    extended = extend_for_pause(due, berlin(2026, 6, 5, 16), berlin(2026, 6, 8, 9), CAL, False)
    assert extended == utc(2026, 6, 11, 6)  # Mon 15:00 CEST + 65 h = Thu 08:00 CEST


def test_pause_after_the_due_date_or_empty_does_not_move_it() -> None:
    due = berlin(2026, 6, 8, 15)
    for business in (True, False):
        after = extend_for_pause(due, berlin(2026, 6, 8, 16), berlin(2026, 6, 9, 9), CAL, business)
        assert after == utc(2026, 6, 8, 13)
        empty = extend_for_pause(due, berlin(2026, 6, 8, 10), berlin(2026, 6, 8, 10), CAL, business)
        assert empty == utc(2026, 6, 8, 13)
    with pytest.raises(ValueError, match=r"pause resumes at .* before it starts"):
        extend_for_pause(due, berlin(2026, 6, 8, 11), berlin(2026, 6, 8, 10), CAL, True)


def test_recalculate_on_priority_change() -> None:
    created = berlin(2026, 6, 8, 9)
    pauses = [
        (berlin(2026, 6, 9, 9), berlin(2026, 6, 9, 9, 30)),
        (berlin(2026, 6, 8, 9, 30), berlin(2026, 6, 8, 10, 30)),
    ]
    # HIGH: response due 10:00, paused at 09:30 with 30 min left -> 11:00 (the Tuesday pause is
    # after it). Resolve due Tue 10:00 (7 h Monday + 1 h), + 1 h + 30 min of pauses -> 11:30.
    assert recalculate(POLICY, created, Priority.HIGH, CAL, pauses) == SlaDueDates(
        first_response_due=utc(2026, 6, 8, 9), resolve_by_due=utc(2026, 6, 9, 9, 30)
    )
    # LOW: response due Tue 10:00, + 1 h + 30 min -> 11:30; no resolve target.
    assert recalculate(POLICY, created, Priority.LOW, CAL, pauses) == SlaDueDates(
        first_response_due=utc(2026, 6, 9, 9, 30), resolve_by_due=None
    )
    # Calendar time: response 10:00 + 1 h -> 11:00; resolve 17:00 + 1 h -> 18:00.
    assert recalculate(CALENDAR_POLICY, created, Priority.HIGH, CAL, pauses) == SlaDueDates(
        first_response_due=utc(2026, 6, 8, 9), resolve_by_due=utc(2026, 6, 8, 16)
    )


def test_recalculate_ignores_time_before_creation_and_refuses_overlaps() -> None:
    created = berlin(2026, 6, 8, 9)
    before = [(berlin(2026, 6, 5, 9), berlin(2026, 6, 8, 9, 30))]  # only 09:00-09:30 counts
    assert recalculate(POLICY, created, Priority.HIGH, CAL, before).first_response_due == utc(
        2026, 6, 8, 8, 30
    )
    overlapping = [
        (berlin(2026, 6, 8, 9, 30), berlin(2026, 6, 8, 11)),
        (berlin(2026, 6, 8, 10), berlin(2026, 6, 8, 12)),
    ]
    with pytest.raises(ValueError, match="paused intervals overlap"):
        recalculate(POLICY, created, Priority.HIGH, CAL, overlapping)


def test_paused_intervals_from_status_changes() -> None:
    t = [berlin(2026, 6, 8, h) for h in range(9, 16)]
    changes = [
        (t[0], Status.NEW),
        (t[1], Status.WAITING_FOR_RESPONSE),
        (t[2], Status.ON_HOLD),
        (t[3], Status.IN_PROGRESS),
        (t[4], Status.WAITING_FOR_RESPONSE),
    ]
    assert pauses_from_history(changes, now=t[6]) == [
        (utc(2026, 6, 8, 8), utc(2026, 6, 8, 10)),
        (utc(2026, 6, 8, 11), utc(2026, 6, 8, 13)),
    ]


def test_breach_and_time_left() -> None:
    due = berlin(2026, 6, 8, 10)
    assert not is_breached(due, due)
    assert is_breached(due, due + timedelta(microseconds=1))
    assert time_left(due, berlin(2026, 6, 5, 16), CAL, True) == 2 * H
    assert time_left(due, berlin(2026, 6, 5, 16), CAL, False) == 66 * H
    assert time_left(due, berlin(2026, 6, 8, 14), CAL, True) == -3 * H
    assert time_left(due, berlin(2026, 6, 8, 14), CAL, False) == -4 * H
    assert time_left(due, due, CAL, True) == timedelta(0)
