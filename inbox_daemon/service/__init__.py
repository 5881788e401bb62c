"""The case service: the one writer of cases, activities, their files, receipts' outcomes and
the audit trail, and the one opener of transactions for changes to them.

Its verbs come in families, one module each, joined in :class:`CaseService`:

- :mod:`.reading`: a case, a case with its history, a list of cases, accounts' usage;
- :mod:`.changes`: create a case, apply a lifecycle event (assign, pick, resolve, close …),
  with what the case takes of its account's allowance (:mod:`.allowances`);
- :mod:`.edits`: reclassify a case (priority, category, reason, account, SLA …);
- :mod:`.links`: link a case to its parent, merge a duplicate, close by hand;
- :mod:`.activities`: notes, agents' answers, automatic answers, a customer's edit;
- :mod:`.tasks`: the tasks and phone calls agents log, completing or cancelling them
  (:mod:`.records` writes activities and the lifecycle's effects on them, in a transaction);
- :mod:`.incoming`: the activity of a message taken in, receipts (for intake's transaction);
- :mod:`.delivery`: what the outbox may send and what became of it (:class:`DeliveryLedger`).

A public verb is one transaction; a ``…_in`` verb writes inside the caller's (intake's batch).
"""

from __future__ import annotations

from inbox_daemon.errors import NotFoundError
from inbox_daemon.service.core import (
    AccountUsage,
    CaseView,
    Clock,
    EntitlementCheck,
    SlaLookup,
    Source,
    StoredFile,
    ZoneLookup,
    parse_contact,
    utcnow,
)
from inbox_daemon.service.delivery import DeliveryLedger
from inbox_daemon.service.edits import EditVerbs
from inbox_daemon.service.incoming import IncomingContents, IncomingVerbs
from inbox_daemon.service.links import LinkVerbs
from inbox_daemon.service.reading import ReadingVerbs
from inbox_daemon.service.tasks import TaskVerbs


class CaseService(TaskVerbs, IncomingVerbs, EditVerbs, LinkVerbs, ReadingVerbs):
    """Every verb on cases and their activities (see the families above)."""


__all__ = [
    "AccountUsage",
    "CaseService",
    "CaseView",
    "Clock",
    "DeliveryLedger",
    "EntitlementCheck",
    "IncomingContents",
    "NotFoundError",
    "SlaLookup",
    "Source",
    "StoredFile",
    "ZoneLookup",
    "parse_contact",
    "utcnow",
]
