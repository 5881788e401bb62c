"""What the messages of one intake batch need to know, looked up once for the whole batch.

Three questions come up for most messages: was this very message (Message-ID and content) taken
in before, from any mailbox; does its sender have an open case (a routing fact); how many
automatic answers went to the sender in the last hour (the acknowledgement's limit). Asked one
message at a time they cost three queries each; :class:`BatchLookups` asks each once per batch
and keeps its answers true as the batch's own messages add receipts, open cases and answers.
A pipeline without lookups (one message retried from quarantine) asks the database directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.acknowledge import RATE_WINDOW, recent_automatic_counts
from inbox_daemon.messages import InboundMessage
from inbox_daemon.store import intake
from inbox_daemon.store.tables import CaseRow

_SESSION_KEY = "inbox_daemon.intake_lookups"


@dataclass
class BatchLookups:
    """The answers for one batch (see the module docstring)."""

    #: (Message-ID, content hash) -> (external id, activity id) of the receipt that took it in.
    content: dict[tuple[str, str], tuple[str, int | None]] = field(default_factory=dict)
    #: ("email", address) / ("slack", user) of every customer with an open case.
    open_contacts: set[tuple[str, str]] = field(default_factory=set)
    #: Lower-cased sender -> automatic answers to it since the batch's window started.
    automatic: dict[str, int] = field(default_factory=dict)
    #: The batch's receipts, written together once the batch is done.
    receipts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def load(
        cls, session: AsyncSession, messages: Sequence[InboundMessage], now: datetime
    ) -> BatchLookups:
        mids = [m.message_id for m in messages if m.message_id and m.content_hash]
        emails = [m.sender.email for m in messages if m.sender.email]
        slacks = [m.sender.slack_user for m in messages if m.sender.slack_user]
        senders = [(m.sender.email or "").strip().lower() for m in messages if m.sender.email]
        lookups = cls()
        for mid, digest, external_id, activity_id in await intake.receipts_for_content(
            session, mids
        ):
            lookups.content[(mid, digest)] = (external_id, activity_id)
        lookups.open_contacts = await intake.open_contacts(session, emails=emails, slacks=slacks)
        lookups.automatic = await recent_automatic_counts(session, senders, now - RATE_WINDOW)
        return lookups

    def attach(self, session: AsyncSession) -> None:
        """Make these the lookups of ``session``'s transaction (see :func:`lookups_of`)."""
        session.sync_session.info[_SESSION_KEY] = self

    # -- the questions, and what the batch itself changes -------------------------------------

    def prior(self, msg: InboundMessage) -> tuple[str, int | None] | None:
        if not (msg.message_id and msg.content_hash):
            return None
        return self.content.get((msg.message_id, msg.content_hash))

    def taken(self, msg: InboundMessage, external_id: str, activity_id: int | None) -> None:
        if msg.message_id and msg.content_hash:
            self.content.setdefault((msg.message_id, msg.content_hash), (external_id, activity_id))

    def has_open_cases(self, *, email: str | None, slack: str | None) -> bool:
        """As :func:`inbox_daemon.store.intake.has_open_cases` would answer."""
        if email:
            return ("email", email) in self.open_contacts
        return bool(slack) and ("slack", slack or "") in self.open_contacts

    def case_open(self, row: CaseRow) -> None:
        if row.contact_email:
            self.open_contacts.add(("email", row.contact_email))
        if row.contact_slack:
            self.open_contacts.add(("slack", row.contact_slack))

    def automatic_count(self, address: str) -> int:
        return self.automatic.get(address.strip().lower(), 0)

    def answered(self, address: str) -> None:
        key = address.strip().lower()
        self.automatic[key] = self.automatic.get(key, 0) + 1


def lookups_of(session: AsyncSession) -> BatchLookups | None:
    """The lookups attached to ``session``'s transaction, if any."""
    found = session.sync_session.info.get(_SESSION_KEY)
    return found if isinstance(found, BatchLookups) else None
