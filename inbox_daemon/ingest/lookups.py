"""What the messages of one intake batch need to know, looked up once for the whole batch.

Four questions come up for most messages: was this very message (Message-ID and content) taken
in before, from any mailbox; which case does it answer (the case holding a Message-ID it
refers to, or the case number in its subject); does its sender have an open case (a routing
fact); how many automatic answers went to the sender in the last hour (the acknowledgement's
limit). Asked one message at a time they cost a query each, and each query a flush of what the
batch wrote before it; :class:`BatchLookups` asks each once per batch and keeps its answers
true as the batch's own messages add receipts, activities, cases and answers. Every intake
transaction has them (``Ingestor._transaction``), a message retried from quarantine too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.acknowledge import RATE_WINDOW, recent_automatic_counts
from inbox_daemon.cases.model import find_case_number
from inbox_daemon.messages import InboundMessage
from inbox_daemon.store import intake, links
from inbox_daemon.store.tables import CaseRow
from inbox_daemon.store.unit import unit_of


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
    #: Message-ID -> (activity id, case) of the newest activity carrying it, for every
    #: Message-ID the batch's messages refer to, and those of the batch's own activities.
    threads: dict[str, tuple[int, CaseRow]] = field(default_factory=dict)
    #: Case number -> case, for the numbers in the batch's subjects and the batch's new cases.
    numbers: dict[str, CaseRow | None] = field(default_factory=dict)
    #: ``id()`` of an attachment of the batch -> (SHA-256, size) of its stored file.
    attachments: dict[int, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    async def load(
        cls,
        session: AsyncSession,
        messages: Sequence[InboundMessage],
        now: datetime,
        from_us: Callable[[InboundMessage], bool] = lambda _msg: False,
    ) -> BatchLookups:
        """``from_us``: which messages were sent from our own addresses (whether their own
        Message-ID is one of ours is looked up too)."""
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
        refs_of_ours = {m.message_id for m in messages if m.message_id and from_us(m)}
        refs = sorted({mid for m in messages for mid in m.thread_ids} | refs_of_ours)
        for mid, activity_id, case in await intake.cases_by_message_ids(session, refs):
            lookups._thread(mid, activity_id, case)
        numbers = {n for m in messages if (n := find_case_number(m.subject)) is not None}
        lookups.numbers = dict.fromkeys(numbers)
        found = {case.number: case for case in await intake.cases_by_numbers(session, numbers)}
        lookups.numbers.update(await links.surviving(session, found))  # a merged case's number
        return lookups

    def attach(self, session: AsyncSession) -> None:
        """Make these the lookups of ``session``'s transaction (see :func:`lookups_of`)."""
        unit_of(session).attach(self)

    # -- the questions, and what the batch itself changes -------------------------------------

    def prior(self, msg: InboundMessage) -> tuple[str, int | None] | None:
        if not (msg.message_id and msg.content_hash):
            return None
        return self.content.get((msg.message_id, msg.content_hash))

    def taken(self, msg: InboundMessage, external_id: str, activity_id: int | None) -> None:
        if msg.message_id and msg.content_hash:
            self.content.setdefault((msg.message_id, msg.content_hash), (external_id, activity_id))

    def forget(self, msg: InboundMessage) -> None:
        """The message's receipt was dropped (a retry): it was not taken in before."""
        if msg.message_id and msg.content_hash:
            self.content.pop((msg.message_id, msg.content_hash), None)

    def has_open_cases(self, *, email: str | None, slack: str | None) -> bool:
        """Whether the contact has a case that is not resolved, closed or cancelled."""
        if email:
            return ("email", email) in self.open_contacts
        return bool(slack) and ("slack", slack or "") in self.open_contacts

    def case_open(self, row: CaseRow) -> None:
        if row.contact_email:
            self.open_contacts.add(("email", row.contact_email))
        if row.contact_slack:
            self.open_contacts.add(("slack", row.contact_slack))

    def thread_case(self, msg: InboundMessage) -> CaseRow | None:
        """The case holding the newest activity with one of the Message-IDs ``msg`` refers to."""
        newest: tuple[int, CaseRow] | None = None
        for mid in msg.thread_ids:
            found = self.threads.get(mid)
            if found is not None and (newest is None or found[0] > newest[0]):
                newest = found
        return newest[1] if newest is not None else None

    def holds_message(self, message_id: str) -> bool:
        """Whether an activity already carries this Message-ID (asked for mail from us)."""
        return message_id in self.threads

    def numbered_case(self, number: str) -> CaseRow | None:
        """The case with this number (one in a subject of the batch's, or made by the batch)."""
        return self.numbers.get(number)

    def activity_added(self, activity_id: int, message_id: str | None, case: CaseRow) -> None:
        if message_id:
            self._thread(message_id, activity_id, case)

    def case_added(self, case: CaseRow) -> None:
        self.numbers[case.number] = case
        self.case_open(case)

    def _thread(self, message_id: str, activity_id: int, case: CaseRow) -> None:
        known = self.threads.get(message_id)
        if known is None or activity_id > known[0]:
            self.threads[message_id] = (activity_id, case)

    def automatic_count(self, address: str) -> int:
        return self.automatic.get(address.strip().lower(), 0)

    def answered(self, address: str) -> None:
        key = address.strip().lower()
        self.automatic[key] = self.automatic.get(key, 0) + 1


def lookups_of(session: AsyncSession) -> BatchLookups:
    """The lookups attached to ``session``'s transaction (every intake transaction has them)."""
    found = unit_of(session).get(BatchLookups)
    if found is None:
        raise RuntimeError("an intake step ran outside Ingestor._transaction")
    return found
