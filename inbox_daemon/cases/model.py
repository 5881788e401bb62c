"""The case and what happens to it: value types of the domain.

A :class:`Case` is an immutable snapshot; the lifecycle returns a new snapshot and the list of
:class:`FieldChange` values between the two, which the case service writes as audit events.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime

from inbox_daemon.cases.enums import ActorKind, Origin, Priority, Status

CASE_NUMBER_PREFIX = "CAS-"
CASE_NUMBER_RE = re.compile(r"\bCAS-(\d{6,})\b")


def format_case_number(sequence: int) -> str:
    """``CAS-000123``: the prefix and at least six digits."""
    if sequence < 1:
        raise ValueError(f"case sequence must be positive, got {sequence}")
    return f"{CASE_NUMBER_PREFIX}{sequence:06d}"


def find_case_number(text: str) -> str | None:
    """The first case number in a text such as a subject (``Re: Printer [CAS-000123]``)."""
    match = CASE_NUMBER_RE.search(text)
    return match.group(0) if match else None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who or what made a change."""

    kind: ActorKind
    name: str

    @classmethod
    def user(cls, user_id: str) -> Actor:
        return cls(ActorKind.USER, user_id)

    @classmethod
    def rule(cls, rule_name: str) -> Actor:
        return cls(ActorKind.RULE, rule_name)

    @classmethod
    def channel(cls, channel: str) -> Actor:
        return cls(ActorKind.CHANNEL, channel)

    @classmethod
    def system(cls, job: str) -> Actor:
        return cls(ActorKind.SYSTEM, job)

    @classmethod
    def customer(cls, contact: str) -> Actor:
        return cls(ActorKind.CUSTOMER, contact)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.name}"


@dataclass(frozen=True, slots=True)
class Case:
    """A customer-service case as the domain sees it."""

    number: str
    title: str
    status: Status = Status.NEW
    priority: Priority = Priority.MEDIUM
    origin: Origin = Origin.EMAIL
    description: str = ""
    contact_email: str | None = None
    contact_slack: str | None = None
    contact_name: str = ""
    category: str | None = None
    reason: str | None = None
    #: The SLA policy (from rules.yaml) the due dates are counted by.
    sla_policy: str | None = None
    first_response_due: datetime | None = None
    resolve_by_due: datetime | None = None
    first_responded_at: datetime | None = None
    owner_user: str | None = None
    owner_team: str | None = None
    queue: str | None = None
    #: The queue item's "worked by": set by Pick, cleared by Release.
    worked_by: str | None = None
    support_level: int = 1
    resolution: str | None = None
    parent_number: str | None = None
    #: The case this one was merged into (it is closed, and its replies land there).
    merged_into: str | None = None
    #: Other customers of the case (from cases merged into it): answered by email too, in Cc.
    cc_contacts: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    resolved_at: datetime | None = None
    closed_at: datetime | None = None
    #: When the case entered a paused status (stops the SLA clock).
    paused_at: datetime | None = None
    #: The customer's account (rules.yaml ``accounts``); None: an implicit contact.
    account: str | None = None
    #: The account's allowance was used up when the case was created (it was created all
    #: the same; it consumed no unit).
    entitlement_exhausted: bool = False

    @property
    def contact(self) -> str:
        return self.contact_email or self.contact_slack or ""


#: The fields of a case that an audit event tracks (all but the bookkeeping times).
AUDITED_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(Case) if f.name not in {"updated_at", "created_at", "number"}
)

#: Fields an agent may edit directly on an open case.
EDITABLE_FIELDS = frozenset(
    {
        "title",
        "description",
        "priority",
        "category",
        "reason",
        "contact_email",
        "contact_slack",
        "contact_name",
        "first_response_due",
        "resolve_by_due",
        "account",
        "sla_policy",
    }
)


def _show(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field of a case that changed: written as an audit event."""

    field: str
    old: str | None
    new: str | None


def diff(before: Case | None, after: Case) -> list[FieldChange]:
    """The audited fields that differ between two snapshots (all set fields for a new case)."""
    changes = []
    for name in AUDITED_FIELDS:
        new = getattr(after, name)
        old = getattr(before, name) if before is not None else None
        if old != new and not (before is None and new in (None, "", False)):
            changes.append(FieldChange(name, _show(old), _show(new)))
    return changes
