"""The status machine of a case: ``apply(case, event, context) -> Outcome``.

Every change to a case is an event. :func:`apply` checks it against the transition table and the
read-only rule, and returns the new snapshot, the audited field changes and the effects the case
service must carry out (cancel open activities, open a follow-up case, notify someone). It does
no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeAlias

from inbox_daemon.cases import tasks
from inbox_daemon.cases.enums import FINAL, PAUSED, ActivityState, Priority, Status
from inbox_daemon.cases.model import EDITABLE_FIELDS, Case, FieldChange, diff
from inbox_daemon.cases.tasks import CloseDiagnostic, LoggedActivity, OpenDiagnostic
from inbox_daemon.errors import (
    CaseRuleError,
    OpenActivitiesError,
    PickedByOther,
    ReadOnlyCaseError,
    TransitionError,
)

S = Status
#: Statuses in which agents work the case (not paused, not resolved).
WORKING = frozenset({S.NEW, S.IN_PROGRESS, S.ESCALATED, S.REOPENED})

#: Every legal (from, to) status change. Anything else raises TransitionError.
TRANSITIONS: Mapping[Status, frozenset[Status]] = {
    S.NEW: frozenset({S.IN_PROGRESS, S.WAITING_FOR_RESPONSE, S.ON_HOLD, S.ESCALATED, S.RESOLVED,
                      S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.WAITING_FOR_RESPONSE, S.ON_HOLD, S.ESCALATED, S.RESOLVED,
                              S.CANCELLED}),
    S.WAITING_FOR_RESPONSE: frozenset({S.IN_PROGRESS, S.ON_HOLD, S.ESCALATED, S.RESOLVED,
                                       S.CANCELLED, S.REOPENED}),
    S.ON_HOLD: frozenset({S.IN_PROGRESS, S.WAITING_FOR_RESPONSE, S.ESCALATED, S.RESOLVED,
                          S.CANCELLED, S.REOPENED}),
    S.ESCALATED: frozenset({S.IN_PROGRESS, S.WAITING_FOR_RESPONSE, S.ON_HOLD, S.RESOLVED,
                            S.CANCELLED}),
    S.REOPENED: frozenset({S.IN_PROGRESS, S.WAITING_FOR_RESPONSE, S.ON_HOLD, S.ESCALATED,
                           S.RESOLVED, S.CANCELLED}),
    S.RESOLVED: frozenset({S.CLOSED, S.REOPENED, S.IN_PROGRESS}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}  # fmt: skip

DEFAULT_AUTO_CLOSE_AFTER = timedelta(days=7)


def can_transition(from_status: Status, to_status: Status) -> bool:
    return to_status in TRANSITIONS[from_status]


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit:
    """Change plain fields (title, priority, category...) of an open case."""

    changes: Mapping[str, Any]
    action = "edit"


@dataclass(frozen=True, slots=True)
class SetStatus:
    """Move to a working or paused status (In progress, Waiting for response, On hold)."""

    status: Status
    action = "status"


@dataclass(frozen=True, slots=True)
class Assign:
    """Give the case to a user, a team and/or a queue."""

    user: str | None = None
    team: str | None = None
    queue: str | None = None
    action = "assign"


@dataclass(frozen=True, slots=True)
class Pick:
    """An agent takes the case from its queue: worked by and owned by them. A case someone
    else is working is taken over only with ``force`` (and they are told)."""

    user: str
    force: bool = False
    action = "pick"


@dataclass(frozen=True, slots=True)
class Release:
    """The agent puts the case back in its queue."""

    action = "release"


@dataclass(frozen=True, slots=True)
class Escalate:
    """Raise the support level (to ``level``, else the next); optionally give the case a new
    owner or queue. Which levels exist is the directory's business: the service checks it."""

    user: str | None = None
    team: str | None = None
    queue: str | None = None
    level: int | None = None
    action = "escalate"


OpenActivityPolicy: TypeAlias = Literal["fail", "cancel", "complete"]


@dataclass(frozen=True, slots=True)
class Resolve:
    resolution: str
    open_activities: OpenActivityPolicy = "fail"
    action = "resolve"


@dataclass(frozen=True, slots=True)
class Reactivate:
    """Bring a resolved case back to work; it needs a new resolve."""

    action = "reactivate"


@dataclass(frozen=True, slots=True)
class Close:
    """Make a resolved case final (the auto-close job, or an agent)."""

    action = "close"


@dataclass(frozen=True, slots=True)
class Link:
    """Make ``parent`` the case's parent case (the service checks it exists, without a loop)."""

    parent: str
    action = "link"


@dataclass(frozen=True, slots=True)
class Unlink:
    """The case has no parent any more."""

    action = "unlink"


