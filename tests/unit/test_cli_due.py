"""``--due`` of ``cases task``: a duration from now or an ISO 8601 time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from inbox_daemon.cli.activities import parse_due
from inbox_daemon.cli.common import UsageError

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_durations_count_from_now() -> None:
    assert parse_due("4h", NOW) == NOW + timedelta(hours=4)
    assert parse_due("1d12h", NOW) == NOW + timedelta(days=1, hours=12)


def test_times_with_an_offset_are_kept_and_given_in_utc() -> None:
    assert parse_due("2026-03-05T17:00+01:00", NOW) == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)


def test_local_times_and_dates(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert parse_due("2026-03-05T17:00", NOW) == datetime(2026, 3, 5, 16, 0, tzinfo=UTC)
        assert parse_due("2026-03-05", NOW) == datetime(2026, 3, 5, 22, 59, 59, tzinfo=UTC)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("bad", ["", "soon", "0h", "2026-13-01"])
def test_anything_else_is_refused(bad: str) -> None:
    with pytest.raises(UsageError, match="neither a duration"):
        parse_due(bad, NOW)
