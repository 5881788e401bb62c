"""The case service's reading verbs: one case, one case with its history, a list of cases."""

from __future__ import annotations

from collections.abc import Sequence

from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.model import Case
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
            )

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
