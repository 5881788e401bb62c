"""The case service's verbs that link cases: parent and child, merge, close by hand.

``link`` makes one case the parent of another (no loops: a case cannot be its own ancestor);
``merge`` closes a duplicate as merged into an open case and moves its activities there, so
that later replies to its thread land on the surviving case, whose customers it adds in Cc;
both cases keep their own audit trails, each saying what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.model import Actor, diff
from inbox_daemon.errors import CaseRuleError
from inbox_daemon.service.changes import ChangeVerbs
from inbox_daemon.service.core import norm_number
from inbox_daemon.store import cases as repo
from inbox_daemon.store import links
from inbox_daemon.store.tables import CaseRow


class LinkVerbs(ChangeVerbs):
    async def link(self, number: str, parent: str, actor: Actor) -> lifecycle.Outcome:
        """Make ``parent`` the parent case of ``number``."""
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            parent_row = await repo.get_case_row(session, norm_number(parent))
            if parent_row.id != row.id and row.id in await links.ancestors(session, parent_row.id):
                raise CaseRuleError(
                    f"{parent_row.number} is a descendant of {row.number}: linking it as the"
                    " parent would make a loop"
                )
            outcome = await self.change_in(session, row, lifecycle.Link(parent_row.number), actor)
            row.parent_id = parent_row.id
            return outcome

    async def unlink(self, number: str, actor: Actor) -> lifecycle.Outcome:
        """The case has no parent any more."""
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number), for_update=True)
            outcome = await self.change_in(session, row, lifecycle.Unlink(), actor)
            row.parent_id = None
            return outcome

    async def merge(self, number: str, into: str, actor: Actor) -> lifecycle.Outcome:
        """Close ``number`` as merged into ``into`` and move its activities and customer
        there. Both must be open (not resolved, closed or cancelled)."""
        source_number, target_number = norm_number(number), norm_number(into)
        if source_number == target_number:
            raise CaseRuleError(f"case {source_number} cannot be merged into itself")
        async with self.db.transaction() as session:
            # Locked in number order: two merges of the same pair cannot deadlock.
            first, second = sorted((source_number, target_number))
            rows = {}
            for each in (first, second):
                rows[each] = await repo.get_case_row(session, each, for_update=True)
            source, target = rows[source_number], rows[target_number]
            lifecycle.require_editable(repo.to_domain(target), f"merge {source.number} into it")
            outcome = await self.change_in(
                session, source, lifecycle.MergeInto(target.number), actor
            )
            moved = await links.move_activities(session, source.id, target.id)
            added = _new_contacts(source.contact_email, source.cc_contacts, target)
            before = repo.to_domain(target, await repo.parent_number(session, target))
            after = replace(before, cc_contacts=(*before.cc_contacts, *added))
            repo.write_back(target, after)
            repo.audit(
                session,
                target.id,
                at=self.clock(),
                actor=actor,
                action="merged_in",
                changes=diff(before, after),
                detail={"from": source.number, "activities": moved,
                        "contact": source.contact_email or source.contact_slack},
            )  # fmt: skip
            return outcome

    async def close(self, number: str, actor: Actor) -> lifecycle.Outcome:
        """Close a resolved case by hand, without waiting for the auto-close job."""
        return await self.change(number, lifecycle.Close(), actor)


def _new_contacts(email: str | None, others: Sequence[str], target: CaseRow) -> list[str]:
    """The merged case's customers by email that the target does not answer yet."""
    known = {(target.contact_email or "").lower(), *(c.lower() for c in target.cc_contacts)}
    added: list[str] = []
    for address in (email, *others):
        if address and address.lower() not in known:
            known.add(address.lower())
            added.append(address)
    return added
