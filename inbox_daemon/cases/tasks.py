"""The activities agents log (tasks and phone calls) and the diagnostic task: pure rules.

A task or a call is an activity on an open case; a task stays open until it is completed or
cancelled, and only an open one can be. The diagnostic task follows the seeds (Creatio, "Diagnose
and resolve an incident"): when a case becomes active with an assignee, a task is opened for
them; when the case moves on, the task is closed with a result that says why. The lifecycle
asks for both as effects (:class:`OpenDiagnostic`, :class:`CloseDiagnostic`); the case service
writes them. Nothing here does I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from inbox_daemon.cases.enums import ActivityKind, ActivityState, Direction, Status
from inbox_daemon.cases.model import Case
from inbox_daemon.errors import CaseRuleError

S = Status

#: The subject of the diagnostic task.
DIAGNOSTIC_SUBJECT = "Diagnose and resolve the case"
#: The results a diagnostic task is closed with (Creatio's words).
SOLUTION_FOUND = "Solution found"
CANCELLED = "Cancelled"
INFORMATION_REQUIRED = "Additional information required"
ESCALATION_REQUIRED = "Escalation required"

#: Statuses in which the case's assignee works it, and a diagnostic task is kept open. The seeds
#: name New, In progress and Reopened, and a case escalated to an agent (so Escalated too).
ACTIVE = frozenset({S.NEW, S.IN_PROGRESS, S.REOPENED, S.ESCALATED})

#: ``--direction in|out`` of a logged phone call.
CALL_DIRECTIONS = {"in": Direction.INCOMING, "out": Direction.OUTGOING}


@dataclass(frozen=True, slots=True)
class LoggedActivity:
    """What the rules need to know of an activity that may be settled."""

    id: int
    kind: ActivityKind
    state: ActivityState
    assignee: str | None = None
    #: The diagnostic task the case service opened (not one an agent added).
    diagnostic: bool = False


@dataclass(frozen=True, slots=True)
class OpenDiagnostic:
    """Open the diagnostic task for ``assignee``."""

    assignee: str


@dataclass(frozen=True, slots=True)
class CloseDiagnostic:
    """Settle the diagnostic task ``activity_id`` as ``state``, with ``result``."""

    activity_id: int
    state: ActivityState
    result: str


def require_subject(subject: str, what: str = "a task") -> str:
    """The subject of a task or the text of a call, stripped; CaseRuleError when empty."""
    text = subject.strip()
    if not text:
        raise CaseRuleError(f"{what} needs some text saying what it is about")
    return text


_SPENT = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+)m)?")
#: The most one activity may record: a day's work (more is a typo, or several activities).
MOST_SPENT = 24 * 60


def parse_spent(text: str) -> int:
    """The time an activity took, as agents write it (``45m``, ``2h``, ``1h30m``, ``1.5h``),
    in whole minutes; CaseRuleError saying how to write it otherwise."""
    value = text.replace(" ", "").lower()
    match = _SPENT.fullmatch(value)
    if not value or match is None or not any(match.groups()):
        raise CaseRuleError(f"time spent {text!r} is not a time like 45m, 2h, 1h30m or 1.5h")
    hours, minutes = match.groups()
    total = round(float(hours or 0) * 60) + int(minutes or 0)
    if total < 1:
        raise CaseRuleError(f"time spent {text!r} is less than a minute")
    if total > MOST_SPENT:
        raise CaseRuleError(
            f"time spent {text!r} is more than 24h for one activity: log it as several"
        )
    return total


def call_direction(value: str) -> Direction:
    """``in`` or ``out`` as the direction of a phone call."""
    try:
        return CALL_DIRECTIONS[value.strip().lower()]
    except KeyError:
        raise CaseRuleError(f"a call's direction is 'in' or 'out', not {value!r}") from None


def check_settle(number: str, activity: LoggedActivity, to: ActivityState) -> None:
    """Raise CaseRuleError unless ``activity`` is open and ``to`` settles it."""
    if to is ActivityState.OPEN:
        raise CaseRuleError("an activity is settled as completed or cancelled")
    if activity.state is not ActivityState.OPEN:
        raise CaseRuleError(
            f"activity #{activity.id} of {number} is already {activity.state.value}:"
            " only an open activity can be completed or cancelled"
        )


def diagnostic_of(activities: tuple[LoggedActivity, ...]) -> LoggedActivity | None:
    """The open diagnostic task among a case's open activities, if there is one."""
    return next((a for a in activities if a.diagnostic and a.state is ActivityState.OPEN), None)


def diagnostic_effects(
    before: Case | None, after: Case, task: LoggedActivity | None
) -> tuple[OpenDiagnostic | CloseDiagnostic, ...]:
    """What a change from ``before`` (None: a new case) to ``after`` does to the diagnostic task
    (``task``: the open one, if any): close it with a result, open one, or both (the case was
    given to someone else)."""
    effects: list[OpenDiagnostic | CloseDiagnostic] = []
    if task is not None:
        closing = _closing(after, task)
        if closing is not None:
            effects.append(CloseDiagnostic(task.id, *closing))
            task = None
    if task is None and after.owner_user and _becomes_active(before, after):
        effects.append(OpenDiagnostic(after.owner_user))
    return tuple(effects)


def _closing(after: Case, task: LoggedActivity) -> tuple[ActivityState, str] | None:
    if after.status in (S.RESOLVED, S.CLOSED):
        return ActivityState.COMPLETED, SOLUTION_FOUND
    if after.status is S.CANCELLED:
        return ActivityState.CANCELLED, CANCELLED
    if after.status is S.WAITING_FOR_RESPONSE:
        return ActivityState.COMPLETED, INFORMATION_REQUIRED
    if after.owner_user != task.assignee:  # given to someone else, or back to the queue
        return ActivityState.COMPLETED, ESCALATION_REQUIRED
    return None


def _becomes_active(before: Case | None, after: Case) -> bool:
    if after.status not in ACTIVE:
        return False
    if before is None:
        return True
    return before.status not in ACTIVE or before.owner_user != after.owner_user


__all__ = [
    "ACTIVE",
    "CANCELLED",
    "DIAGNOSTIC_SUBJECT",
    "ESCALATION_REQUIRED",
    "INFORMATION_REQUIRED",
    "SOLUTION_FOUND",
    "CloseDiagnostic",
    "LoggedActivity",
    "OpenDiagnostic",
    "call_direction",
    "check_settle",
    "diagnostic_effects",
    "diagnostic_of",
    "require_subject",
]
