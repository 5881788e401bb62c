"""Commands for the activities agents log: ``cases task``, ``cases call``, ``cases activity
complete|cancel``."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, date, datetime, time

from inbox_daemon.cases.accounts import format_spent
from inbox_daemon.cases.enums import ActivityState
from inbox_daemon.cases.tasks import parse_spent
from inbox_daemon.cli.common import UsageError, _actor, _run, _with_service
from inbox_daemon.errors import CaseRuleError
from inbox_daemon.router.fields import parse_duration

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_due(text: str, now: datetime) -> datetime:
    """``--due``: a duration from now (``30m``, ``4h``, ``2d``, ``1w``) or an ISO 8601 time;
    a time without an offset is local time, a date alone the end of that day."""
    value = text.strip()
    try:
        return now + parse_duration(value)
    except ValueError:
        pass  # not a duration: a time
    try:
        if _DATE.match(value):
            when = datetime.combine(date.fromisoformat(value), time(23, 59, 59))
        else:
            when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--due {text!r} is neither a duration (30m, 4h, 2d) nor an ISO 8601 time"
            " like 2026-03-05T17:00+01:00 or 2026-03-05"
        ) from None
    when = when.astimezone() if when.tzinfo is None else when
    return when.astimezone(UTC)


def spent_of(args: argparse.Namespace) -> int | None:
    """``--spent``: the time an activity took, in minutes (None when not given)."""
    text = getattr(args, "spent", None)
    if text is None:
        return None
    try:
        return parse_spent(text)
    except CaseRuleError as exc:
        raise UsageError(f"--spent: {exc}") from None


def took(minutes: int | None) -> str:
    """``, 45m spent`` after a command's line, when time was recorded."""
    return f", {format_spent(minutes)} spent" if minutes else ""


def cmd_cases_task(args: argparse.Namespace) -> int:
    due = parse_due(args.due, datetime.now(UTC)) if args.due is not None else None
    spent = spent_of(args)
    activity = _run(
        _with_service(
            args,
            lambda svc: svc.add_task(
                args.number,
                args.subject,
                _actor(args, svc),
                due=due,
                assignee=args.assign,
                spent_minutes=spent,
            ),
        )
    )
    print(f"{args.number.upper()}: task #{activity.id} open{took(spent)}")
    return 0


def cmd_cases_call(args: argparse.Namespace) -> int:
    spent = spent_of(args)
    activity = _run(
        _with_service(
            args,
            lambda svc: svc.log_call(
                args.number, args.direction, args.text, _actor(args, svc), spent_minutes=spent
            ),
        )
    )
    print(f"{args.number.upper()}: call #{activity.id} logged ({activity.direction}){took(spent)}")
    return 0


def cmd_cases_activity(args: argparse.Namespace) -> int:
    state = ActivityState.COMPLETED if args.verb == "complete" else ActivityState.CANCELLED
    spent = spent_of(args)
    activity = _run(
        _with_service(
            args,
            lambda svc: svc.settle_activity(
                args.number, args.id, state, _actor(args, svc), spent_minutes=spent
            ),
        )
    )
    print(f"{args.number.upper()}: activity #{activity.id} {activity.state}{took(spent)}")
    return 0


__all__ = [
    "cmd_cases_activity",
    "cmd_cases_call",
    "cmd_cases_task",
    "parse_due",
    "spent_of",
    "took",
]
