"""The case service's reading verbs: one case, one case with its history, its open activities,
a list of cases."""

from __future__ import annotations

from collections.abc import Sequence

from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.model import Case
from inbox_daemon.cases.tasks import LoggedActivity
from inbox_daemon.service.core import CaseView, ServiceCore, norm_number
from inbox_daemon.store import cases as repo
from inbox_daemon.store import links


class ReadingVerbs(ServiceCore):
    async def get(self, number: str) -> Case:
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number))
            return repo.to_domain(row, await repo.parent_number(session, row))

    async def show(self, number: str) -> CaseView:
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number))
            case = repo.to_domain(row, await repo.parent_number(session, row))
            return CaseView(
                case,
                await repo.activities_of(session, row.id),
                await repo.audit_of(session, row.id),
                children=tuple(await links.children_of(session, row.id)),
                merged=tuple(await links.merged_from(session, row.number)),
                zone=self.zone_of(case),
                account=self.accounts.accounts.get(case.account) if case.account else None,
            )

    async def open_activities(self, number: str) -> tuple[LoggedActivity, ...]:
        """The open activities that keep the case from being resolved (the diagnostic task,
        which a resolve closes itself, left out)."""
        async with self.db.transaction() as session:
            row = await repo.get_case_row(session, norm_number(number))
            found = await repo.open_activities(session, row.id)
        if self.diagnostic_tasks:
            found = tuple(a for a in found if not a.diagnostic)
        return found

    async def find(
        self,
        *,
        status: Sequence[Status] = (),
        queue: str | None = None,
        owner: str | None = None,
        account: str | None = None,
        limit: int = 200,
    ) -> list[Case]:
        """Cases, newest first; ``account`` must be configured (a one-line error if not)."""
        if account is not None:
            self.accounts.account(account)
        async with self.db.transaction() as session:
            rows = await repo.list_cases(
                session, status=status, queue=queue, owner=owner, account=account, limit=limit
            )
            return [repo.to_domain(row) for row in rows]
