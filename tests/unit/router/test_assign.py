"""pick_assignee: round robin, least open cases, none; inactive and unknown users skipped."""

from __future__ import annotations

import pytest

from inbox_daemon.cases.directory import AssignmentStrategy, Directory, Team, User
from inbox_daemon.router import pick_assignee

RR = AssignmentStrategy.ROUND_ROBIN
LEAST = AssignmentStrategy.LEAST_OPEN
NONE = AssignmentStrategy.NONE

DIRECTORY = Directory.of(
    users=[
        User("ann", "Ann"),
        User("bob", "Bob"),
        User("cat", "Cat", active=False),
        User("dan", "Dan"),
        User("eve", "Eve", active=False),
    ]
)


def team(*members: str, strategy: AssignmentStrategy = RR) -> Team:
    return Team("t", "T", members=members, strategy=strategy)


def rr(t: Team, last: str | None) -> str | None:
    return pick_assignee(t, DIRECTORY, None, last_assigned=last, open_counts={})


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (None, "ann"),  # nobody yet: the first active member
        ("ann", "bob"),
        ("bob", "dan"),  # cat is inactive
        ("dan", "ann"),  # wraps around
        ("cat", "dan"),  # the last one assigned went inactive: continue after them
        ("zoe", "ann"),  # no longer a member: start again
    ],
)
def test_round_robin(last: str | None, expected: str) -> None:
    assert rr(team("ann", "bob", "cat", "dan"), last) == expected


def test_round_robin_cycles_through_active_members_in_order() -> None:
    t = team("ann", "cat", "bob", "ghost", "dan")  # ghost is not in the directory
    picks: list[str | None] = []
    last: str | None = None
    for _ in range(6):
        last = rr(t, last)
        picks.append(last)
    assert picks == ["ann", "bob", "dan", "ann", "bob", "dan"]


def test_round_robin_with_a_single_active_member_picks_them_again() -> None:
    assert rr(team("cat", "bob", "eve"), "bob") == "bob"


def test_least_open_picks_the_fewest_open_cases() -> None:
    t = team("ann", "bob", "dan", strategy=LEAST)
    counts = {"ann": 4, "bob": 2, "dan": 3}
    assert pick_assignee(t, DIRECTORY, None, last_assigned=None, open_counts=counts) == "bob"


def test_least_open_ties_go_to_the_member_listed_first() -> None:
    t = team("dan", "ann", "bob", strategy=LEAST)
    counts = {"ann": 1, "dan": 1, "bob": 5}
    assert pick_assignee(t, DIRECTORY, None, last_assigned="dan", open_counts=counts) == "dan"


def test_least_open_skips_inactive_and_counts_missing_as_zero() -> None:
    t = team("cat", "ann", "bob", strategy=LEAST)
    counts = {"cat": 0, "ann": 3}
    assert pick_assignee(t, DIRECTORY, None, last_assigned=None, open_counts=counts) == "bob"


def test_none_assigns_nobody() -> None:
    t = team("ann", "bob", strategy=NONE)
    assert pick_assignee(t, DIRECTORY, None, last_assigned="ann", open_counts={}) is None


@pytest.mark.parametrize("strategy", [RR, LEAST])
def test_a_team_without_active_members_gets_nobody(strategy: AssignmentStrategy) -> None:
    for t in (team("cat", "eve", strategy=strategy), team(strategy=strategy)):
        assert pick_assignee(t, DIRECTORY, None, last_assigned="cat", open_counts={}) is None


def test_the_strategy_argument_overrides_the_team() -> None:
    t = team("ann", "bob", strategy=RR)
    counts = {"ann": 5, "bob": 0}
    assert pick_assignee(t, DIRECTORY, LEAST, last_assigned="bob", open_counts=counts) == "bob"
    assert pick_assignee(t, DIRECTORY, None, last_assigned="bob", open_counts=counts) == "ann"
    assert pick_assignee(t, DIRECTORY, NONE, last_assigned="bob", open_counts=counts) is None
