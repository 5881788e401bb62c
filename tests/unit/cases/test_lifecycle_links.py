"""Pick guard, escalation levels, link, unlink and merge in the pure lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.model import Case
from inbox_daemon.errors import CaseRuleError, PickedByOther, ReadOnlyCaseError

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
CTX = lifecycle.Context(now=NOW)


def case(**fields: object) -> Case:
    return Case(number="CAS-000002", title="Printer", **fields)  # type: ignore[arg-type]


def test_pick_of_a_case_someone_works_needs_force_and_tells_them() -> None:
    worked = case(worked_by="bob", owner_user="bob", status=Status.IN_PROGRESS)
    with pytest.raises(PickedByOther) as refused:
        lifecycle.apply(worked, lifecycle.Pick("alice"), CTX)
    assert refused.value.worker == "bob"
    assert "--force" in str(refused.value)
    out = lifecycle.apply(worked, lifecycle.Pick("alice", force=True), CTX)
    assert out.case.worked_by == "alice"
    assert out.case.owner_user == "alice"
    assert lifecycle.Notify("bob", None, "taken over") in out.effects


def test_pick_again_by_the_same_agent_is_no_takeover() -> None:
    worked = case(worked_by="alice", owner_user="alice", status=Status.IN_PROGRESS)
    out = lifecycle.apply(worked, lifecycle.Pick("alice"), CTX)
    assert not [e for e in out.effects if isinstance(e, lifecycle.Notify)]


def test_escalate_goes_up_to_the_named_level_and_never_down() -> None:
    out = lifecycle.apply(case(), lifecycle.Escalate(level=3), CTX)
    assert out.case.support_level == 3
    assert out.case.status is Status.ESCALATED
    with pytest.raises(CaseRuleError, match="support level 3 already"):
        lifecycle.apply(out.case, lifecycle.Escalate(level=2), CTX)
    assert lifecycle.apply(out.case, lifecycle.Escalate(), CTX).case.support_level == 4


def test_link_and_unlink() -> None:
    linked = lifecycle.apply(case(), lifecycle.Link("CAS-000001"), CTX)
    assert linked.case.parent_number == "CAS-000001"
    assert [c.field for c in linked.changes] == ["parent_number"]
    with pytest.raises(CaseRuleError, match="linked to CAS-000001 already"):
        lifecycle.apply(linked.case, lifecycle.Link("CAS-000001"), CTX)
    with pytest.raises(CaseRuleError, match="its own parent"):
        lifecycle.apply(case(), lifecycle.Link("CAS-000002"), CTX)
    assert lifecycle.apply(linked.case, lifecycle.Unlink(), CTX).case.parent_number is None
    with pytest.raises(CaseRuleError, match="has no parent"):
        lifecycle.apply(case(), lifecycle.Unlink(), CTX)


@pytest.mark.parametrize("status", [s for s in Status if s.open])
def test_merge_closes_an_open_case_with_a_pointer(status: Status) -> None:
    paused = NOW if status.paused else None
    out = lifecycle.apply(
        case(status=status, worked_by="bob", paused_at=paused),
        lifecycle.MergeInto("CAS-000001"),
        CTX,
    )
    assert out.case.status is Status.CLOSED
    assert out.case.merged_into == "CAS-000001"
    assert out.case.resolution == "Merged into CAS-000001"
    assert out.case.closed_at == NOW
    assert out.case.worked_by is None
    assert out.case.paused_at is None


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.CLOSED, Status.CANCELLED])
def test_a_read_only_case_is_neither_merged_nor_linked(status: Status) -> None:
    for event in (lifecycle.MergeInto("CAS-000001"), lifecycle.Link("CAS-000001")):
        with pytest.raises(ReadOnlyCaseError):
            lifecycle.apply(case(status=status), event, CTX)


def test_a_case_is_not_merged_into_itself() -> None:
    with pytest.raises(CaseRuleError, match="into itself"):
        lifecycle.apply(case(), lifecycle.MergeInto("CAS-000002"), CTX)
