"""The registry of channel kinds: the only place that knows which kinds exist.

The channel-agnostic floor (intake, the case service, acknowledgements, the outbox) asks a
message's or an activity's kind what it needs to know — which activity kind it makes, the
origin of a case it opens, whether a new case from it is acknowledged, how the customer is
addressed through it, whether an answer needs a conversation to go into — instead of branching
on names, and the router checks a rule's ``channel:`` condition against it. A leaf, below the
router and the channels, so both can ask it. A new channel kind registers one
:class:`ChannelKindSpec` (:func:`register`) and its sender, and needs no edit elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from inbox_daemon.cases.enums import ActivityKind, Origin
from inbox_daemon.messages import Address, ChannelKind

__all__ = ["ChannelKindSpec", "UnknownChannelKind", "kind_of", "kinds", "register", "unregister"]


class UnknownChannelKind(LookupError):
    """A message or an activity names a channel kind nobody registered."""


@dataclass(frozen=True)
class ChannelKindSpec:
    """What the floor needs to know of one channel kind."""

    name: str
    #: The activity a message of this kind makes (in or out).
    activity_kind: ActivityKind
    #: The origin of a case a message of this kind opens.
    origin: Origin
    #: The case's contact field the customer is reached by: their email address or Slack user.
    contact: Literal["email", "slack"]
    #: Whether a new case from this kind is acknowledged automatically (with its number).
    acknowledges: bool = False
    #: Whether an answer goes into the conversation of the customer's last message (a Slack
    #: thread) and cannot be sent without one.
    needs_conversation: bool = False
    #: Whether the id the channel gives a sent message is kept: replies in its thread name it.
    keeps_sent_id: bool = False
    #: Whether an answer's files go with it (else they stay where the agent posted them).
    carries_files: bool = False

    def address(self, recipient: str, name: str = "") -> Address:
        """A recipient as the channel addresses it."""
        if self.contact == "slack":
            return Address(slack_user=recipient)
        return Address(email=recipient, name=name)


_KINDS: dict[str, ChannelKindSpec] = {}


def register(spec: ChannelKindSpec) -> ChannelKindSpec:
    """Make a kind known (again: the later spec wins, as a test's does)."""
    _KINDS[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    _KINDS.pop(name, None)


def kind_of(name: str | None) -> ChannelKindSpec:
    """The spec of a kind by its name; :class:`UnknownChannelKind` if none is registered."""
    spec = _KINDS.get(name or "")
    if spec is None:
        known = ", ".join(sorted(_KINDS))
        raise UnknownChannelKind(f"unknown channel kind {name!r} (known: {known})")
    return spec


def kinds() -> Iterator[ChannelKindSpec]:
    return iter(list(_KINDS.values()))


EMAIL = register(
    ChannelKindSpec(
        ChannelKind.EMAIL.value,
        ActivityKind.EMAIL,
        Origin.EMAIL,
        contact="email",
        acknowledges=True,
        carries_files=True,
    )
)
SLACK = register(
    ChannelKindSpec(
        ChannelKind.SLACK.value,
        ActivityKind.SLACK_MESSAGE,
        Origin.SLACK,
        contact="slack",
        needs_conversation=True,
        keeps_sent_id=True,
    )
)
