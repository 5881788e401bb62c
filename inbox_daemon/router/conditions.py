"""Compiled rule conditions: the base class, facts about the message and thread, combinators.

Owns :class:`Condition` (a fast :meth:`Condition.test` and an :meth:`Condition.explain` that
says why it held or not; the two always agree), :class:`MessageView` (the per-message values
conditions read, computed once per message: lower-cased subject and body, word sets, recipient
addresses), the conditions on channel, mailbox, thread facts, the sender's account, tier and
entitlement, priority, attachments and business hours, and ``all`` / ``any`` / ``not``. Text
and address matching lives in :mod:`inbox_daemon.router.matchers`. Everything here is pure:
``now`` is passed in.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Protocol

from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.enums import Priority
from inbox_daemon.messages import Address, Attachment, InboundMessage
from inbox_daemon.router.prefilter import fold

__all__ = [
    "AccountIs",
    "AllOf",
    "Always",
    "AnyOf",
    "BusinessHours",
    "ChannelIs",
    "Condition",
    "ConditionTrace",
    "EntitlementIs",
    "FactIs",
    "HasAttachment",
    "MailboxIs",
    "MessageView",
    "Not",
    "PriorityIn",
    "SlackChannelIs",
    "TierIs",
    "fmt_list",
]

_WORD = re.compile(r"\w+")


class MessageView:
    """The values conditions read from one message, each computed at most once.

    ``subject_lower`` and ``body_lower`` are lower-cased with :func:`~inbox_daemon.router.
    prefilter.fold` (so that case-insensitive regex prefilters can use them too).

    ``priority`` starts as the case's current priority and follows what earlier rules decided
    during one evaluation (so a later rule can test a priority an earlier one set).
    """

    def __init__(self, message: InboundMessage, facts: ThreadFactsLike, now: datetime) -> None:
        self.message = message
        self.facts = facts
        self.now = now
        self.priority: Priority | None = facts.current_priority
        self.sender = (message.sender.email or "").lower()
        self.sender_slack = (message.sender.slack_user or "").lower()
        self.domain = self.sender.rpartition("@")[2] if "@" in self.sender else ""
        self.subject = message.subject
        self.body = message.text
        self.subject_lower = fold(message.subject)
        self.open_at: dict[int, bool] = {}

    @cached_property
    def body_lower(self) -> str:
        return fold(self.body)

    @cached_property
    def subject_words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.subject_lower))

    @cached_property
    def body_words(self) -> frozenset[str]:
        return frozenset(_WORD.findall(self.body_lower))

    @cached_property
    def to(self) -> tuple[str, ...]:
        return _addresses(self.message.to)

    @cached_property
    def cc(self) -> tuple[str, ...]:
        return _addresses(self.message.cc)

    @cached_property
    def attachments(self) -> tuple[Attachment, ...]:
        """The attachments a person attached: inline parts (signature logos) do not count."""
        return tuple(a for a in self.message.attachments if not a.inline)

    @cached_property
    def attachment_types(self) -> tuple[str, ...]:
        return tuple(a.content_type.lower() for a in self.attachments)


class ThreadFactsLike(Protocol):
    """What :class:`MessageView` needs of :class:`~inbox_daemon.router.engine.ThreadFacts`."""

    @property
    def is_reply(self) -> bool: ...
    @property
    def is_reopen(self) -> bool: ...
    @property
    def customer_has_open_cases(self) -> bool: ...
    @property
    def current_priority(self) -> Priority | None: ...
    @property
    def account(self) -> str | None: ...
    @property
    def tier(self) -> str | None: ...
    @property
    def entitlement(self) -> str | None: ...


def _addresses(items: Iterable[Address]) -> tuple[str, ...]:
    return tuple((a.email or a.slack_user or "").lower() for a in items)


@dataclass(frozen=True, slots=True)
class ConditionTrace:
    """Whether one condition held for a message, why, and the traces of its parts."""

    label: str
    held: bool
    reason: str
    children: tuple[ConditionTrace, ...] = ()


def fmt_list(items: Iterable[object]) -> str:
    return "[" + ", ".join(str(i) for i in items) + "]"


class Condition(abc.ABC):
    """A compiled condition. ``cost`` orders the parts of ``all``/``any``: cheap ones first."""

    __slots__ = ()
    cost = 1
    label = "?"

    @abc.abstractmethod
    def test(self, view: MessageView) -> bool:
        """True when the condition holds for the message."""

    @abc.abstractmethod
    def explain(self, view: MessageView) -> ConditionTrace:
        """Whether the condition holds and why; ``held`` equals :meth:`test`."""

    def _trace(self, held: bool, reason: str) -> ConditionTrace:
        return ConditionTrace(self.label, held, reason)


# -- message and thread facts -----------------------------------------------------------------


class _InSet(Condition):
    __slots__ = ("values",)

    def __init__(self, values: Iterable[str]) -> None:
        self.values = frozenset(values)

    @abc.abstractmethod
    def value(self, view: MessageView) -> str | None: ...

    def test(self, view: MessageView) -> bool:
        return self.value(view) in self.values

    def explain(self, view: MessageView) -> ConditionTrace:
        value = self.value(view)
        held = value in self.values
        shown = "none" if value is None else repr(str(value))
        verb = "in" if held else "not in"
        return self._trace(held, f"{self.label} {shown} {verb} {fmt_list(sorted(self.values))}")


class ChannelIs(_InSet):
    __slots__ = ()
    label = "channel"

    def value(self, view: MessageView) -> str | None:
        return str(view.message.channel)


class MailboxIs(_InSet):
    __slots__ = ()
    label = "mailbox"

    def value(self, view: MessageView) -> str | None:
        return view.message.mailbox


class SlackChannelIs(_InSet):
    __slots__ = ()
    label = "slack_channel"

    def value(self, view: MessageView) -> str | None:
        return view.message.slack_channel


class AccountIs(_InSet):
    """The sender's account is one of these (an implicit contact has none)."""

    __slots__ = ()
    label = "account"

    def value(self, view: MessageView) -> str | None:
        return view.facts.account


