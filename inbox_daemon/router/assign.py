"""Picking the owner of a case routed to a team. Pure: the caller keeps the state.

Owns :func:`pick_assignee`: round robin (the next active member after the last one assigned,
in the team's member order, wrapping around; the caller persists ``last_assigned``), least
open cases (ties go to the member listed first) and none. Inactive users, and members missing
from the directory, are never picked; a team without an active member gets no one.
"""

from __future__ import annotations

from collections.abc import Mapping

from inbox_daemon.cases.directory import AssignmentStrategy, Directory, Team

__all__ = ["pick_assignee"]


def pick_assignee(
    team: Team,
    directory: Directory,
    strategy: AssignmentStrategy | None = None,
    *,
    last_assigned: str | None,
    open_counts: Mapping[str, int],
) -> str | None:
    """The user id to assign, or None.

    ``strategy`` overrides the team's own when given (a rule's ``strategy``). ``open_counts``
    maps user ids to their open cases (missing: 0).
    """
    how = strategy or team.strategy
    members = team.members
    active = [m for m in members if _is_active(directory, m)]
    if how is AssignmentStrategy.NONE or not active:
        return None
    if how is AssignmentStrategy.LEAST_OPEN:
        order = {member: index for index, member in enumerate(active)}
        return min(active, key=lambda m: (open_counts.get(m, 0), order[m]))
    # Round robin: start after the last one assigned, even if they are inactive now.
    if last_assigned in members:
        start = members.index(last_assigned) + 1
        for offset in range(len(members)):
            candidate = members[(start + offset) % len(members)]
            if _is_active(directory, candidate):
                return candidate
    return active[0]


def _is_active(directory: Directory, user_id: str) -> bool:
    user = directory.users.get(user_id)
    return user is not None and user.active
