"""Agents, teams, queues and support levels: who can own and work a case.

The directory is built from rules.yaml by the router's loader and handed to the case service;
it is immutable, so a reload swaps the whole directory at once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from inbox_daemon.cases.enums import Priority
from inbox_daemon.errors import NotFoundError


class AssignmentStrategy(enum.StrEnum):
    """How a case routed to a team finds its owner."""

    ROUND_ROBIN = "round_robin"
    LEAST_OPEN = "least_open"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class User:
    """An agent."""

    id: str
    name: str
    email: str | None = None
    slack_id: str | None = None
    active: bool = True
    #: Their login name where they run the CLI (their default ``--as``).
    os_user: str | None = None


@dataclass(frozen=True, slots=True)
class Team:
    id: str
    name: str
    members: tuple[str, ...] = ()
    strategy: AssignmentStrategy = AssignmentStrategy.NONE


@dataclass(frozen=True, slots=True)
class Queue:
    id: str
    name: str
    team: str | None = None
    slack_channel: str | None = None
    default_priority: Priority = Priority.MEDIUM


@dataclass(frozen=True, slots=True)
class SupportLevel:
    """A support level; a case's ``support_level`` is its position here, counted from 1."""

    name: str
    team: str | None = None
    queue: str | None = None


@dataclass(frozen=True, slots=True)
class Directory:
    """The agents, teams, queues and support levels in force."""

    users: dict[str, User] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    queues: dict[str, Queue] = field(default_factory=dict)
    #: In escalation order; empty: levels are plain numbers with no end.
    levels: tuple[SupportLevel, ...] = ()

    @classmethod
    def of(
        cls,
        users: Iterable[User] = (),
        teams: Iterable[Team] = (),
        queues: Iterable[Queue] = (),
        levels: Iterable[SupportLevel] = (),
    ) -> Directory:
        return cls(
            users={u.id: u for u in users},
            teams={t.id: t for t in teams},
            queues={q.id: q for q in queues},
            levels=tuple(levels),
        )

    def level_name(self, level: int) -> str:
        """How a case's support level is shown: its name (``L2``), else ``level 2``."""
        if 1 <= level <= len(self.levels):
            return self.levels[level - 1].name
        return f"level {level}"

    def level_number(self, name: str) -> int:
        """The position of a named level (``L2`` -> 2); a number is taken as it is."""
        for index, level in enumerate(self.levels, start=1):
            if level.name.lower() == name.strip().lower():
                return index
        if name.strip().isdigit() and (not self.levels or int(name) <= len(self.levels)):
            return int(name)
        known = ", ".join(lv.name for lv in self.levels) or "none are named in rules.yaml"
        raise NotFoundError(f"unknown support level {name!r} (levels: {known})")

    def by_os_user(self, login: str) -> User | None:
        return next((u for u in self.users.values() if u.os_user == login), None)

    def user(self, user_id: str) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise NotFoundError(f"unknown user {user_id!r}") from None

    def team(self, team_id: str) -> Team:
        try:
            return self.teams[team_id]
        except KeyError:
            raise NotFoundError(f"unknown team {team_id!r}") from None

    def queue(self, queue_id: str) -> Queue:
        try:
            return self.queues[queue_id]
        except KeyError:
            raise NotFoundError(f"unknown queue {queue_id!r}") from None

    def active_user(self, user_id: str) -> User:
        user = self.user(user_id)
        if not user.active:
            raise NotFoundError(f"user {user_id!r} is not active")
        return user

    def by_slack_id(self, slack_id: str) -> User | None:
        return next((u for u in self.users.values() if u.slack_id == slack_id), None)

    def by_email(self, email: str) -> User | None:
        low = email.lower()
        return next((u for u in self.users.values() if (u.email or "").lower() == low), None)

    def queue_members(self, queue_id: str) -> tuple[str, ...]:
        """The users who may work a queue's cases: the members of its owning team."""
        queue = self.queue(queue_id)
        if queue.team is None:
            return tuple(self.users)
        return self.team(queue.team).members

    def may_work(self, user_id: str, queue_id: str) -> bool:
        return user_id in self.queue_members(queue_id)
