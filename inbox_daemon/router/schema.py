"""The rules.yaml model: what each section, condition and action may contain.

Owns the pydantic v2 models of the file (``extra="forbid"`` everywhere) and
:class:`RulesErrors`, the error that carries every problem found in a file. The field types
(durations, time ranges, regexes, choices) live in :mod:`inbox_daemon.router.fields`.
Cross-references (a rule naming an unknown team) are checked in
:mod:`inbox_daemon.router.checks`; positions come from :mod:`inbox_daemon.router.source`.

Shorthands accepted on input: a single string where a list of strings is expected
(``from: "*@x.example"``), a plain string for a text condition (``subject: invoice`` means
"contains, ignoring case"), ``business_hours: true`` for ``{open: true}`` on the default
calendar, and a single string for one weekday's range list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from inbox_daemon.cases.accounts import AROUND_THE_CLOCK, Period
from inbox_daemon.cases.directory import AssignmentStrategy
from inbox_daemon.cases.enums import Priority
from inbox_daemon.errors import RulesError
from inbox_daemon.router.fields import (
    AutomaticMailChoice,
    ChannelList,
    Country,
    DayHours,
    EntitlementChoice,
    PeriodChoice,
    PriorityChoice,
    PriorityList,
    SlaDuration,
    StatusChoice,
    StrategyChoice,
    Text,
    TextList,
    TimeZone,
    WeekdayKey,
    check_flags,
    check_regex,
    describe,
    did_you_mean,
    fail,
    listify,
    non_empty_list,
    parse_duration,
    parse_time_range,
    regex_flags,
)

__all__ = [
    "SUPPORTED_VERSION",
    "AccountSpec",
    "ActionSpec",
    "AllowanceSpec",
    "BusinessHoursMatch",
    "CalendarSpec",
    "ConditionSpec",
    "DocumentSpec",
    "EntitlementSpec",
    "HeaderMatch",
    "HolidaySpec",
    "QueueSpec",
    "RuleSpec",
    "RulesErrors",
    "SlaSpec",
    "SupportLevelSpec",
    "TeamSpec",
    "TextMatch",
    "UserSpec",
    "did_you_mean",
    "parse_duration",
    "parse_time_range",
    "regex_flags",
]

SUPPORTED_VERSION = 1


class RulesErrors(RulesError):
    """Every problem found in a rules file; ``str()`` lists them one per line.

    ``file``, ``line`` and ``column`` are those of the first error.
    """

    def __init__(self, errors: Sequence[RulesError]) -> None:
        self.errors: tuple[RulesError, ...] = tuple(errors)
        super().__init__("\n".join(str(e) for e in self.errors))
        if self.errors:
            first = self.errors[0]
            self.file, self.line, self.column = first.file, first.line, first.column


# -- models --------------------------------------------------------------------------------


class Spec(BaseModel):
    """Base of every model of the file: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class UserSpec(Spec):
    """An agent. ``name`` defaults to the id."""

    id: Text
    name: Text | None = None
    email: Text | None = None
    slack_id: Text | None = None
    #: The agent's login name on the machines where they run the CLI: their default ``--as``.
    os_user: Text | None = None
    active: bool = True


class SupportLevelSpec(Spec):
    """A support level (``L1``, ``L2``…), in escalation order; ``team`` takes its cases."""

    name: Text
    team: Text | None = None
    queue: Text | None = None


class TeamSpec(Spec):
    """A team of agents; ``strategy`` picks an owner for cases routed to the team."""

    id: Text
    name: Text | None = None
    members: Annotated[list[Text], BeforeValidator(listify)] = []
    strategy: StrategyChoice = AssignmentStrategy.NONE


class QueueSpec(Spec):
    """A queue of cases, optionally owned by a team and mirrored to a Slack channel."""

    id: Text
    name: Text | None = None
    team: Text | None = None
    slack_channel: Text | None = None
    default_priority: PriorityChoice = Priority.MEDIUM


