"""Customers: accounts, their entitlements, and which account a sender belongs to.

An :class:`Account` is a customer organisation declared in rules.yaml; a contact (an email
address or a Slack user) belongs to it by the sender's email domain or Slack Connect team. A
sender no account claims is an implicit contact with no account. An :class:`Entitlement` is the
level of service an account gets (CRM24/D365): its support terms (around the clock, or the
opening hours of a named business calendar), the SLA policy its cases are counted by, and an
optional :class:`Allowance` of cases, or of support hours, per month or year.

An allowance of cases is used by each new case (a unit taken when it is created, given back
when it is cancelled); an allowance of hours by the time agents recorded on a case's activities,
charged when the case is resolved and given back when it is reactivated (D365). Either way a
case that finds the allowance used up is created all the same and flagged.

Domains: ``acme.example`` claims exactly that domain; ``*.acme.example`` claims every
subdomain of it (``eu.acme.example``, ``a.b.acme.example``) but not ``acme.example`` itself.
An exact domain wins over a wildcard, a longer wildcard over a shorter one.

Pure code, no I/O: :class:`AccountBook` is built by the router's loader and swapped whole on
a reload, like the :class:`~inbox_daemon.cases.directory.Directory`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from inbox_daemon.errors import NotFoundError

__all__ = [
    "Account",
    "AccountBook",
    "Allowance",
    "AllowanceUnit",
    "Entitlement",
    "EntitlementState",
    "Period",
    "domain_of",
    "format_hours",
    "format_spent",
]

#: The ``terms`` of an entitlement that is served around the clock.
AROUND_THE_CLOCK = "24x7"


class Period(enum.StrEnum):
    """What an allowance is counted over, in the entitlement's time zone."""

    MONTH = "month"
    YEAR = "year"

    def key(self, at: datetime, zone: ZoneInfo) -> str:
        """The period ``at`` falls in: ``2026-03`` (a month) or ``2026`` (a year)."""
        local = at.astimezone(zone)
        return f"{local:%Y-%m}" if self is Period.MONTH else f"{local:%Y}"


class EntitlementState(enum.StrEnum):
    """What a new case of an entitled account finds: units left, or none."""

    OK = "ok"
    EXHAUSTED = "exhausted"


class AllowanceUnit(enum.StrEnum):
    """What an allowance counts."""

    CASES = "cases"
    HOURS = "hours"


@dataclass(frozen=True, slots=True)
class Allowance:
    """How many new cases (``unit`` cases), or hours of work (``unit`` hours), an entitlement
    covers per period."""

    amount: int
    per: Period
    unit: AllowanceUnit = AllowanceUnit.CASES

    @property
    def limit(self) -> int:
        """The allowance in what usage is counted in: cases, or minutes."""
        return self.amount * 60 if self.unit is AllowanceUnit.HOURS else self.amount

    def state(self, used: int) -> EntitlementState:
        """What one more case finds when ``used`` of the period is taken (cases, or minutes
        charged): an allowance of hours is used up when nothing of it is left."""
        return EntitlementState.OK if used < self.limit else EntitlementState.EXHAUSTED

    def describe(self, used: int | None = None) -> str:
        """``2 cases per month`` or ``10 hours per year``; with ``used``, what is taken of it
        (``1 of 2 cases this month``, ``7.5 of 10 hours this year``)."""
        noun = self.unit.value if self.amount != 1 else self.unit.value[:-1]
        if used is None:
            return f"{self.amount} {noun} per {self.per.value}"
        taken = format_hours(used) if self.unit is AllowanceUnit.HOURS else str(used)
        return f"{taken} of {self.amount} {noun} this {self.per.value}"


def format_hours(minutes: int) -> str:
    """Minutes as hours a person reads: ``7.5``, ``10``, ``0.25``."""
    return f"{minutes / 60:.2f}".rstrip("0").rstrip(".")


def format_spent(minutes: int) -> str:
    """Time spent as agents write it: ``45m``, ``2h``, ``1h 30m``."""
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}m"
    return f"{hours}h {rest}m" if rest else f"{hours}h"


@dataclass(frozen=True, slots=True)
class Entitlement:
    """Support terms: ``calendar`` None means around the clock (``terms: 24x7``)."""

    id: str
    calendar: str | None = None
    sla_policy: str | None = None
    allowance: Allowance | None = None
    #: The zone periods are counted and due dates shown in.
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))

    @property
    def terms(self) -> str:
        return self.calendar or AROUND_THE_CLOCK


@dataclass(frozen=True, slots=True)
class Account:
    """A customer organisation."""

    id: str
    name: str
    domains: tuple[str, ...] = ()
    slack_teams: tuple[str, ...] = ()
    tier: str | None = None
    entitlement: str | None = None


def domain_of(email: str | None) -> str:
    """The lower-cased domain of an address, or an empty string."""
    if not email or "@" not in email:
        return ""
    return email.rpartition("@")[2].strip().strip(".").lower()


@dataclass(frozen=True)
class AccountBook:
    """The accounts and entitlements in force, with the lookups a sender needs."""

    accounts: Mapping[str, Account] = field(default_factory=dict)
    entitlements: Mapping[str, Entitlement] = field(default_factory=dict)
    _exact: dict[str, str] = field(init=False, repr=False, compare=False)
    _wild: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)
    _teams: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact: dict[str, str] = {}
        wild: list[tuple[str, str]] = []
        teams: dict[str, str] = {}
        for account in self.accounts.values():
            for domain in account.domains:
                name = domain.lower()
                if name.startswith("*."):
                    wild.append(("." + name[2:], account.id))
                else:
                    exact.setdefault(name, account.id)
            for team in account.slack_teams:
                teams.setdefault(team, account.id)
        wild.sort(key=lambda item: -len(item[0]))  # the longest suffix first
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_wild", tuple(wild))
        object.__setattr__(self, "_teams", teams)

    @classmethod
    def of(
        cls, accounts: Iterable[Account] = (), entitlements: Iterable[Entitlement] = ()
    ) -> AccountBook:
        return cls({a.id: a for a in accounts}, {e.id: e for e in entitlements})

    def match(self, *, email: str | None = None, slack_team: str | None = None) -> Account | None:
        """The account a sender belongs to: by the email's domain, else by the Slack team."""
        domain = domain_of(email)
        if domain:
            found = self._exact.get(domain)
            if found is None:
                found = next((a for suffix, a in self._wild if domain.endswith(suffix)), None)
            if found is not None:
                return self.accounts[found]
        if slack_team:
            team = self._teams.get(slack_team)
            if team is not None:
                return self.accounts[team]
        return None

    def account(self, account_id: str) -> Account:
        """The account of that id; a one-line error naming the configured ones if unknown."""
        found = self.accounts.get(account_id)
        if found is not None:
            return found
        if not self.accounts:
            raise NotFoundError(
                f"unknown account {account_id!r}: no accounts are configured in rules.yaml"
            )
        known = ", ".join(sorted(self.accounts))
        raise NotFoundError(f"unknown account {account_id!r}; configured are: {known}")

    def entitlement_of(self, account_id: str | None) -> Entitlement | None:
        """The entitlement of an account (None: no account, or no entitlement)."""
        account = self.accounts.get(account_id) if account_id else None
        if account is None or account.entitlement is None:
            return None
        return self.entitlements.get(account.entitlement)
