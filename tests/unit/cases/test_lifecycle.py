"""The status machine: every transition, read-only cases, resolve, reactivate, escalate."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from inbox_daemon.cases import lifecycle as lc
from inbox_daemon.cases.enums import ActivityState, Priority, Status
from inbox_daemon.cases.model import Case, FieldChange
from inbox_daemon.errors import (
    CaseRuleError,
    OpenActivitiesError,
    ReadOnlyCaseError,
    TransitionError,
)

S = Status
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CTX = lc.Context(now=NOW)

# Written out independently of lifecycle.TRANSITIONS: the legal status changes.
LEGAL = {
    (S.NEW, S.IN_PROGRESS), (S.NEW, S.WAITING_FOR_RESPONSE), (S.NEW, S.ON_HOLD),
    (S.NEW, S.ESCALATED), (S.NEW, S.RESOLVED), (S.NEW, S.CANCELLED),
    (S.IN_PROGRESS, S.WAITING_FOR_RESPONSE), (S.IN_PROGRESS, S.ON_HOLD),
    (S.IN_PROGRESS, S.ESCALATED), (S.IN_PROGRESS, S.RESOLVED), (S.IN_PROGRESS, S.CANCELLED),
    (S.WAITING_FOR_RESPONSE, S.IN_PROGRESS), (S.WAITING_FOR_RESPONSE, S.ON_HOLD),
    (S.WAITING_FOR_RESPONSE, S.ESCALATED), (S.WAITING_FOR_RESPONSE, S.RESOLVED),
    (S.WAITING_FOR_RESPONSE, S.CANCELLED), (S.WAITING_FOR_RESPONSE, S.REOPENED),
    (S.ON_HOLD, S.IN_PROGRESS), (S.ON_HOLD, S.WAITING_FOR_RESPONSE), (S.ON_HOLD, S.ESCALATED),
    (S.ON_HOLD, S.RESOLVED), (S.ON_HOLD, S.CANCELLED), (S.ON_HOLD, S.REOPENED),
    (S.ESCALATED, S.IN_PROGRESS), (S.ESCALATED, S.WAITING_FOR_RESPONSE),
    (S.ESCALATED, S.ON_HOLD), (S.ESCALATED, S.RESOLVED), (S.ESCALATED, S.CANCELLED),
    (S.REOPENED, S.IN_PROGRESS), (S.REOPENED, S.WAITING_FOR_RESPONSE), (S.REOPENED, S.ON_HOLD),
    (S.REOPENED, S.ESCALATED), (S.REOPENED, S.RESOLVED), (S.REOPENED, S.CANCELLED),
    (S.RESOLVED, S.CLOSED), (S.RESOLVED, S.REOPENED), (S.RESOLVED, S.IN_PROGRESS),
}  # fmt: skip

ALL_PAIRS = list(itertools.product(Status, Status))


def case(status: Status = S.NEW, **kw: object) -> Case:
    base = Case(number="CAS-000001", title="Printer", status=status, created_at=NOW, **kw)  # type: ignore[arg-type]
    if status is S.RESOLVED:
        base = replace(base, resolved_at=NOW - timedelta(hours=1), resolution="fixed")
    if status.paused:
        base = replace(base, paused_at=NOW - timedelta(hours=2))
    return base


def event_for(from_status: Status, to: Status) -> lc.Event:
    """The event an agent, customer or job uses to move a case to ``to``."""
    if to is S.IN_PROGRESS:
        return lc.Reactivate() if from_status is S.RESOLVED else lc.SetStatus(to)
    if to in (S.WAITING_FOR_RESPONSE, S.ON_HOLD):
        return lc.SetStatus(to)
    return {
        S.ESCALATED: lc.Escalate(),
        S.RESOLVED: lc.Resolve("fixed"),
        S.CLOSED: lc.Close(),
        S.CANCELLED: lc.Cancel(),
        S.REOPENED: lc.CustomerReplied(),
    }[to]


@pytest.mark.parametrize(("from_status", "to"), ALL_PAIRS, ids=lambda s: s.value)
def test_transition_table(from_status: Status, to: Status) -> None:
    assert lc.can_transition(from_status, to) is ((from_status, to) in LEGAL)


@pytest.mark.parametrize(
    ("from_status", "to"), [p for p in ALL_PAIRS if p[1] is not S.NEW], ids=lambda s: s.value
)
def test_every_transition_through_its_event(from_status: Status, to: Status) -> None:
    start = case(from_status)
    event = event_for(from_status, to)
    if (from_status, to) in LEGAL:
        outcome = lc.apply(start, event, CTX)
        assert outcome.case.status is to
        assert FieldChange("status", from_status.value, to.value) in outcome.changes
        assert outcome.case.updated_at == NOW
        return
    if from_status is to and to is S.ESCALATED:
        # escalating an escalated case raises the support level only
        outcome = lc.apply(start, event, CTX)
        assert outcome.case.status is S.ESCALATED
        assert outcome.case.support_level == 2
        return
    if to is S.REOPENED:
        # a customer reply never fails: on a working case it changes nothing, on a final one
        # it asks for a follow-up case
        outcome = lc.apply(start, event, CTX)
        assert outcome.case.status is from_status
        assert outcome.changes == []
        expected = (lc.OpenFollowUp("CAS-000001"),) if from_status.final else ()
        assert outcome.effects == expected
        return
    if from_status is to and to in (S.IN_PROGRESS, S.WAITING_FOR_RESPONSE, S.ON_HOLD):
        outcome = lc.apply(start, event, CTX)  # already there: nothing to do
        assert outcome.changes == []
        return
    with pytest.raises((TransitionError, ReadOnlyCaseError)) as info:
        lc.apply(start, event, CTX)
    if isinstance(info.value, TransitionError):
        assert info.value.from_status == from_status.label
        assert from_status.label in str(info.value)
        assert to.label in str(info.value) or info.value.to_status in str(info.value)
    else:
        assert from_status.read_only


def test_nothing_moves_a_case_back_to_new() -> None:
    assert all(not lc.can_transition(s, S.NEW) for s in Status)


def test_transition_error_names_both_statuses() -> None:
    with pytest.raises(TransitionError, match="from Closed to Closed"):
        lc.apply(case(S.CLOSED), lc.Close(), CTX)
    with pytest.raises(TransitionError) as info:
        lc.apply(case(S.NEW), lc.Close(), CTX)
    assert (info.value.from_status, info.value.to_status) == ("New", "Closed")
    assert "cannot change status from New to Closed" in str(info.value)


# --- resolve and open activities ---------------------------------------------------------------


def test_resolve_fails_with_open_activities() -> None:
    ctx = lc.Context(now=NOW, open_activities=(7, 9))
    with pytest.raises(OpenActivitiesError, match="2 open activities"):
        lc.apply(case(S.IN_PROGRESS), lc.Resolve("fixed"), ctx)


def test_resolve_cancels_open_activities_when_asked() -> None:
    ctx = lc.Context(now=NOW, open_activities=(7, 9))
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Resolve("fixed", "cancel"), ctx)
    assert outcome.case.status is S.RESOLVED
    assert outcome.case.resolution == "fixed"
    assert outcome.case.resolved_at == NOW
    assert outcome.effects == (lc.SettleActivities((7, 9), ActivityState.CANCELLED),)


def test_resolve_completes_open_activities_when_asked() -> None:
    ctx = lc.Context(now=NOW, open_activities=(3,))
    outcome = lc.apply(case(S.NEW), lc.Resolve("done", "complete"), ctx)
    assert outcome.effects == (lc.SettleActivities((3,), ActivityState.COMPLETED),)


def test_resolve_needs_a_resolution() -> None:
    with pytest.raises(CaseRuleError, match="resolution is needed"):
        lc.apply(case(S.IN_PROGRESS), lc.Resolve("  "), CTX)


def test_resolving_a_resolved_case_is_a_transition_error() -> None:
    with pytest.raises(TransitionError, match="from Resolved to Resolved"):
        lc.apply(case(S.RESOLVED), lc.Resolve("again"), CTX)


# --- read-only ---------------------------------------------------------------------------------

EDITS: list[lc.Event] = [
    lc.Edit({"title": "New title"}),
    lc.Assign(user="alice"),
    lc.Pick("alice"),
    lc.Release(),
    lc.Escalate(),
    lc.SetStatus(S.ON_HOLD),
    lc.AgentReplied(),
    lc.AgentReplied(internal=True),
]


@pytest.mark.parametrize("status", [S.RESOLVED, S.CLOSED, S.CANCELLED])
@pytest.mark.parametrize("event", EDITS, ids=lambda e: e.action)
def test_read_only_cases_refuse_edits(status: Status, event: lc.Event) -> None:
    start = case(status, owner_user="alice", worked_by="alice")
    with pytest.raises(ReadOnlyCaseError) as info:
        lc.apply(start, event, CTX)
    assert "CAS-000001" in str(info.value)
    if status is S.RESOLVED:
        assert "reactivate" in str(info.value)
    else:
        assert "can no longer change" in str(info.value)


def test_edit_changes_fields_and_reports_them() -> None:
    outcome = lc.apply(case(), lc.Edit({"title": "Scanner", "priority": "high"}), CTX)
    assert outcome.case.title == "Scanner"
    assert outcome.case.priority is Priority.HIGH
    assert FieldChange("title", "Printer", "Scanner") in outcome.changes
    assert FieldChange("priority", "medium", "high") in outcome.changes


def test_edit_refuses_unknown_fields_and_empty_title() -> None:
    with pytest.raises(CaseRuleError, match="cannot edit status"):
        lc.apply(case(), lc.Edit({"status": S.CLOSED}), CTX)
    with pytest.raises(CaseRuleError, match="needs a title"):
        lc.apply(case(), lc.Edit({"title": " "}), CTX)


# --- reactivation ------------------------------------------------------------------------------


def test_reactivate_resolved_case_clears_resolution_and_needs_a_new_resolve() -> None:
    resolved = case(S.RESOLVED)
    outcome = lc.apply(resolved, lc.Reactivate(), CTX)
    assert outcome.case.status is S.IN_PROGRESS
    assert outcome.case.resolution is None
    assert outcome.case.resolved_at is None
    assert FieldChange("resolution", "fixed", None) in outcome.changes
    again = lc.apply(outcome.case, lc.Resolve("fixed for real"), CTX)
    assert again.case.status is S.RESOLVED
    assert again.case.resolution == "fixed for real"


@pytest.mark.parametrize("status", [s for s in Status if s is not S.RESOLVED])
def test_only_resolved_cases_can_be_reactivated(status: Status) -> None:
    with pytest.raises(TransitionError, match="only a resolved case can be reactivated"):
        lc.apply(case(status), lc.Reactivate(), CTX)


# --- customer replies (seeds: reopen paused or resolved, follow-up for final) -------------------


@pytest.mark.parametrize("status", [S.WAITING_FOR_RESPONSE, S.ON_HOLD, S.RESOLVED])
def test_customer_reply_reopens_and_returns_case_to_its_queue(status: Status) -> None:
    start = case(status, owner_user="alice", worked_by="alice", owner_team="tier1", queue="general")
    outcome = lc.apply(start, lc.CustomerReplied(), CTX)
    assert outcome.case.status is S.REOPENED
    assert outcome.case.owner_user is None
    assert outcome.case.worked_by is None
    assert outcome.case.queue == "general"
    assert outcome.case.owner_team == "tier1"
    assert lc.Notify(None, "tier1", "reopened") in outcome.effects
    if status.paused:
        assert lc.Resumed(NOW - timedelta(hours=2), NOW) in outcome.effects
        assert outcome.case.paused_at is None


def test_customer_reply_to_old_resolved_case_opens_follow_up() -> None:
    start = replace(case(S.RESOLVED), resolved_at=NOW - timedelta(days=40))
    outcome = lc.apply(start, lc.CustomerReplied(reopen_window=timedelta(days=30)), CTX)
    assert outcome.case.status is S.RESOLVED
    assert outcome.effects == (lc.OpenFollowUp("CAS-000001"),)
    recent = lc.apply(case(S.RESOLVED), lc.CustomerReplied(timedelta(days=30)), CTX)
    assert recent.case.status is S.REOPENED


# --- pick, release, assign, escalate -----------------------------------------------------------


def test_pick_sets_worked_by_and_owner_and_starts_work() -> None:
    outcome = lc.apply(case(S.NEW, queue="general"), lc.Pick("bob"), CTX)
    assert (outcome.case.worked_by, outcome.case.owner_user) == ("bob", "bob")
    assert outcome.case.status is S.IN_PROGRESS


def test_release_puts_case_back_and_refuses_when_nobody_works_it() -> None:
    picked = lc.apply(case(S.NEW, queue="general"), lc.Pick("bob"), CTX).case
    released = lc.apply(picked, lc.Release(), CTX).case
    assert (released.worked_by, released.owner_user, released.queue) == (None, None, "general")
    with pytest.raises(CaseRuleError, match="not being worked"):
        lc.apply(released, lc.Release(), CTX)


def test_assign_to_team_clears_user_and_notifies_team() -> None:
    start = case(S.IN_PROGRESS, owner_user="alice")
    outcome = lc.apply(start, lc.Assign(team="billing"), CTX)
    assert (outcome.case.owner_team, outcome.case.owner_user) == ("billing", None)
    assert outcome.effects == (lc.Notify(None, "billing", "assigned"),)
    with pytest.raises(CaseRuleError, match="needs a user, a team or a queue"):
        lc.apply(start, lc.Assign(), CTX)


def test_escalate_raises_support_level_and_sets_new_owner() -> None:
    start = case(S.IN_PROGRESS, owner_user="alice", worked_by="alice", queue="general")
    outcome = lc.apply(start, lc.Escalate(team="tier2", queue="escalations"), CTX)
    assert outcome.case.status is S.ESCALATED
    assert outcome.case.support_level == 2
    assert (outcome.case.owner_team, outcome.case.owner_user) == ("tier2", None)
    assert (outcome.case.queue, outcome.case.worked_by) == ("escalations", None)
    second = lc.apply(outcome.case, lc.Escalate(user="carol"), CTX)
    assert second.case.support_level == 3
    assert second.case.owner_user == "carol"
    assert FieldChange("support_level", "2", "3") in second.changes


# --- pauses, agent replies, auto-close ----------------------------------------------------------


def test_pausing_and_resuming_records_the_pause() -> None:
    paused = lc.apply(case(S.IN_PROGRESS), lc.SetStatus(S.WAITING_FOR_RESPONSE), CTX).case
    assert paused.paused_at == NOW
    later = lc.Context(now=NOW + timedelta(hours=3))
    resumed = lc.apply(paused, lc.SetStatus(S.IN_PROGRESS), later)
    assert resumed.case.paused_at is None
    assert resumed.effects == (lc.Resumed(NOW, NOW + timedelta(hours=3)),)


def test_set_status_refuses_statuses_that_have_their_own_action() -> None:
    with pytest.raises(CaseRuleError, match="use resolve, cancel"):
        lc.apply(case(), lc.SetStatus(S.RESOLVED), CTX)


def test_first_agent_reply_sets_first_response_once() -> None:
    first = lc.apply(case(), lc.AgentReplied(), CTX).case
    assert first.first_responded_at == NOW
    assert first.status is S.IN_PROGRESS
    second = lc.apply(first, lc.AgentReplied(), lc.Context(now=NOW + timedelta(hours=1))).case
    assert second.first_responded_at == NOW
    note = lc.apply(case(), lc.AgentReplied(internal=True), CTX)
    assert note.changes == []


def test_cancel_cancels_open_activities_and_is_final() -> None:
    ctx = lc.Context(now=NOW, open_activities=(4,))
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Cancel(), ctx)
    assert outcome.case.status is S.CANCELLED
    assert outcome.case.closed_at == NOW
    assert outcome.effects == (lc.SettleActivities((4,), ActivityState.CANCELLED),)


def test_auto_close_waits_for_the_period() -> None:
    resolved = replace(case(S.RESOLVED), resolved_at=NOW - timedelta(days=7))
    assert lc.due_for_auto_close(resolved, NOW)
    assert not lc.due_for_auto_close(resolved, NOW - timedelta(seconds=1))
    assert not lc.due_for_auto_close(resolved, NOW, timedelta(days=8))
    assert not lc.due_for_auto_close(case(S.IN_PROGRESS), NOW + timedelta(days=30))
    closed = lc.apply(resolved, lc.Close(), CTX).case
    assert closed.status is S.CLOSED
    assert closed.closed_at == NOW
    assert closed.resolution == "fixed"  # closing keeps the resolution


def test_new_case_outcome_lists_every_set_field() -> None:
    outcome = lc.new_case(case(priority=Priority.HIGH, queue="general"), NOW)
    fields = {c.field: c.new for c in outcome.changes}
    assert fields["title"] == "Printer"
    assert fields["status"] == "new"
    assert fields["priority"] == "high"
    assert fields["queue"] == "general"
    assert "owner_user" not in fields
    assert outcome.action == "create"