class TierIs(_InSet):
    __slots__ = ()
    label = "tier"

    def value(self, view: MessageView) -> str | None:
        return view.facts.tier


class EntitlementIs(_InSet):
    """The account's entitlement is ``ok`` or ``exhausted`` (no entitlement: neither)."""

    __slots__ = ()
    label = "entitlement"

    def value(self, view: MessageView) -> str | None:
        return view.facts.entitlement


class PriorityIn(Condition):
    __slots__ = ("values",)
    label = "priority"

    def __init__(self, values: Iterable[Priority]) -> None:
        self.values = frozenset(values)

    def test(self, view: MessageView) -> bool:
        return view.priority in self.values

    def explain(self, view: MessageView) -> ConditionTrace:
        shown = sorted(p.value for p in self.values)
        if view.priority is None:
            return self._trace(False, f"priority is not set, expected one of {fmt_list(shown)}")
        held = view.priority in self.values
        verb = "in" if held else "not in"
        return self._trace(held, f"priority {view.priority.value!r} {verb} {fmt_list(shown)}")


class FactIs(Condition):
    """``is_reply``, ``is_reopen`` or ``customer_has_open_cases`` equals ``expected``."""

    __slots__ = ("expected", "fact", "label")

    def __init__(self, fact: str, expected: bool) -> None:
        self.fact = fact
        self.label = fact
        self.expected = expected

    def test(self, view: MessageView) -> bool:
        return bool(getattr(view.facts, self.fact)) is self.expected

    def explain(self, view: MessageView) -> ConditionTrace:
        actual = bool(getattr(view.facts, self.fact))
        held = actual is self.expected
        reason = f"{self.fact} is {str(actual).lower()}"
        if not held:
            reason += f", expected {str(self.expected).lower()}"
        return self._trace(held, reason)


class IsAutomatic(Condition):
    """The message is (``expected=True``) or is not automatic by its headers: an auto-reply,
    a bounce or mailing-list mail."""

    __slots__ = ("expected",)
    label = "automatic"

    def __init__(self, expected: bool) -> None:
        self.expected = expected

    def test(self, view: MessageView) -> bool:
        return view.message.flags.automatic is self.expected

    def explain(self, view: MessageView) -> ConditionTrace:
        actual = view.message.flags.automatic
        reason = f"automatic is {str(actual).lower()}"
        if actual is not self.expected:
            reason += f", expected {str(self.expected).lower()}"
        return self._trace(actual is self.expected, reason)