class HolidaySpec(Spec):
    """A closed day (``date``) or an inclusive range of days (``from``/``to``)."""

    name: Text
    date: dt.date | None = None
    from_: dt.date | None = Field(None, alias="from")
    to: dt.date | None = None

    @model_validator(mode="after")
    def _one_form(self) -> HolidaySpec:
        if self.date is not None:
            if self.from_ is not None or self.to is not None:
                raise fail(f"holiday {self.name!r}: give either 'date' or 'from' and 'to'")
        elif self.from_ is None or self.to is None:
            raise fail(f"holiday {self.name!r} needs 'date', or both 'from' and 'to'")
        elif self.to < self.from_:
            raise fail(f"holiday {self.name!r} ends ({self.to}) before it starts ({self.from_})")
        return self

    @property
    def first(self) -> dt.date:
        day = self.date or self.from_
        assert day is not None
        return day

    @property
    def last(self) -> dt.date:
        day = self.date or self.to
        assert day is not None
        return day

    def describe(self) -> str:
        if self.date is not None:
            return f"{self.name!r} ({self.date})"
        return f"{self.name!r} ({self.from_} to {self.to})"


class CalendarSpec(Spec):
    """Opening hours in a time zone, per weekday (missing days are closed), minus holidays."""

    timezone: TimeZone
    hours: dict[WeekdayKey, DayHours]
    country: Country | None = None
    subdiv: Text | None = None
    holidays: list[HolidaySpec] = []


class SlaSpec(Spec):
    """Targets per priority; ``business_time`` counts only the calendar's open hours."""

    first_response: dict[PriorityChoice, SlaDuration] = {}
    resolve_by: dict[PriorityChoice, SlaDuration] = {}
    business_time: bool = False
    calendar: Text | None = None

    @model_validator(mode="after")
    def _response_before_resolution(self) -> SlaSpec:
        for priority, response in self.first_response.items():
            resolve = self.resolve_by.get(priority)
            if resolve is not None and response.nominal > resolve.nominal:
                raise fail(
                    f"first_response for {priority.value} ({response}) is longer than "
                    f"resolve_by ({resolve})"
                )
        return self


class AccountSpec(Spec):
    """A customer organisation, matched by sender domain or Slack Connect team id."""

    id: Text
    name: Text | None = None
    domains: Annotated[list[Text], BeforeValidator(listify)] = []
    slack_team_ids: Annotated[list[Text], BeforeValidator(listify)] = []
    tier: Text | None = None
    entitlement: Text | None = None

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for domain in value:
            name = domain.strip().lower()
            bare = name[2:] if name.startswith("*.") else name
            if "@" in name or "*" in bare or "." not in bare.strip("."):
                raise fail(
                    f"bad domain {domain!r}: write it as 'example.com', or '*.example.com' "
                    "for every subdomain"
                )
            out.append(name)
        return out


class AllowanceSpec(Spec):
    """How many cases, or hours of work, an entitlement covers per month or year."""

    cases: int | None = None
    hours: int | None = None
    per: PeriodChoice = Period.MONTH

    @model_validator(mode="after")
    def _amount(self) -> AllowanceSpec:
        if self.hours is not None and self.cases is not None:
            raise fail("an allowance counts cases or hours, not both: give one of them")
        if self.hours is None and self.cases is None:
            raise fail("an allowance needs 'cases: N' or 'hours: N' (per month or year)")
        unit, amount = ("hours", self.hours) if self.hours is not None else ("cases", self.cases)
        if amount is not None and amount < 1:
            raise fail(f"allowance {unit} must be at least 1, got {amount}")
        return self


class EntitlementSpec(Spec):
    """The level of service of an account: terms, SLA policy, allowance."""

    id: Text
    terms: Text = AROUND_THE_CLOCK
    sla_policy: Text | None = None
    allowance: AllowanceSpec | None = None
    #: For 24x7 terms: the zone periods are counted and dates shown in.
    timezone: TimeZone | None = None


def _text_shorthand(value: object) -> object:
    if isinstance(value, str):
        return {"contains": value}
    if isinstance(value, dict):
        return value
    raise fail(
        f"expected a string or a mapping with one of contains, any, regex; got {describe(value)}"
    )


class TextMatch(Spec):
    """``contains`` (ignoring case), ``any`` (whole words, ignoring case) or ``regex``."""

    contains: Text | None = None
    any_: TextList | None = Field(None, alias="any")
    flags: str | None = None
    regex: str | None = None

    _flags = field_validator("flags")(check_flags)
    _regex = field_validator("regex")(check_regex)

    @model_validator(mode="after")
    def _exactly_one(self) -> TextMatch:
        tests = (("contains", self.contains), ("any", self.any_), ("regex", self.regex))
        given = [k for k, v in tests if v is not None]
        if len(given) != 1:
            raise fail(
                "expected exactly one of contains, any, regex"
                + (f"; got {', '.join(given)}" if given else "")
            )
        if self.flags is not None and self.regex is None:
            raise fail("'flags' only applies to 'regex'")
        return self


