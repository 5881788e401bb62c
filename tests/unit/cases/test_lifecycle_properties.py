"""Random event sequences keep the case's invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.cases import lifecycle as lc
from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.model import Case
from inbox_daemon.errors import CaseRuleError

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

events = st.one_of(
    st.builds(lc.SetStatus, st.sampled_from(list(Status))),
    st.builds(lc.Assign, user=st.sampled_from(["alice", "bob", None]), team=st.just("tier1")),
    st.builds(lc.Pick, st.sampled_from(["alice", "bob"])),
    st.just(lc.Release()),
    st.builds(lc.Escalate, team=st.sampled_from(["tier2", None])),
    st.builds(lc.Resolve, st.sampled_from(["fixed", ""]), st.sampled_from(["fail", "cancel"])),
    st.just(lc.Reactivate()),
    st.just(lc.Close()),
    st.just(lc.Cancel()),
    st.just(lc.CustomerReplied()),
    st.builds(lc.AgentReplied, st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=25), st.lists(st.booleans(), max_size=25))
def test_invariants_hold_for_any_event_sequence(
    sequence: list[lc.Event], open_flags: list[bool]
) -> None:
    case = Case(number="CAS-000001", title="t", created_at=START)
    now = START
    for i, event in enumerate(sequence):
        now += timedelta(minutes=5)
        has_open = open_flags[i] if i < len(open_flags) else False
        ctx = lc.Context(now=now, open_activities=(1,) if has_open else ())
        before = case
        try:
            outcome = lc.apply(case, event, ctx)
        except CaseRuleError:
            continue  # refused: the case is unchanged (it is immutable)
        case = outcome.case
        if before.status.final:
            assert case == before  # final cases never change
        if before.status is not case.status:
            assert lc.can_transition(before.status, case.status)
        if before.status is Status.RESOLVED and case.status is Status.RESOLVED:
            assert outcome.changes == []  # read-only
        assert (case.paused_at is not None) == case.status.paused
        # only a resolved case can be closed, and closing keeps its resolution
        assert (case.resolved_at is not None) == (case.status in (Status.RESOLVED, Status.CLOSED))
        if case.status is Status.RESOLVED:
            assert case.resolution
        if case.status is Status.REOPENED and before.status is not Status.REOPENED:
            assert case.owner_user is None
            assert case.worked_by is None
        if isinstance(event, lc.Resolve) and has_open and event.open_activities == "fail":
            raise AssertionError("resolve with open activities must have been refused")
        assert {c.field for c in outcome.changes} <= set(Case.__dataclass_fields__)
