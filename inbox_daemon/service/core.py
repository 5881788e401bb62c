"""What every verb of the case service shares: its settings, its clock and its small types.

:class:`ServiceCore` holds the database, the directory, the clock, the SLA lookup and the
message domain; the verb families (:mod:`.reading`, :mod:`.changes`, :mod:`.activities`,
:mod:`.incoming`) build on it and :class:`inbox_daemon.service.CaseService` joins them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import TYPE_CHECKING

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.directory import Directory
from inbox_daemon.cases.model import Case
from inbox_daemon.errors import CaseRuleError
from inbox_daemon.messages import new_message_id
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, AuditRow

if TYPE_CHECKING:
    from inbox_daemon.cases import sla
    from inbox_daemon.cases.calendar import BusinessCalendar

Clock = Callable[[], datetime]
#: Where an agent's action came from: (channel, workspace, message id), e.g. a Slack message.
Source = tuple[str, str, str]
SlaLookup = Callable[[str], "tuple[sla.SlaPolicy, BusinessCalendar] | None"]


def _no_sla(_name: str) -> tuple[sla.SlaPolicy, BusinessCalendar] | None:
    return None


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
    """A case with its activities and audit trail, for `cases show`."""

    case: Case
    activities: list[ActivityRow]
    audit: list[AuditRow]


def parse_contact(contact: str) -> tuple[str | None, str | None, str]:
    """``Ann <ann@example.com>``, ``ann@example.com`` or a Slack user id -> (email, slack, name)."""
    text = contact.strip()
    if not text:
        raise CaseRuleError("a case needs a customer contact (an email address or a Slack user)")
    name, address = parseaddr(text)
    if "@" in address and "." in address.rsplit("@", 1)[1]:
        return address.lower(), None, name
    if text.startswith(("U", "W")) and text.isalnum() and text.isupper():
        return None, text, ""
    raise CaseRuleError(
        f"contact {contact!r} is neither an email address nor a Slack user id (like U0123ABCD)"
    )


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
    ) -> None:
        self.db = db
        #: The SLA policy (and its calendar) of a name from rules.yaml, or None.
        self.sla_lookup = sla_lookup
        #: Called after a transaction that queued an outgoing message commits (wakes the outbox).
        self.on_outgoing = on_outgoing
        self.directory = directory or Directory()
        self.clock = clock
        self.message_domain = message_domain
        self.auto_close_after = auto_close_after

    def new_message_id(self, number: str) -> str:
        return new_message_id(number, self.message_domain)

    def outgoing_queued(self) -> None:
        """Tell the outbox (if any) that a committed transaction queued a message."""
        if self.on_outgoing is not None:
            self.on_outgoing()
