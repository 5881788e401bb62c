"""What every verb of the case service shares: its settings, its clock and its small types.

:class:`ServiceCore` holds the database, the directory, the accounts, the clock, the SLA and
time-zone lookups and the message domain; the verb families (:mod:`.reading`,
:mod:`.changes`, :mod:`.activities`, :mod:`.incoming`) build on it and
:class:`inbox_daemon.service.CaseService` joins them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import AddressHeader, HeaderRegistry
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.accounts import (
    Account,
    AccountBook,
    AllowanceUnit,
    Entitlement,
    EntitlementState,
)
from inbox_daemon.cases.directory import Directory
from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.errors import CaseRuleError
from inbox_daemon.messages import new_message_id
from inbox_daemon.service import notices
from inbox_daemon.service.notice_templates import NoticeTemplates, load_notice_templates
from inbox_daemon.store.db import Database
from inbox_daemon.store.entitlements import Usage
from inbox_daemon.store.tables import ActivityRow, AuditRow, CaseRow

if TYPE_CHECKING:
    from inbox_daemon.cases import sla
    from inbox_daemon.cases.calendar import BusinessCalendar

Clock = Callable[[], datetime]
#: Where an agent's action came from: (channel, workspace, message id), e.g. a Slack message.
Source = tuple[str, str, str]
#: (SLA policy, account) of a case -> the policy it is counted by, with its calendar.
SlaLookup = Callable[[str | None, str | None], "tuple[sla.SlaPolicy, BusinessCalendar] | None"]
#: (SLA policy, account) of a case -> the time zone its due dates are shown in.
ZoneLookup = Callable[[str | None, str | None], ZoneInfo]
UTC_ZONE = ZoneInfo("UTC")


def _no_sla(
    _name: str | None, _account: str | None
) -> tuple[sla.SlaPolicy, BusinessCalendar] | None:
    return None


def _utc(_name: str | None, _account: str | None) -> ZoneInfo:
    return UTC_ZONE


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredFile:
    """A file already in the attachment store, to go with a message (an answer, or one taken
    in)."""

    sha256: str
    size: int
    filename: str
    content_type: str
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class CaseView:
    """A case with its activities and audit trail, for `cases show`; ``zone``: the time zone
    its due dates are shown in; ``account``: its account as configured (None: none, or no
    longer in rules.yaml)."""

    case: Case
    activities: list[ActivityRow]
    audit: list[AuditRow]
    #: The numbers of the cases whose parent this one is.
    children: tuple[str, ...] = ()
    #: The numbers of the cases merged into this one.
    merged: tuple[str, ...] = ()
    zone: ZoneInfo = UTC_ZONE
    account: Account | None = None
    #: The minutes agents recorded on its activities (cancelled ones left out).
    time_spent: int = 0


@dataclass(frozen=True)
class EntitlementCheck:
    """What a new case of an entitled account finds: the entitlement, and for one with an
    allowance the period, the units taken in it and whether one is left."""

    account: str
    entitlement: Entitlement
    state: EntitlementState = EntitlementState.OK
    period: str | None = None
    usage: Usage | None = None

    @property
    def takes_unit(self) -> bool:
        """A new case takes a unit: the allowance counts cases and one is left."""
        allowance = self.entitlement.allowance
        return (
            self.usage is not None
            and self.state is EntitlementState.OK
            and allowance is not None
            and allowance.unit is AllowanceUnit.CASES
        )

    @property
    def exhausted(self) -> bool:
        """The allowance (of cases or hours) is used up: the case is created, flagged."""
        return self.usage is not None and self.state is EntitlementState.EXHAUSTED


@dataclass(frozen=True)
class AccountUsage:
    """An account as configured, with what a new case of it would find now (None: the
    account has no entitlement, or it names one rules.yaml does not declare)."""

    account: Account
    check: EntitlementCheck | None


_HEADERS = HeaderRegistry()
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def parse_contact(contact: str) -> tuple[str | None, str | None, str]:
    """``Ann <ann@example.com>``, ``ann@example.com`` or a Slack user id -> (email, slack, name).

    Strict (the ``email.headerregistry`` parser, no defects allowed): one address, not a
    group, its domain a dotted name, and with angle brackets the bracketed address is the one
    taken — ``Eve Bcc: evil@x.example <eve@example.com>`` is refused, not read as a group
    naming ``evil@x.example``. A display name keeps its comment (``Ann (Sales)``).
    """
    text = contact.strip()
    if not text:
        raise CaseRuleError("a case needs a customer contact (an email address or a Slack user)")
    if _SLACK_USER.match(text):
        return None, text, ""
    refused = CaseRuleError(
        f"contact {contact!r} is not one email address or Slack user id: write it as "
        "'Name <ann@example.com>', 'ann@example.com' or a Slack user id like U0123ABCD"
    )
    if "@" not in text or any(c in text for c in "\r\n"):
        raise refused
    parsed = _HEADERS("to", text)
    header = cast(AddressHeader, parsed)
    if parsed.defects or len(header.addresses) != 1 or header.groups[0].display_name:
        raise refused
    address = header.addresses[0]
    local, _, domain = address.addr_spec.rpartition("@")
    if not local or local.startswith('"') or "." not in domain.strip("."):
        raise refused
    name = address.display_name
    if "<" in text:
        bracketed = text[text.rindex("<") + 1 :].partition(">")[0].strip()
        if bracketed.lower() != address.addr_spec.lower():
            raise refused
        before = text[: text.rindex("<")].strip()
        if before and not before.startswith('"'):
            name = before  # as written, with its comment
    return address.addr_spec.lower(), None, name


def norm_number(number: str) -> str:
    return number.strip().upper()


class ServiceCore:
    """The case service's settings, shared by its verb families."""

    def __init__(
        self,
        db: Database,
        *,
        directory: Directory | None = None,
        clock: Clock = utcnow,
        message_domain: str = "inbox-daemon.invalid",
        auto_close_after: timedelta = lifecycle.DEFAULT_AUTO_CLOSE_AFTER,
        on_outgoing: Callable[[], None] | None = None,
        sla_lookup: SlaLookup = _no_sla,
        zone_lookup: ZoneLookup = _utc,
        accounts: AccountBook | None = None,
        diagnostic_tasks: bool = False,
        sla_names: Sequence[str] = (),
        notify_channels: Collection[str] = (),
        notice_templates: NoticeTemplates | None = None,
    ) -> None:
        self.db = db
        #: The words of the agents' notifications (swapped whole when rules.yaml reloads).
        self.notice_templates = notice_templates or load_notice_templates()
        #: The channel kinds agents are told through ("slack", "email"): those the daemon runs.
        self.notify_channels = frozenset(notify_channels)
        #: The names of rules.yaml's SLA policies (what a case can be reclassified to).
        self.sla_names: tuple[str, ...] = tuple(sla_names)
        #: Open and close the diagnostic task of a case worked by an assignee (Creatio's
        #: process; ``[cases] diagnostic_tasks``).
        self.diagnostic_tasks = diagnostic_tasks
        #: The SLA policy (and its calendar) a case is counted by, from rules.yaml, or None.
        self.sla_lookup = sla_lookup
        #: The time zone a case's due dates are shown in.
        self.zone_lookup = zone_lookup
        #: The customer accounts and entitlements in force (swapped whole on a reload).
        self.accounts = accounts or AccountBook()
        #: Called after a transaction that queued an outgoing message commits (wakes the outbox).
        self.on_outgoing = on_outgoing
        self.directory = directory or Directory()
        self.clock = clock
        self.message_domain = message_domain
        self.auto_close_after = auto_close_after

    def zone_of(self, case: Case) -> ZoneInfo:
        """The time zone ``case``'s due dates are shown in (its calendar's)."""
        return self.zone_lookup(case.sla_policy, case.account)

    def new_message_id(self, number: str) -> str:
        return new_message_id(number, self.message_domain)

    async def notify_in(
        self,
        session: AsyncSession,
        row: CaseRow,
        effects: Sequence[lifecycle.Effect],
        actor: Actor,
    ) -> list[ActivityRow]:
        """Queue the agents' notifications of ``effects`` in the caller's transaction (see
        :mod:`.notices`); the caller wakes the outbox once it commits."""
        return await notices.queue_notices_in(
            session, row, effects, actor, directory=self.directory,
            channels=self.notify_channels, new_message_id=lambda: self.new_message_id(row.number),
            now=self.clock(), templates=self.notice_templates, account=self._account_name(row),
        )  # fmt: skip

    def _account_name(self, row: CaseRow) -> str:
        found = self.accounts.accounts.get(row.account) if row.account else None
        return found.name if found is not None else (row.account or "")

    def outgoing_queued(self) -> None:
        """Tell the outbox (if any) that a committed transaction queued a message."""
        if self.on_outgoing is not None:
            self.on_outgoing()