@dataclass(frozen=True, slots=True)
class MergeInto:
    """Close the case as merged into ``target`` (an open case the service moves its activities
    to): final, with a pointer, whatever open status it was in."""

    target: str
    action = "merge"


@dataclass(frozen=True, slots=True)
class Cancel:
    reason: str = ""
    action = "cancel"


@dataclass(frozen=True, slots=True)
class CustomerReplied:
    """A new message from the customer on this case.

    ``reopen_window``: a reply to a case resolved longer ago than this opens a follow-up case.
    """

    reopen_window: timedelta | None = None
    action = "customer_replied"


@dataclass(frozen=True, slots=True)
class AgentReplied:
    """An agent answered the customer, or wrote an internal note (``internal``)."""

    internal: bool = False
    action = "agent_replied"


Event: TypeAlias = (
    Edit
    | SetStatus
    | Assign
    | Pick
    | Release
    | Escalate
    | Resolve
    | Reactivate
    | Close
    | Cancel
    | Link
    | Unlink
    | MergeInto
    | CustomerReplied
    | AgentReplied
)


# --- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettleActivities:
    """Set these open activities to ``state`` (cancelled or completed)."""

    activity_ids: tuple[int, ...]
    state: ActivityState


@dataclass(frozen=True, slots=True)
class OpenFollowUp:
    """The case is final: the customer's message opens a new case with this one as parent."""

    parent_number: str


