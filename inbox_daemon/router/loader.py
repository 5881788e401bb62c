"""Loads rules.yaml: text in, a ready rule set (or every error in the file) out.

Owns the load pipeline (parse with positions → validate against the schema → cross-checks →
build the :class:`Directory`, the :class:`AccountBook`, business calendars and SLA policies →
compile the rules),
:class:`LoadedRules`, the one-line :func:`summary` for ``inbox-daemon rules check``, and
:func:`check_queue_removal` for reloads. Reading the file is the router's only I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from zoneinfo import ZoneInfo

from inbox_daemon.cases.accounts import (
    AROUND_THE_CLOCK,
    Account,
    AccountBook,
    Allowance,
    AllowanceUnit,
    Entitlement,
)
from inbox_daemon.cases.directory import Directory, Queue, SupportLevel, Team, User
from inbox_daemon.cases.sla import BusinessCalendar, SlaPolicy
from inbox_daemon.errors import RulesError
from inbox_daemon.router.checks import check_document, default_calendar
from inbox_daemon.router.compiler import compile_rules
from inbox_daemon.router.engine import Actions, CompiledRules
from inbox_daemon.router.schema import (
    AllowanceSpec,
    CalendarSpec,
    EntitlementSpec,
    HolidaySpec,
    RulesErrors,
)
from inbox_daemon.router.source import SourceMap, parse_yaml
from inbox_daemon.router.validate import Document, validate_document

__all__ = [
    "LoadedRules",
    "check_queue_removal",
    "load_rules",
    "load_rules_text",
    "rules_version",
    "summary",
]


@dataclass(frozen=True)
class LoadedRules:
    """Everything rules.yaml defines, validated and compiled."""

    #: The file it came from, as given to the loader.
    source: str
    #: A short hash of the file's content; decisions carry it for the audit log.
    version: str
    directory: Directory
    rules: CompiledRules
    #: SLA policies by name.
    sla: Mapping[str, SlaPolicy] = field(default_factory=dict)
    #: Business calendars by name.
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)
    #: The calendar used where none is named (``default``, or the only one), if any.
    default_calendar: str | None = None
    #: SLA policy name -> the calendar it counts business time in (None: around the clock).
    sla_calendars: Mapping[str, str | None] = field(default_factory=dict)
    #: Line and column of the ``queues`` key (or of the document), for reload errors.
    queues_at: tuple[int, int] = (1, 1)
    #: Customer accounts and their entitlements.
    accounts: AccountBook = field(default_factory=AccountBook)

    @property
    def default(self) -> Actions:
        """The ``default`` decision."""
        return self.rules.default

    def calendar_for(self, policy: str) -> BusinessCalendar:
        """The calendar SLA ``policy`` counts in; always open for calendar-time policies."""
        name = self.sla_calendars.get(policy)
        return self.calendars[name] if name is not None else BusinessCalendar.always()

    def policy_for(self, policy: str | None, account: str | None) -> str | None:
        """The SLA policy a case of ``account`` is counted by: its entitlement's, if it names
        one, else ``policy`` (what the rules decided) when that exists."""
        entitlement = self.accounts.entitlement_of(account)
        if entitlement is not None and entitlement.sla_policy is not None:
            return entitlement.sla_policy
        return policy if policy in self.sla else None

    def sla_of(
        self, policy: str | None, account: str | None = None
    ) -> tuple[SlaPolicy, BusinessCalendar] | None:
        """The SLA policy (and the calendar it counts in) of a case with ``policy`` and
        ``account``. An entitlement's terms decide the calendar: ``24x7`` counts around the
        clock, a calendar counts its open hours."""
        name = self.policy_for(policy, account)
        if name is None:
            return None
        found = self.sla[name]
        entitlement = self.accounts.entitlement_of(account)
        if entitlement is None:
            return found, self.calendar_for(name)
        if entitlement.calendar is None:
            return replace(found, business_time=False), BusinessCalendar.always()
        return replace(found, business_time=True), self.calendars[entitlement.calendar]

    def zone_of(self, policy: str | None, account: str | None = None) -> ZoneInfo:
        """The time zone a case's due dates are shown in: its entitlement's, else that of the
        calendar its SLA counts in, else the default calendar's, else UTC."""
        entitlement = self.accounts.entitlement_of(account)
        if entitlement is not None:
            return entitlement.zone
        name = self.policy_for(policy, account)
        calendar = self.sla_calendars.get(name) if name is not None else None
        calendar = calendar or self.default_calendar
        return self.calendars[calendar].tz if calendar is not None else ZoneInfo("UTC")


