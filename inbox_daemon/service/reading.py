"""The case service's reading verbs: one case, one case with its history, its open activities,
a list of cases."""

from __future__ import annotations

from collections.abc import Sequence

from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.model import Case
from inbox_daemon.cases.tasks import LoggedActivity
from inbox_daemon.service.core import CaseView, ServiceCore, norm_number
from inbox_daemon.store import cases as repo


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
        limit: int = 200,
    ) -> list[Case]:
        async with self.db.transaction() as session:
            rows = await repo.list_cases(
                session, status=status, queue=queue, owner=owner, limit=limit
            )
            return [repo.to_domain(row) for row in rows]