TextCondition = Annotated[TextMatch, BeforeValidator(_text_shorthand)]


class HeaderMatch(Spec):
    """A header (name case-insensitive): ``present``, ``equals`` (ignoring case) or ``regex``."""

    name: Text
    present: bool | None = None
    equals: str | None = None
    flags: str | None = None
    regex: str | None = None

    _flags = field_validator("flags")(check_flags)
    _regex = field_validator("regex")(check_regex)

    @model_validator(mode="after")
    def _exactly_one(self) -> HeaderMatch:
        tests = (("present", self.present), ("equals", self.equals), ("regex", self.regex))
        given = [k for k, v in tests if v is not None]
        if len(given) != 1:
            raise fail(
                f"header {self.name!r}: expected exactly one of present, equals, regex"
                + (f"; got {', '.join(given)}" if given else "")
            )
        if self.flags is not None and self.regex is None:
            raise fail("'flags' only applies to 'regex'")
        return self


def _hours_shorthand(value: object) -> object:
    if isinstance(value, bool):
        return {"open": value}
    if isinstance(value, dict):
        return value
    raise fail(
        f"expected true, false or a mapping {{open: true, calendar: NAME}}; got {describe(value)}"
    )


class BusinessHoursMatch(Spec):
    """Whether ``now`` is within a calendar's open hours (the default calendar if unnamed)."""

    open: bool = True
    calendar: Text | None = None


class ConditionSpec(Spec):
    """One mapping of conditions; all of its keys must hold. ``{}`` holds for every message."""

    channel: ChannelList | None = None
    mailbox: TextList | None = None
    from_: TextList | None = Field(None, alias="from")
    from_domain: TextList | None = None
    to: TextList | None = None
    cc: TextList | None = None
    subject: TextCondition | None = None
    body: TextCondition | None = None
    header: HeaderMatch | None = None
    has_attachment: bool | None = None
    automatic: bool | None = None
    attachment_type: TextList | None = None
    slack_channel: TextList | None = None
    customer_has_open_cases: bool | None = None
    is_reply: bool | None = None
    is_reopen: bool | None = None
    priority: PriorityList | None = None
    account: TextList | None = None
    tier: TextList | None = None
    entitlement: EntitlementChoice | None = None
    business_hours: Annotated[BusinessHoursMatch, BeforeValidator(_hours_shorthand)] | None = None
    all_: Annotated[list[ConditionSpec], AfterValidator(non_empty_list)] | None = Field(
        None, alias="all"
    )
    any_: Annotated[list[ConditionSpec], AfterValidator(non_empty_list)] | None = Field(
        None, alias="any"
    )
    not_: ConditionSpec | None = Field(None, alias="not")

    def given(self) -> list[tuple[str, Any]]:
        """The conditions that are set, as (key in the file, value), in declaration order."""
        out: list[tuple[str, Any]] = []
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if value is not None:
                out.append((info.alias or name, value))
        return out


ConditionSpec.model_rebuild()


class ActionSpec(Spec):
    """What a rule (or the default) decides. Every field is optional."""

    queue: Text | None = None
    team: Text | None = None
    user: Text | None = None
    strategy: StrategyChoice | None = None
    priority: PriorityChoice | None = None
    category: Text | None = None
    reason: Text | None = None
    tags: Annotated[list[Text], BeforeValidator(listify)] = []
    sla: Text | None = None
    status: StatusChoice | None = None
    note: Text | None = None
    skip_acknowledgement: bool | None = None
    automatic_mail: AutomaticMailChoice | None = None


class RuleSpec(Spec):
    """A named rule: when its conditions hold, its actions apply; ``stop`` ends the search."""

    name: Text
    description: str | None = None
    enabled: bool = True
    when: ConditionSpec
    then: ActionSpec
    stop: bool = True


class DocumentSpec(Spec):
    """The shape of the whole file; sections are validated item by item afterwards."""

    version: Any = None
    users: list[Any] = []
    teams: list[Any] = []
    queues: list[Any] = []
    support_levels: list[Any] = []
    business_hours: dict[str, Any] = {}
    holidays: list[Any] = []
    sla: dict[str, Any] = {}
    accounts: list[Any] = []
    entitlements: list[Any] = []
    rules: list[Any] = []
    default: dict[str, Any] | None = None
