"""The routing engine: compiled rules in, a routing decision out. Pure, no I/O.

Owns :class:`ThreadFacts` (what the caller knows about the thread), :class:`RoutingDecision`,
the compiled rule set (:class:`CompiledRules`), :func:`evaluate` and :func:`explain` (the same
evaluation, with the reasons), and :func:`format_explanation` for ``inbox-daemon rules
explain``.

How a decision is merged:

* Rules are tried in file order. A rule whose conditions hold *fires*: its name is added to
  ``rules_fired``. If it has ``stop: true`` (the default) no later rule is tried.
* For single-valued fields (queue, team, user, strategy, priority, category, reason, sla,
  status, skip_acknowledgement, automatic_mail) the first rule that fires and sets the field
  wins; later firing rules only fill fields that are still unset.
* ``tags`` accumulate over every firing rule (in order, without duplicates); so do ``note``
  texts, into ``notes``.
* Then ``default`` acts as a last rule that always fires: it fills the fields still unset and
  adds its tags and note. It is not listed in ``rules_fired``.
* Finally, the team is taken from the chosen queue's owning team when still unset, and the
  priority from the queue's ``default_priority`` when still unset and the message starts a new
  case (``ThreadFacts.current_priority is None``). A field left None means "no change".
* The ``priority`` condition sees the priority set by an earlier firing rule, else the case's
  current priority.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from inbox_daemon.cases.directory import AssignmentStrategy
from inbox_daemon.cases.enums import AutomaticMail, Priority, Status
from inbox_daemon.messages import InboundMessage
from inbox_daemon.router.conditions import Condition, ConditionTrace, MessageView

__all__ = [
    "Actions",
    "CompiledRule",
    "CompiledRules",
    "Explanation",
    "RoutingDecision",
    "RuleTrace",
    "ThreadFacts",
    "evaluate",
    "explain",
    "format_explanation",
]


@dataclass(frozen=True, slots=True)
class ThreadFacts:
    """What the caller knows about the thread the message belongs to."""

    is_reply: bool = False
    is_reopen: bool = False
    customer_has_open_cases: bool = False
    #: The case's priority; None when the message starts a new case.
    current_priority: Priority | None = None
    #: The sender's account (None: an implicit contact) and its tier.
    account: str | None = None
    tier: str | None = None
    #: ``ok`` or ``exhausted`` for an account with an entitlement, else None.
    entitlement: str | None = None


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Where a message goes and what happens to its case; None fields mean "no change"."""

    queue: str | None = None
    team: str | None = None
    user: str | None = None
    #: Overrides the team's assignment strategy when set.
    strategy: AssignmentStrategy | None = None
    priority: Priority | None = None
    category: str | None = None
    reason: str | None = None
    tags: tuple[str, ...] = ()
    sla: str | None = None
    status: Status | None = None
    notes: tuple[str, ...] = ()
    skip_acknowledgement: bool = False
    #: What becomes of automatic mail answering none of our messages (None: record it).
    automatic_mail: AutomaticMail | None = None
    #: The name of every rule that fired, in order (for the audit log and ``rules explain``).
    rules_fired: tuple[str, ...] = ()
    #: A short hash of the rules file the decision came from.
    rules_version: str = ""


#: The single-valued fields of a decision that rules set, in display order.
SCALAR_FIELDS = (
    "queue",
    "team",
    "user",
    "strategy",
    "priority",
    "category",
    "reason",
    "sla",
    "status",
    "skip_acknowledgement",
    "automatic_mail",
)


#: The single-valued fields an :class:`Actions` sets, as (field, value).
Settings = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class Actions:
    """What a rule's ``then`` (or the ``default``) sets."""

    queue: str | None = None
    team: str | None = None
    user: str | None = None
    strategy: AssignmentStrategy | None = None
    priority: Priority | None = None
    category: str | None = None
    reason: str | None = None
    tags: tuple[str, ...] = ()
    sla: str | None = None
    status: Status | None = None
    note: str | None = None
    skip_acknowledgement: bool | None = None
    automatic_mail: AutomaticMail | None = None

    def settings(self) -> Settings:
        """The single-valued fields that are set, as (field, value)."""
        pairs = ((name, getattr(self, name)) for name in SCALAR_FIELDS)
        return tuple((name, value) for name, value in pairs if value is not None)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    name: str
    condition: Condition
    actions: Actions
    stop: bool = True
    #: Where the rule starts in the file.
    line: int = 0
    settings: Settings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", self.actions.settings())


@dataclass(frozen=True, slots=True)
class CompiledRules:
    """A rule set ready to evaluate: rules in order, the default and what queues imply."""

    rules: tuple[CompiledRule, ...] = ()
    default: Actions = field(default_factory=Actions)
    version: str = ""
    #: Queue id -> owning team (None if the queue has no team).
    queue_teams: Mapping[str, str | None] = field(default_factory=dict)
    #: Queue id -> the priority of a new case in the queue.
    queue_priorities: Mapping[str, Priority] = field(default_factory=dict)
    #: Names of rules with ``enabled: false`` (kept for explanations).
    disabled: tuple[str, ...] = ()
    default_settings: Settings = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "default_settings", self.default.settings())