class HasAttachment(Condition):
    __slots__ = ("expected",)
    label = "has_attachment"

    def __init__(self, expected: bool) -> None:
        self.expected = expected

    def test(self, view: MessageView) -> bool:
        return bool(view.attachments) is self.expected

    def explain(self, view: MessageView) -> ConditionTrace:
        count = len(view.attachments)
        held = (count > 0) is self.expected
        want = "at least one" if self.expected else "none"
        return self._trace(held, f"message has {count} attachment(s), expected {want}")


# -- time --------------------------------------------------------------------------------------


class BusinessHours(Condition):
    """``now`` is (``expected=True``) or is not within the calendar's open hours."""

    __slots__ = ("calendar", "calendar_name", "expected")
    label = "business_hours"
    cost = 7

    def __init__(self, calendar: BusinessCalendar, calendar_name: str, expected: bool) -> None:
        self.calendar = calendar
        self.calendar_name = calendar_name
        self.expected = expected

    def _open(self, view: MessageView) -> bool:
        key = id(self.calendar)
        found = view.open_at.get(key)
        if found is None:
            found = view.open_at[key] = self.calendar.is_open(view.now)
        return found

    def test(self, view: MessageView) -> bool:
        return self._open(view) is self.expected

    def explain(self, view: MessageView) -> ConditionTrace:
        is_open = self._open(view)
        state = "within" if is_open else "outside"
        when = view.now.isoformat(timespec="minutes")
        reason = f"{when} is {state} the open hours of calendar {self.calendar_name!r}"
        held = is_open is self.expected
        if not held:
            reason += f", expected {'open' if self.expected else 'closed'}"
        return self._trace(held, reason)


# -- combinators -------------------------------------------------------------------------------


class Always(Condition):
    """A rule without conditions (``when: {}``): matches every message."""

    __slots__ = ()
    label = "always"

    def test(self, view: MessageView) -> bool:
        return True

    def explain(self, view: MessageView) -> ConditionTrace:
        return self._trace(True, "no conditions: matches every message")


class _Group(Condition):
    __slots__ = ("children", "cost", "fast")

    def __init__(self, children: Sequence[Condition]) -> None:
        self.children = tuple(children)
        self.fast = tuple(sorted(self.children, key=lambda c: c.cost))
        self.cost = sum(c.cost for c in self.children)


class AllOf(_Group):
    """Every part holds (``all:``, or several keys in one mapping)."""

    __slots__ = ()
    label = "all"

    def test(self, view: MessageView) -> bool:
        for child in self.fast:  # noqa: SIM110 - a plain loop is faster than all()
            if not child.test(view):
                return False
        return True

    def explain(self, view: MessageView) -> ConditionTrace:
        traces = tuple(c.explain(view) for c in self.children)
        failed = sum(not t.held for t in traces)
        reason = (
            f"all {len(traces)} conditions held"
            if not failed
            else f"{failed} of {len(traces)} conditions did not hold"
        )
        return ConditionTrace(self.label, not failed, reason, traces)


class AnyOf(_Group):
    """At least one part holds."""

    __slots__ = ()
    label = "any"

    def test(self, view: MessageView) -> bool:
        for child in self.fast:  # noqa: SIM110 - a plain loop is faster than any()
            if child.test(view):
                return True
        return False

    def explain(self, view: MessageView) -> ConditionTrace:
        traces = tuple(c.explain(view) for c in self.children)
        held = sum(t.held for t in traces)
        reason = f"{held} of {len(traces)} conditions held" if held else "no condition held"
        return ConditionTrace(self.label, held > 0, reason, traces)


class Not(Condition):
    __slots__ = ("child", "cost")
    label = "not"

    def __init__(self, child: Condition) -> None:
        self.child = child
        self.cost = child.cost

    def test(self, view: MessageView) -> bool:
        return not self.child.test(view)

    def explain(self, view: MessageView) -> ConditionTrace:
        inner = self.child.explain(view)
        reason = (
            "the condition inside did not hold" if not inner.held else "the condition inside held"
        )
        return ConditionTrace(self.label, not inner.held, reason, (inner,))
