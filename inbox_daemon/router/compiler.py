"""Turns validated rule specs into the engine's compiled conditions and actions, once per load.

Owns the mapping from each ``when`` key to its condition class (regexes compiled with their
flags, address lists into frozensets and one glob regex, several keys of one mapping into an
``all`` whose cheap parts run first) and from ``then`` / ``default`` to :class:`Actions`.
Assumes :mod:`inbox_daemon.router.checks` found no errors: every name it looks up exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.directory import Directory
from inbox_daemon.router.conditions import (
    AccountIs,
    AllOf,
    Always,
    AnyOf,
    BusinessHours,
    ChannelIs,
    Condition,
    EntitlementIs,
    FactIs,
    HasAttachment,
    IsAutomatic,
    MailboxIs,
    Not,
    PriorityIn,
    SlackChannelIs,
    TierIs,
)
from inbox_daemon.router.engine import Actions, CompiledRule, CompiledRules
from inbox_daemon.router.matchers import (
    AttachmentTypeIs,
    DomainIn,
    GlobSet,
    HeaderEquals,
    HeaderPresent,
    HeaderRegex,
    RecipientsMatch,
    SenderMatches,
    TextContains,
    TextRegex,
    TextWords,
)
from inbox_daemon.router.schema import (
    ActionSpec,
    BusinessHoursMatch,
    ConditionSpec,
    HeaderMatch,
    RuleSpec,
    TextMatch,
    regex_flags,
)

__all__ = ["compile_actions", "compile_condition", "compile_rules"]


class _Compiler:
    def __init__(
        self, calendars: Mapping[str, BusinessCalendar], default_calendar: str | None
    ) -> None:
        self.calendars = calendars
        self.default_calendar = default_calendar
        self.leaves: dict[str, Callable[[Any], Condition]] = {
            "channel": lambda v: ChannelIs(v),
            "mailbox": MailboxIs,
            "from": lambda v: SenderMatches(GlobSet(v)),
            "from_domain": DomainIn,
            "to": lambda v: RecipientsMatch("to", GlobSet(v)),
            "cc": lambda v: RecipientsMatch("cc", GlobSet(v)),
            "subject": lambda v: self.text("subject", v),
            "body": lambda v: self.text("body", v),
            "header": self.header,
            "has_attachment": HasAttachment,
            "automatic": IsAutomatic,
            "attachment_type": lambda v: AttachmentTypeIs(GlobSet(v)),
            "slack_channel": SlackChannelIs,
            "customer_has_open_cases": lambda v: FactIs("customer_has_open_cases", v),
            "is_reply": lambda v: FactIs("is_reply", v),
            "is_reopen": lambda v: FactIs("is_reopen", v),
            "priority": PriorityIn,
            "account": AccountIs,
            "tier": TierIs,
            "entitlement": lambda v: EntitlementIs([v.value]),
            "business_hours": self.business_hours,
            "all": lambda v: AllOf([self.condition(c) for c in v]),
            "any": lambda v: AnyOf([self.condition(c) for c in v]),
            "not": lambda v: Not(self.condition(v)),
        }

    def condition(self, spec: ConditionSpec) -> Condition:
        parts = [self.leaves[key](value) for key, value in spec.given()]
        if not parts:
            return Always()
        if len(parts) == 1:
            return parts[0]
        return AllOf(parts)

    @staticmethod
    def text(field: str, spec: TextMatch) -> Condition:
        if spec.contains is not None:
            return TextContains(field, spec.contains)
        if spec.any_ is not None:
            return TextWords(field, spec.any_)
        assert spec.regex is not None
        return TextRegex(field, re.compile(spec.regex, regex_flags(spec.flags)))

    @staticmethod
    def header(spec: HeaderMatch) -> Condition:
        if spec.present is not None:
            return HeaderPresent(spec.name, spec.present)
        if spec.equals is not None:
            return HeaderEquals(spec.name, spec.equals)
        assert spec.regex is not None
        return HeaderRegex(spec.name, re.compile(spec.regex, regex_flags(spec.flags)))

    def business_hours(self, spec: BusinessHoursMatch) -> Condition:
        name = spec.calendar or self.default_calendar
        assert name is not None, "checked: a calendar exists"
        return BusinessHours(self.calendars[name], name, spec.open)


def compile_condition(
    spec: ConditionSpec,
    calendars: Mapping[str, BusinessCalendar] | None = None,
    default_calendar: str | None = None,
) -> Condition:
    """The condition of one ``when`` mapping."""
    return _Compiler(calendars or {}, default_calendar).condition(spec)


def compile_actions(spec: ActionSpec) -> Actions:
    """The actions of one ``then`` mapping (or of ``default``)."""
    return Actions(
        queue=spec.queue,
        team=spec.team,
        user=spec.user,
        strategy=spec.strategy,
        priority=spec.priority,
        category=spec.category,
        reason=spec.reason,
        tags=tuple(dict.fromkeys(spec.tags)),
        sla=spec.sla,
        status=spec.status,
        note=spec.note,
        skip_acknowledgement=spec.skip_acknowledgement,
        automatic_mail=spec.automatic_mail,
    )


def compile_rules(
    rules: Sequence[tuple[RuleSpec, int]],
    default: ActionSpec | None,
    directory: Directory,
    calendars: Mapping[str, BusinessCalendar],
    default_calendar: str | None,
    version: str,
) -> CompiledRules:
    """The rule set: ``rules`` are (spec, line) pairs in file order."""
    compiler = _Compiler(calendars, default_calendar)
    compiled = tuple(
        CompiledRule(
            name=spec.name,
            condition=compiler.condition(spec.when),
            actions=compile_actions(spec.then),
            stop=spec.stop,
            line=line,
        )
        for spec, line in rules
        if spec.enabled
    )
    return CompiledRules(
        rules=compiled,
        default=compile_actions(default) if default is not None else Actions(),
        version=version,
        queue_teams={q.id: q.team for q in directory.queues.values()},
        queue_priorities={q.id: q.default_priority for q in directory.queues.values()},
        disabled=tuple(spec.name for spec, _ in rules if not spec.enabled),
    )
