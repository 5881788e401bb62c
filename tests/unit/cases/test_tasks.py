"""The pure rules of tasks and calls, and the diagnostic task as the lifecycle asks for it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from inbox_daemon.cases import lifecycle as lc
from inbox_daemon.cases import tasks
from inbox_daemon.cases.accounts import format_hours, format_spent
from inbox_daemon.cases.enums import ActivityKind, ActivityState, Direction, Status
from inbox_daemon.cases.model import Case
from inbox_daemon.cases.tasks import CloseDiagnostic, LoggedActivity, OpenDiagnostic
from inbox_daemon.errors import CaseRuleError, OpenActivitiesError

S = Status
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def case(status: Status = S.NEW, owner: str | None = "alice") -> Case:
    base = Case(number="CAS-000001", title="Printer", status=status, owner_user=owner,
                created_at=NOW)  # fmt: skip
    if status is S.RESOLVED:
        base = replace(base, resolved_at=NOW - timedelta(hours=1), resolution="fixed")
    if status.paused:
        base = replace(base, paused_at=NOW - timedelta(hours=1))
    return base


def diagnostic(assignee: str | None = "alice", id_: int = 5) -> LoggedActivity:
    return LoggedActivity(id_, ActivityKind.TASK, ActivityState.OPEN, assignee, diagnostic=True)


def ctx(task: LoggedActivity | None = None, open_ids: tuple[int, ...] = ()) -> lc.Context:
    return lc.Context(now=NOW, open_activities=open_ids, diagnostics=True, diagnostic=task)


# --- tasks and calls ---------------------------------------------------------------------------


def test_only_an_open_activity_is_settled() -> None:
    open_task = LoggedActivity(3, ActivityKind.TASK, ActivityState.OPEN)
    tasks.check_settle("CAS-000001", open_task, ActivityState.COMPLETED)
    tasks.check_settle("CAS-000001", open_task, ActivityState.CANCELLED)
    with pytest.raises(CaseRuleError, match="completed or cancelled"):
        tasks.check_settle("CAS-000001", open_task, ActivityState.OPEN)
    for state in (ActivityState.COMPLETED, ActivityState.CANCELLED):
        done = replace(open_task, state=state)
        with pytest.raises(CaseRuleError, match=f"#3 of CAS-000001 is already {state.value}"):
            tasks.check_settle("CAS-000001", done, ActivityState.COMPLETED)


def test_call_directions_and_subjects() -> None:
    assert tasks.call_direction("in") is Direction.INCOMING
    assert tasks.call_direction(" OUT ") is Direction.OUTGOING
    with pytest.raises(CaseRuleError, match="'in' or 'out', not 'up'"):
        tasks.call_direction("up")
    assert tasks.require_subject("  Call back \n") == "Call back"
    with pytest.raises(CaseRuleError, match="a call needs some text"):
        tasks.require_subject(" \n", "a call")


def test_the_diagnostic_task_is_the_open_one_marked_so() -> None:
    mine = LoggedActivity(1, ActivityKind.TASK, ActivityState.OPEN, "alice")
    assert tasks.diagnostic_of((mine,)) is None
    assert tasks.diagnostic_of((mine, diagnostic())) == diagnostic()


# --- the diagnostic task: when it opens ---------------------------------------------------------


@pytest.mark.parametrize("status", [S.NEW, S.IN_PROGRESS, S.REOPENED, S.ESCALATED])
def test_a_new_case_with_an_assignee_gets_one(status: Status) -> None:
    assert tasks.diagnostic_effects(None, case(status), None) == (OpenDiagnostic("alice"),)
    assert lc.new_case(case(status), NOW, diagnostics=True).effects == (OpenDiagnostic("alice"),)
    assert lc.new_case(case(status), NOW).effects == ()  # off unless configured


@pytest.mark.parametrize("status", [S.WAITING_FOR_RESPONSE, S.ON_HOLD, S.RESOLVED])
def test_not_while_the_case_is_not_worked(status: Status) -> None:
    assert tasks.diagnostic_effects(None, case(status), None) == ()


def test_not_without_an_assignee() -> None:
    assert tasks.diagnostic_effects(None, case(S.NEW, owner=None), None) == ()
    outcome = lc.apply(case(S.NEW, owner=None), lc.Assign(team="tier1"), ctx())
    assert [e for e in outcome.effects if not isinstance(e, lc.Notify)] == []


def test_assigning_opens_one_and_none_if_one_is_open() -> None:
    outcome = lc.apply(case(S.NEW, owner=None), lc.Assign(user="alice"), ctx())
    assert OpenDiagnostic("alice") in outcome.effects
    outcome = lc.apply(case(S.NEW), lc.Assign(user="alice"), ctx(diagnostic()))
    assert not any(isinstance(e, (OpenDiagnostic, CloseDiagnostic)) for e in outcome.effects)


def test_becoming_active_again_opens_one() -> None:
    outcome = lc.apply(case(S.WAITING_FOR_RESPONSE), lc.SetStatus(S.IN_PROGRESS), ctx())
    assert outcome.effects[-1] == OpenDiagnostic("alice")
    outcome = lc.apply(case(S.RESOLVED), lc.Reactivate(), ctx())
    assert outcome.effects == (lc.Notify("alice", None, "reactivated"), OpenDiagnostic("alice"))


def test_an_unrelated_change_opens_none() -> None:
    """An agent completed the diagnostic task by hand: editing the case brings none back."""
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Edit({"title": "Fuser"}), ctx())
    assert outcome.effects == ()


def test_off_means_no_effects() -> None:
    off = lc.Context(now=NOW, diagnostic=diagnostic())
    assert lc.apply(case(S.NEW, owner=None), lc.Assign(user="alice"), off).effects == (
        lc.Notify("alice", None, "assigned"),
    )
    assert lc.apply(case(S.IN_PROGRESS), lc.Cancel(), off).effects == ()


# --- the diagnostic task: how it closes ---------------------------------------------------------


def test_resolve_closes_it_with_solution_found_and_it_does_not_block() -> None:
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Resolve("fixed"), ctx(diagnostic()))
    assert outcome.case.status is S.RESOLVED
    assert outcome.effects == (CloseDiagnostic(5, ActivityState.COMPLETED, tasks.SOLUTION_FOUND),)


def test_resolve_still_refuses_for_other_open_activities() -> None:
    with pytest.raises(OpenActivitiesError) as info:
        lc.apply(case(S.IN_PROGRESS), lc.Resolve("fixed"), ctx(diagnostic(), open_ids=(8,)))
    assert "--complete-open-activities" in str(info.value)
    assert "--cancel-open-activities" in str(info.value)
    outcome = lc.apply(
        case(S.IN_PROGRESS), lc.Resolve("fixed", "cancel"), ctx(diagnostic(), open_ids=(8,))
    )
    assert outcome.effects == (
        lc.SettleActivities((8,), ActivityState.CANCELLED),
        CloseDiagnostic(5, ActivityState.COMPLETED, tasks.SOLUTION_FOUND),
    )


def test_cancel_cancels_it() -> None:
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Cancel(), ctx(diagnostic(), open_ids=(8,)))
    assert outcome.effects == (
        lc.SettleActivities((8,), ActivityState.CANCELLED),
        CloseDiagnostic(5, ActivityState.CANCELLED, tasks.CANCELLED),
    )


def test_waiting_for_the_customer_closes_it() -> None:
    outcome = lc.apply(case(S.IN_PROGRESS), lc.SetStatus(S.WAITING_FOR_RESPONSE), ctx(diagnostic()))
    assert outcome.effects == (
        CloseDiagnostic(5, ActivityState.COMPLETED, tasks.INFORMATION_REQUIRED),
    )
    on_hold = lc.apply(case(S.IN_PROGRESS), lc.SetStatus(S.ON_HOLD), ctx(diagnostic()))
    assert on_hold.effects == ()  # only waiting for the customer, as in the seeds


def test_reassignment_closes_it_and_opens_one_for_the_new_assignee() -> None:
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Assign(user="bob"), ctx(diagnostic()))
    assert outcome.effects == (
        lc.Notify("bob", None, "assigned"),
        CloseDiagnostic(5, ActivityState.COMPLETED, tasks.ESCALATION_REQUIRED),
        OpenDiagnostic("bob"),
    )
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Escalate(user="carol"), ctx(diagnostic()))
    assert outcome.effects[-2:] == (
        CloseDiagnostic(5, ActivityState.COMPLETED, tasks.ESCALATION_REQUIRED),
        OpenDiagnostic("carol"),
    )


def test_back_to_the_queue_closes_it_and_opens_none() -> None:
    outcome = lc.apply(case(S.IN_PROGRESS), lc.Release(), ctx(diagnostic()))
    assert outcome.effects == (
        CloseDiagnostic(5, ActivityState.COMPLETED, tasks.ESCALATION_REQUIRED),
    )
    reopened = lc.apply(case(S.ON_HOLD), lc.CustomerReplied(), ctx(diagnostic()))
    assert reopened.case.owner_user is None
    assert reopened.effects[-1] == CloseDiagnostic(
        5, ActivityState.COMPLETED, tasks.ESCALATION_REQUIRED
    )


def test_picking_a_case_for_oneself_keeps_the_task() -> None:
    outcome = lc.apply(case(S.NEW), lc.Pick("alice"), ctx(diagnostic()))
    assert outcome.case.status is S.IN_PROGRESS
    assert outcome.effects == ()


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("45m", 45), ("2h", 120), ("1h30m", 90), ("1h 30m", 90), ("1.5h", 90), ("0.25h", 15),
     ("24h", 1440), ("1H5M", 65)],
)  # fmt: skip
def test_time_spent_is_written_as_agents_write_it(text: str, minutes: int) -> None:
    assert tasks.parse_spent(text) == minutes


@pytest.mark.parametrize(
    ("text", "problem"),
    [("", "is not a time"), ("45", "is not a time"), ("1d", "is not a time"),
     ("-5m", "is not a time"), ("h", "is not a time"), ("0m", "less than a minute"),
     ("0.001h", "less than a minute"), ("24h1m", "more than 24h")],
)  # fmt: skip
def test_time_spent_that_is_no_time_is_refused(text: str, problem: str) -> None:
    with pytest.raises(CaseRuleError, match=problem):
        tasks.parse_spent(text)


def test_time_spent_is_shown_as_agents_write_it() -> None:
    assert [format_spent(m) for m in (5, 60, 90, 600)] == ["5m", "1h", "1h 30m", "10h"]
    assert [format_hours(m) for m in (90, 600, 15, 0)] == ["1.5", "10", "0.25", "0"]
