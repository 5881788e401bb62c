"""The case service's reading verbs: one case, one case with its history, its open activities,
a list of cases, what each account has used of its allowance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.model import Case
from inbox_daemon.cases.tasks import LoggedActivity
from inbox_daemon.service import allowances
from inbox_daemon.service.core import AccountUsage, CaseView, ServiceCore, norm_number
from inbox_daemon.store import cases as repo
from inbox_daemon.store import entitlements, links


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
                time_spent=await entitlements.time_spent(session, row.id),
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

    async def account_usage(self, now: datetime | None = None) -> list[AccountUsage]:
        """Every configured account, by id, with what a new case of it would find now (its
        entitlement and, for an allowance, the period and what is used of it)."""
        at = now or self.clock()
        async with self.db.transaction() as session:
            return [
                AccountUsage(
                    account, await allowances.check_in(session, self.accounts, account.id, at)
                )
                for account in sorted(self.accounts.accounts.values(), key=lambda a: a.id)
            ]
