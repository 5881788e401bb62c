"""What the Slack app asks of the layer above it: the agent actions, as a protocol.

The app turns buttons, modals, thread replies and ``/case`` into calls of :class:`AgentActions`
with the acting Slack user's id; the implementation (``inbox_daemon.agents``) maps that user to
an agent, changes the case through the case service and keeps the case cards current. A refusal
or a broken case rule comes back as an ``InboxError`` whose message the user is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from inbox_daemon.cases.lifecycle import OpenActivityPolicy
from inbox_daemon.cases.model import Case
from inbox_daemon.errors import InboxError
from inbox_daemon.messages import Attachment

__all__ = [
    "ActionResult",
    "ActivityLine",
    "AgentActions",
    "AgentRefused",
    "CaseDetails",
    "CaseDocument",
    "CaseListing",
    "EditChoices",
    "EscalationChoices",
]


class AgentRefused(InboxError):
    """The Slack user may not act on cases: not mapped to an agent, or not an active one."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What an action did, in words for the user who asked."""

    number: str
    message: str


@dataclass(frozen=True, slots=True)
class ActivityLine:
    """One activity of a case, as ``/case show`` lists it."""

    at: datetime
    kind: str
    direction: str
    author: str
    text: str


@dataclass(frozen=True, slots=True)
class CaseListing:
    """``/case list``: the user's open cases, and the unowned ones of their queues."""

    agent: str
    mine: tuple[Case, ...]
    waiting: tuple[Case, ...]
    queues: tuple[str, ...]
    #: Agent id -> how to show them (``<@U…>`` or their name).
    people: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseDetails:
    """``/case show``: the case and its latest activities."""

    case: Case
    activities: tuple[ActivityLine, ...]
    #: Agent id -> how to show them (``<@U…>`` or their name).
    people: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseDocument:
    """``/case document``: the case's customer-facing document, ready to upload."""

    number: str
    filename: str
    title: str
    content: bytes


@dataclass(frozen=True, slots=True)
class EditChoices:
    """What the Edit (reclassify) form offers: the case as it is, the accounts and policies."""

    case: Case
    #: (account id, name) of every account.
    accounts: tuple[tuple[str, str], ...]
    sla_policies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EscalationChoices:
    """What the Escalate form offers for a case: the levels above its own, and the teams."""

    number: str
    #: The case's support level, as shown (``L1``, or ``level 1`` when levels have no names).
    current: str
    #: The names of the levels it can go to, nearest first (empty: levels are not named).
    levels: tuple[str, ...]
    #: (team id, team name) of every team.
    teams: tuple[tuple[str, str], ...]


class AgentActions(Protocol):
    """The agent actions; each takes the acting Slack user id and checks it is an agent."""

    async def whoami(self, slack_user: str) -> str:
        """The agent id of a Slack user; raises AgentRefused."""
        ...

    async def pick(self, slack_user: str, number: str, *, force: bool = False) -> ActionResult:
        """Work the case; another agent's case only with ``force`` (raises PickedByOther)."""
        ...

    async def release(self, slack_user: str, number: str) -> ActionResult: ...

    async def resolve(
        self,
        slack_user: str,
        number: str,
        resolution: str,
        *,
        open_activities: OpenActivityPolicy = "fail",
    ) -> ActionResult:
        """Resolve the case; its open activities are completed, cancelled, or (``fail``) the
        resolve is refused with the reason."""
        ...

    async def escalate(
        self,
        slack_user: str,
        number: str,
        *,
        level: str | None = None,
        team: str | None = None,
        assignee: str | None = None,
        reason: str | None = None,
    ) -> ActionResult:
        """Raise the support level (to ``level``, else the next); ``assignee`` is a Slack
        user id."""
        ...

    async def escalation_choices(self, slack_user: str, number: str) -> EscalationChoices: ...

    async def edit_choices(self, slack_user: str, number: str) -> EditChoices: ...

    async def edit(
        self, slack_user: str, number: str, values: Mapping[str, str | None]
    ) -> ActionResult:
        """Reclassify the case: ``values`` are the form's fields (the unchanged ones ignored)."""
        ...

    async def link(self, slack_user: str, number: str, parent: str) -> ActionResult: ...

    async def unlink(self, slack_user: str, number: str) -> ActionResult: ...

    async def merge(self, slack_user: str, number: str, into: str) -> ActionResult: ...

    async def close(self, slack_user: str, number: str) -> ActionResult: ...

    async def assign(self, slack_user: str, number: str, assignee: str) -> ActionResult:
        """Give the case to ``assignee`` (a Slack user id)."""
        ...

    async def reply(
        self,
        slack_user: str,
        number: str,
        text: str,
        *,
        source: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> ActionResult:
        """Answer the customer through the channel the case came from.

        ``source`` (``channel:ts`` of the agent's Slack message) makes it happen once only,
        however often Slack delivers that message. ``attachments`` (the message's files) go
        with an answer by email; the result's message says what became of them.
        """
        ...

    async def note(
        self, slack_user: str, number: str, text: str, *, source: str | None = None
    ) -> ActionResult:
        """An internal note: it never reaches the customer (``source`` as for reply)."""
        ...

    async def open_activity_count(self, slack_user: str, number: str) -> int:
        """How many open activities would keep the case from being resolved."""
        ...

    async def log_call(
        self,
        slack_user: str,
        number: str,
        direction: str,
        text: str,
        *,
        spent_minutes: int | None = None,
    ) -> ActionResult:
        """A phone call with the customer (``direction`` ``in`` or ``out``), logged as done,
        with the minutes it took if given."""
        ...

    async def add_task(
        self,
        slack_user: str,
        number: str,
        subject: str,
        *,
        due: datetime | None = None,
        assignee: str | None = None,
        spent_minutes: int | None = None,
    ) -> ActionResult:
        """An open task on the case, due by ``due``, for ``assignee`` (a Slack user id), with
        the minutes already spent on it if given."""
        ...

    async def settle_activity(
        self, slack_user: str, number: str, activity_id: int, *, complete: bool
    ) -> ActionResult:
        """Complete (or cancel) an open activity of the case."""
        ...

    async def card_case(self, channel: str, ts: str) -> str | None:
        """The number of the case whose card is the message ``ts`` in ``channel``, if any."""
        ...

    async def message_case(self, channel: str, ts: str) -> str | None:
        """The case a message belongs to: a card's thread or a customer's Slack thread."""
        ...

    async def list_cases(self, slack_user: str, channel: str | None = None) -> CaseListing: ...

    async def show(self, slack_user: str, number: str) -> CaseDetails: ...

    async def document(self, slack_user: str, number: str) -> CaseDocument:
        """The case's customer-facing document as a PDF (no internal notes)."""
        ...