def rules_version(text: str) -> str:
    """The short content hash that identifies a rules file."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def load_rules(path: Path) -> LoadedRules:
    """Load and compile the rules file at ``path``; raise :class:`RulesErrors` listing every
    problem (with file, line and column)."""
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RulesErrors(
            [RulesError(f"cannot read the rules file: {reason}", file=name)]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        error = RulesError("the file is not valid UTF-8", file=name, line=line, column=column)
        raise RulesErrors([error]) from None
    return load_rules_text(text, name)


def load_rules_text(text: str, filename: str) -> LoadedRules:
    """Load rules from ``text``; ``filename`` is used in error messages."""
    data, smap, yaml_errors = parse_yaml(text, filename)
    if data is None and yaml_errors:
        raise RulesErrors(yaml_errors)
    doc, schema_errors = validate_document(data, smap)
    errors = _merge(yaml_errors, schema_errors + check_document(doc, smap))
    if errors:
        raise RulesErrors(errors)
    return _build(doc, smap, rules_version(text))


def _merge(first: list[RulesError], rest: list[RulesError]) -> list[RulesError]:
    """All errors sorted by position; where ``first`` (YAML) already reported a position, later
    errors at that same position are dropped (a bad date is reported once, not twice)."""
    taken = {(e.line, e.column) for e in first}
    merged = first + [e for e in rest if (e.line, e.column) not in taken]
    return sorted(merged, key=lambda e: (e.line, e.column))


def _build(doc: Document, smap: SourceMap, version: str) -> LoadedRules:
    errors: list[RulesError] = []
    directory = Directory.of(
        users=(
            User(
                id=u.spec.id,
                name=u.spec.name or u.spec.id,
                email=u.spec.email,
                slack_id=u.spec.slack_id,
                active=u.spec.active,
                os_user=u.spec.os_user,
            )
            for u in doc.users
        ),
        teams=(
            Team(
                id=t.spec.id,
                name=t.spec.name or t.spec.id,
                members=tuple(t.spec.members),
                strategy=t.spec.strategy,
            )
            for t in doc.teams
        ),
        queues=(
            Queue(
                id=q.spec.id,
                name=q.spec.name or q.spec.id,
                team=q.spec.team,
                slack_channel=q.spec.slack_channel,
                default_priority=q.spec.default_priority,
            )
            for q in doc.queues
        ),
        levels=(
            SupportLevel(name=lv.spec.name, team=lv.spec.team, queue=lv.spec.queue)
            for lv in doc.support_levels
        ),
    )
    shared = [h.spec for h in doc.holidays]
    calendars: dict[str, BusinessCalendar] = {}
    for name, item in doc.calendars.items():
        try:
            calendars[name] = _calendar(item.spec, shared)
        except ValueError as exc:
            errors.append(smap.error(f"business_hours {name!r}: {exc}", item.path))
    fallback = default_calendar(list(doc.calendars))
    policies: dict[str, SlaPolicy] = {}
    policy_calendars: dict[str, str | None] = {}
    for name, sla in doc.sla.items():
        spec = sla.spec
        try:
            policies[name] = SlaPolicy(
                name=name,
                first_response=dict(spec.first_response),
                resolve_by=dict(spec.resolve_by),
                business_time=spec.business_time,
            )
        except ValueError as exc:
            errors.append(smap.error(str(exc), sla.path))
        policy_calendars[name] = (spec.calendar or fallback) if spec.business_time else None
    if errors:
        raise RulesErrors(sorted(errors, key=lambda e: (e.line, e.column)))
    zone = calendars[fallback].tz if fallback is not None else ZoneInfo("UTC")
    accounts = AccountBook.of(
        accounts=(
            Account(
                id=a.spec.id,
                name=a.spec.name or a.spec.id,
                domains=tuple(a.spec.domains),
                slack_teams=tuple(a.spec.slack_team_ids),
                tier=a.spec.tier,
                entitlement=a.spec.entitlement,
            )
            for a in doc.accounts
        ),
        entitlements=(_entitlement(e.spec, calendars, zone) for e in doc.entitlements),
    )
    rules = compile_rules(
        [(r.spec, smap.mark(r.path).line) for r in doc.rules],
        doc.default.spec if doc.default is not None else None,
        directory,
        calendars,
        fallback,
        version,
    )
    queues_at = smap.mark(("queues",), key=True)
    return LoadedRules(
        source=smap.file,
        version=version,
        directory=directory,
        rules=rules,
        sla=policies,
        calendars=calendars,
        default_calendar=fallback,
        sla_calendars=policy_calendars,
        queues_at=(queues_at.line, queues_at.column),
        accounts=accounts,
    )


def _entitlement(
    spec: EntitlementSpec, calendars: Mapping[str, BusinessCalendar], zone: ZoneInfo
) -> Entitlement:
    calendar = None if spec.terms == AROUND_THE_CLOCK else spec.terms
    if calendar is not None:
        zone = calendars[calendar].tz
    elif spec.timezone is not None:
        zone = ZoneInfo(spec.timezone)
    return Entitlement(
        id=spec.id,
        calendar=calendar,
        sla_policy=spec.sla_policy,
        allowance=_allowance(spec.allowance),
        zone=zone,
    )


def _allowance(spec: AllowanceSpec | None) -> Allowance | None:
    if spec is None:
        return None
    if spec.hours is not None:
        return Allowance(spec.hours, spec.per, AllowanceUnit.HOURS)
    assert spec.cases is not None  # the schema asks for one of them
    return Allowance(spec.cases, spec.per)


def _holiday(spec: HolidaySpec) -> dict[str, object]:
    if spec.date is not None:
        return {"name": spec.name, "date": spec.date}
    return {"name": spec.name, "from": spec.from_, "to": spec.to}


def _calendar(spec: CalendarSpec, shared: list[HolidaySpec]) -> BusinessCalendar:
    return BusinessCalendar.build(
        tz=spec.timezone,
        hours={day: list(ranges) for day, ranges in spec.hours.items()},
        holidays=[_holiday(h) for h in [*shared, *spec.holidays]],
        country=spec.country,
        subdiv=spec.subdiv,
    )


def summary(loaded: LoadedRules) -> str:
    """One line for ``inbox-daemon rules check``."""
    d = loaded.directory
    parts = [
        _count(len(d.users), "user"),
        _count(len(d.teams), "team"),
        _count(len(d.queues), "queue"),
        _count(len(loaded.rules.rules), "rule"),
    ]
    if loaded.rules.disabled:
        parts[-1] += f" ({len(loaded.rules.disabled)} disabled)"
    parts.append(_count(len(loaded.sla), "SLA policy", "SLA policies"))
    if loaded.calendars:
        parts.append(_count(len(loaded.calendars), "calendar"))
    if loaded.accounts.accounts:
        parts.append(_count(len(loaded.accounts.accounts), "account"))
    if loaded.accounts.entitlements:
        parts.append(_count(len(loaded.accounts.entitlements), "entitlement"))
    return f"{loaded.source}: OK — {', '.join(parts)}, version {loaded.version}"


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def check_queue_removal(
    old: Directory,
    new: Directory,
    queues_with_open_cases: Collection[str],
    *,
    loaded: LoadedRules | None = None,
) -> list[RulesError]:
    """Errors for queues that ``new`` drops while they still hold open cases.

    The caller says which queues have open cases. With ``loaded`` (the new rules) the errors
    point at its file's ``queues`` key.
    """
    file = loaded.source if loaded is not None else ""
    line, column = loaded.queues_at if loaded is not None else (0, 0)
    open_queues = set(queues_with_open_cases)
    return [
        RulesError(
            f"queue {queue_id!r} was removed but still has open cases; move or close them "
            "first, or keep the queue",
            file=file,
            line=line,
            column=column,
        )
        for queue_id in old.queues
        if queue_id not in new.queues and queue_id in open_queues
    ]