@dataclass(frozen=True, slots=True)
class Resumed:
    """The case left a paused status: the SLA clock runs again (push due dates by the pause)."""

    paused_from: datetime
    resumed_at: datetime


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell an agent or a team that something happened to the case."""

    user: str | None
    team: str | None
    reason: str


Effect: TypeAlias = (
    SettleActivities | OpenFollowUp | Resumed | Notify | OpenDiagnostic | CloseDiagnostic
)


def needs_open_activities(event: Event) -> bool:
    """Whether applying ``event`` looks at the case's open activities (see :class:`Context`);
    the caller need not look them up for any other."""
    return isinstance(event, (Resolve, Cancel))


@dataclass(frozen=True, slots=True)
class Context:
    """What ``apply`` needs to know besides the case."""

    now: datetime
    #: Ids of the case's activities that are still open (tasks...), the diagnostic task left
    #: out: resolving or cancelling the case closes that one with its own result.
    open_activities: tuple[int, ...] = ()
    #: Whether the diagnostic task is kept (``[cases] diagnostic_tasks``), and the open one.
    diagnostics: bool = False
    diagnostic: LoggedActivity | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    case: Case
    changes: list[FieldChange]
    effects: tuple[Effect, ...] = ()
    action: str = ""

    @property
    def changed(self) -> bool:
        return bool(self.changes)


# --- the machine -------------------------------------------------------------------------------


def require_editable(case: Case, action: str) -> None:
    """Raise ReadOnlyCaseError if the case is resolved, closed or cancelled."""
    if case.status is S.RESOLVED:
        raise ReadOnlyCaseError(
            f"case {case.number} is resolved and read-only: reactivate it before '{action}'"
        )
    if case.status in FINAL:
        raise ReadOnlyCaseError(
            f"case {case.number} is {case.status.label.lower()} and can no longer change"
            f" ('{action}' refused)"
        )


@dataclass(slots=True)
class _Step:
    case: Case
    ctx: Context
    effects: list[Effect] = field(default_factory=list)

    def move(self, to: Status, detail: str = "") -> None:
        case = self.case
        if not can_transition(case.status, to):
            raise TransitionError(case.status.label, to.label, detail)
        now = self.ctx.now
        updates: dict[str, Any] = {"status": to}
        if case.status in PAUSED and to not in PAUSED:
            if case.paused_at is not None:
                self.effects.append(Resumed(case.paused_at, now))
            updates["paused_at"] = None
        if to in PAUSED and case.status not in PAUSED:
            updates["paused_at"] = now
        if to is S.RESOLVED:
            updates["resolved_at"] = now
        if case.status is S.RESOLVED and to is not S.CLOSED:
            updates["resolved_at"] = None
            updates["resolution"] = None
        if to in FINAL:
            updates["closed_at"] = now
        self.case = replace(case, **updates)

    def update(self, **changes: Any) -> None:
        self.case = replace(self.case, **changes)


def _edit(step: _Step, event: Edit) -> None:
    require_editable(step.case, "edit")
    unknown = set(event.changes) - EDITABLE_FIELDS
    if unknown:
        raise CaseRuleError(
            f"cannot edit {', '.join(sorted(unknown))}: editable fields are "
            f"{', '.join(sorted(EDITABLE_FIELDS))}"
        )
    changes = dict(event.changes)
    if "priority" in changes:
        changes["priority"] = Priority(changes["priority"])
    if "title" in changes and not str(changes["title"]).strip():
        raise CaseRuleError("a case needs a title")
    before = step.case
    step.update(**changes)
    if step.case == before:
        raise CaseRuleError(f"nothing changes: case {before.number} has those values already")


def _set_status(step: _Step, event: SetStatus) -> None:
    allowed = {S.IN_PROGRESS, S.WAITING_FOR_RESPONSE, S.ON_HOLD}
    if event.status not in allowed:
        raise CaseRuleError(
            f"use resolve, cancel, escalate or reactivate to set status {event.status.label}"
        )
    require_editable(step.case, "status")
    if event.status is not step.case.status:
        step.move(event.status)


def _assign(step: _Step, event: Assign) -> None:
    require_editable(step.case, "assign")
    if event.user is None and event.team is None and event.queue is None:
        raise CaseRuleError("assign needs a user, a team or a queue")
    if event.queue is not None:
        step.update(queue=event.queue, worked_by=None)
    if event.team is not None:
        step.update(owner_team=event.team, owner_user=None)
    if event.user is not None:
        step.update(owner_user=event.user)
    step.effects.append(Notify(event.user, event.team if event.user is None else None, "assigned"))


def _pick(step: _Step, event: Pick) -> None:
    case = step.case
    require_editable(case, "pick")
    previous = case.worked_by
    if previous is not None and previous != event.user:
        if not event.force:
            raise PickedByOther(
                f"{case.number} is being worked by {previous}: pick it with --force to take it"
                f" over ({previous} is told)",
                previous,
            )
        step.effects.append(Notify(previous, None, "taken over"))
    step.update(worked_by=event.user, owner_user=event.user)
    if step.case.status in {S.NEW, S.REOPENED}:
        step.move(S.IN_PROGRESS)


def _release(step: _Step, event: Release) -> None:
    require_editable(step.case, "release")
    if step.case.worked_by is None and step.case.owner_user is None:
        raise CaseRuleError(f"case {step.case.number} is not being worked by anyone")
    step.update(worked_by=None, owner_user=None)


def _escalate(step: _Step, event: Escalate) -> None:
    require_editable(step.case, "escalate")
    if step.case.status is not S.ESCALATED:
        step.move(S.ESCALATED)
    level = event.level if event.level is not None else step.case.support_level + 1
    if level <= step.case.support_level:
        raise CaseRuleError(
            f"case {step.case.number} is at support level {step.case.support_level} already:"
            " escalate goes up a level (assign moves a case without escalating it)"
        )
    step.update(support_level=level)
    if event.queue is not None:
        step.update(queue=event.queue, worked_by=None)
    if event.team is not None:
        step.update(owner_team=event.team, owner_user=None, worked_by=None)
    if event.user is not None:
        step.update(owner_user=event.user, worked_by=None)
    step.effects.append(Notify(event.user, event.team, "escalated"))


def _resolve(step: _Step, event: Resolve) -> None:
    case = step.case
    if case.status in FINAL or case.status is S.RESOLVED:
        raise TransitionError(case.status.label, S.RESOLVED.label)
    if not event.resolution.strip():
        raise CaseRuleError("a resolution is needed to resolve a case")
    open_ids = step.ctx.open_activities
    if open_ids:
        if event.open_activities == "fail":
            raise OpenActivitiesError(
                f"case {case.number} has {len(open_ids)} open activit"
                f"{'y' if len(open_ids) == 1 else 'ies'}: complete or cancel them first"
                " (or resolve with --complete-open-activities or --cancel-open-activities)",
                len(open_ids),
            )
        state = (
            ActivityState.CANCELLED
            if event.open_activities == "cancel"
            else ActivityState.COMPLETED
        )
        step.effects.append(SettleActivities(open_ids, state))
    step.move(S.RESOLVED)
    step.update(resolution=event.resolution.strip())


def _reactivate(step: _Step, event: Reactivate) -> None:
    if step.case.status is not S.RESOLVED:
        raise TransitionError(
            step.case.status.label, S.IN_PROGRESS.label, "only a resolved case can be reactivated"
        )
    step.move(S.IN_PROGRESS)
    owner = step.case.owner_user  # active again: its assignee, else its team, is told
    step.effects.append(Notify(owner, None if owner else step.case.owner_team, "reactivated"))


def _close(step: _Step, event: Close) -> None:
    step.move(S.CLOSED, "only a resolved case can be closed")


def _cancel(step: _Step, event: Cancel) -> None:
    if step.case.status is S.RESOLVED:
        raise TransitionError(S.RESOLVED.label, S.CANCELLED.label, "reactivate it first")
    step.move(S.CANCELLED)
    if step.ctx.open_activities:
        step.effects.append(SettleActivities(step.ctx.open_activities, ActivityState.CANCELLED))


def _link(step: _Step, event: Link) -> None:
    case = step.case
    require_editable(case, "link")
    if event.parent == case.number:
        raise CaseRuleError(f"case {case.number} cannot be its own parent")
    if event.parent == case.parent_number:
        raise CaseRuleError(f"case {case.number} is linked to {event.parent} already")
    step.update(parent_number=event.parent)


def _unlink(step: _Step, event: Unlink) -> None:
    require_editable(step.case, "unlink")
    if step.case.parent_number is None:
        raise CaseRuleError(f"case {step.case.number} has no parent case")
    step.update(parent_number=None)


def _merge(step: _Step, event: MergeInto) -> None:
    case = step.case
    require_editable(case, "merge")
    if event.target == case.number:
        raise CaseRuleError(f"case {case.number} cannot be merged into itself")
    step.update(
        status=S.CLOSED,
        closed_at=step.ctx.now,
        paused_at=None,
        worked_by=None,
        merged_into=event.target,
        resolution=f"Merged into {event.target}",
    )


def _customer_replied(step: _Step, event: CustomerReplied) -> None:
    case = step.case
    if case.status in FINAL:
        step.effects.append(OpenFollowUp(case.number))
        return
    if case.status is S.RESOLVED and event.reopen_window is not None:
        resolved_at = case.resolved_at or step.ctx.now
        if step.ctx.now - resolved_at > event.reopen_window:
            step.effects.append(OpenFollowUp(case.number))
            return
    if case.status in PAUSED or case.status is S.RESOLVED:
        step.move(S.REOPENED)
        step.update(owner_user=None, worked_by=None)
        step.effects.append(Notify(None, case.owner_team, "reopened"))


def _agent_replied(step: _Step, event: AgentReplied) -> None:
    require_editable(step.case, "note" if event.internal else "reply")
    if event.internal:
        return
    if step.case.first_responded_at is None:
        step.update(first_responded_at=step.ctx.now)
    if step.case.status in {S.NEW, S.REOPENED}:
        step.move(S.IN_PROGRESS)


_HANDLERS: dict[type[Any], Callable[[_Step, Any], None]] = {
    Edit: _edit,
    SetStatus: _set_status,
    Assign: _assign,
    Pick: _pick,
    Release: _release,
    Escalate: _escalate,
    Resolve: _resolve,
    Reactivate: _reactivate,
    Close: _close,
    Cancel: _cancel,
    Link: _link,
    Unlink: _unlink,
    MergeInto: _merge,
    CustomerReplied: _customer_replied,
    AgentReplied: _agent_replied,
}


def apply(case: Case, event: Event, ctx: Context) -> Outcome:
    """Apply one event to a case. Raises a CaseRuleError subclass when the event is not allowed."""
    step = _Step(case, ctx)
    _HANDLERS[type(event)](step, event)
    if ctx.diagnostics:
        step.effects.extend(tasks.diagnostic_effects(case, step.case, ctx.diagnostic))
    new = step.case
    changes = diff(case, new)
    if changes:
        new = replace(new, updated_at=ctx.now)
    return Outcome(new, changes, tuple(step.effects), event.action)


def due_for_auto_close(
    case: Case, now: datetime, waiting_period: timedelta = DEFAULT_AUTO_CLOSE_AFTER
) -> bool:
    """True when a resolved case has waited long enough to be closed for good."""
    return (
        case.status is S.RESOLVED
        and case.resolved_at is not None
        and now - case.resolved_at >= waiting_period
    )


def new_case(case: Case, now: datetime, *, diagnostics: bool = False) -> Outcome:
    """The outcome of creating a case: every set field is a change (and, with ``diagnostics``,
    the diagnostic task of a case created with an assignee)."""
    created = dataclasses.replace(case, created_at=case.created_at or now, updated_at=now)
    effects = tasks.diagnostic_effects(None, created, None) if diagnostics else ()
    return Outcome(created, diff(None, created), effects, "create")


__all__ = [
    "TRANSITIONS",
    "WORKING",
    "AgentReplied",
    "Assign",
    "Cancel",
    "Close",
    "CloseDiagnostic",
    "Context",
    "CustomerReplied",
    "Edit",
    "Effect",
    "Escalate",
    "Event",
    "Link",
    "MergeInto",
    "Notify",
    "OpenDiagnostic",
    "OpenFollowUp",
    "Outcome",
    "Pick",
    "Reactivate",
    "Release",
    "Resolve",
    "Resumed",
    "SetStatus",
    "SettleActivities",
    "Unlink",
    "apply",
    "can_transition",
    "due_for_auto_close",
    "new_case",
    "require_editable",
]