class _Merge:
    """Accumulates a decision from firing rules (see the module docstring)."""

    __slots__ = ("fired", "notes", "sources", "tags", "values", "view")

    def __init__(self, view: MessageView) -> None:
        self.view = view
        self.values: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.tags: dict[str, None] = {}
        self.notes: list[str] = []
        self.fired: list[str] = []

    def add(self, settings: Settings, actions: Actions, source: str) -> None:
        values = self.values
        for name, value in settings:
            if name not in values:
                values[name] = value
                self.sources[name] = source
                if name == "priority":
                    self.view.priority = value
        for tag in actions.tags:
            self.tags.setdefault(tag, None)
        if actions.note is not None:
            self.notes.append(actions.note)

    def fire(self, rule: CompiledRule) -> None:
        self.fired.append(rule.name)
        self.add(rule.settings, rule.actions, rule.name)

    def finish(self, rules: CompiledRules, facts: ThreadFacts) -> RoutingDecision:
        self.add(rules.default_settings, rules.default, "default")
        values = self.values
        queue = values.get("queue")
        if isinstance(queue, str):
            team = rules.queue_teams.get(queue)
            if "team" not in values and team is not None:
                values["team"] = team
                self.sources["team"] = f"queue {queue!r}"
            priority = rules.queue_priorities.get(queue)
            if "priority" not in values and facts.current_priority is None and priority:
                values["priority"] = priority
                self.sources["priority"] = f"queue {queue!r}"
        return RoutingDecision(
            tags=tuple(self.tags),
            notes=tuple(self.notes),
            rules_fired=tuple(self.fired),
            rules_version=rules.version,
            **values,
        )


def evaluate(
    rules: CompiledRules, message: InboundMessage, facts: ThreadFacts, now: datetime
) -> RoutingDecision:
    """Route ``message``. ``now`` (timezone-aware) is the time business hours are checked at."""
    view = MessageView(message, facts, now)
    merge = _Merge(view)
    for rule in rules.rules:
        if rule.condition.test(view):
            merge.fire(rule)
            if rule.stop:
                break
    return merge.finish(rules, facts)


# -- explanations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """One rule in an explanation.

    ``matched``: its conditions held. ``fired``: it matched and was reached (no earlier rule
    had stopped the search), so its actions were applied. ``stopped_by`` names that earlier
    rule for a rule that was not reached.
    """

    name: str
    line: int
    stop: bool
    matched: bool
    fired: bool
    condition: ConditionTrace
    stopped_by: str | None = None


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why a message was routed as it was: every rule's trace, the decision, where each field
    of the decision came from (a rule name, ``default`` or ``queue 'x'``)."""

    rules: tuple[RuleTrace, ...]
    decision: RoutingDecision
    sources: Mapping[str, str]
    disabled: tuple[str, ...] = ()


def explain(
    rules: CompiledRules, message: InboundMessage, facts: ThreadFacts, now: datetime
) -> Explanation:
    """Evaluate every rule (also those after a stop) and say why each matched or not.

    The decision is the one :func:`evaluate` returns. Rules after the stopping rule are
    evaluated with the state as it was when the search stopped.
    """
    view = MessageView(message, facts, now)
    merge = _Merge(view)
    stopped_by: str | None = None
    traces: list[RuleTrace] = []
    for rule in rules.rules:
        trace = rule.condition.explain(view)
        fired = trace.held and stopped_by is None
        traces.append(
            RuleTrace(
                name=rule.name,
                line=rule.line,
                stop=rule.stop,
                matched=trace.held,
                fired=fired,
                condition=trace,
                stopped_by=stopped_by,
            )
        )
        if fired:
            merge.fire(rule)
            if rule.stop:
                stopped_by = rule.name
    decision = merge.finish(rules, facts)
    return Explanation(tuple(traces), decision, dict(merge.sources), rules.disabled)


def format_explanation(explanation: Explanation) -> str:
    """The explanation as indented text for the CLI."""
    lines: list[str] = []
    decision = explanation.decision
    lines.append(f"rules version {decision.rules_version or '?'}")
    for rule in explanation.rules:
        if rule.fired:
            state = "FIRED, stop" if rule.stop else "FIRED, continue"
        elif rule.matched:
            state = f"matched, not reached: {rule.stopped_by!r} stopped the search"
        else:
            state = "no match"
        where = f" (line {rule.line})" if rule.line else ""
        lines.append(f"{'*' if rule.fired else '-'} rule {rule.name!r}{where}: {state}")
        _condition_lines(rule.condition, 1, lines)
    for name in explanation.disabled:
        lines.append(f"- rule {name!r}: disabled")
    lines.append("decision:")
    for name in (f.name for f in fields(RoutingDecision)):
        value = getattr(decision, name)
        if name in ("rules_version",) or value in (None, (), False):
            continue
        shown = ", ".join(value) if isinstance(value, tuple) else str(value)
        source = explanation.sources.get(name)
        lines.append(f"  {name}: {shown}" + (f"  (from {source})" if source else ""))
    if not decision.rules_fired:
        lines.append("  (no rule fired)")
    return "\n".join(lines)


_GROUPS = frozenset({"all", "any", "not", "always"})


def _condition_lines(trace: ConditionTrace, depth: int, lines: list[str]) -> None:
    mark = "[yes]" if trace.held else "[no] "
    text = f"{trace.label}: {trace.reason}" if trace.label in _GROUPS else trace.reason
    lines.append(f"{'    ' * depth}{mark} {text}")
    for child in trace.children:
        _condition_lines(child, depth + 1, lines)
