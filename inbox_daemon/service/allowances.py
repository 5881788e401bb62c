"""What a case takes of its account's allowance, kept true through the case's life.

An allowance of cases: a new case takes a unit (:func:`use_in`), a cancelled one gives it back.
An allowance of hours: a resolved case is charged the time agents recorded on its activities, a
reactivated one (by an agent, or by the customer's reply) is given it back, and a second resolve
charges the new total. A case whose account is changed (reclassify) carries its unit to the new
account when that one has a unit left, and is flagged ``entitlement_exhausted`` afresh by what
the new account has left. Every step is audited with its actor, in the caller's transaction.

Called by the case service's create and lifecycle verbs only (:mod:`.changes`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.accounts import AccountBook, AllowanceUnit
from inbox_daemon.cases.enums import ActivityState, Status
from inbox_daemon.cases.model import Actor, Case, diff
from inbox_daemon.service.core import EntitlementCheck
from inbox_daemon.store import cases as repo
from inbox_daemon.store import entitlements
from inbox_daemon.store.entitlements import Usage
from inbox_daemon.store.tables import CaseRow

__all__ = ["check_in", "follow_in", "use_in"]


async def check_in(
    session: AsyncSession, accounts: AccountBook, account: str, now: datetime
) -> EntitlementCheck | None:
    """What a new case of ``account`` would find now: None for an account without an
    entitlement (or no longer configured)."""
    found = accounts.entitlement_of(account)
    if found is None:
        return None
    allowance = found.allowance
    if allowance is None:
        return EntitlementCheck(account, found)
    period = allowance.per.key(now, found.zone)
    if allowance.unit is AllowanceUnit.HOURS:
        minutes = await entitlements.hours_used(session, account, found.id, period)
        usage = Usage(used=minutes, taken=0)
    else:
        usage = await entitlements.usage(session, account, found.id, period)
    return EntitlementCheck(account, found, allowance.state(usage.used), period, usage)


def _detail(check: EntitlementCheck, used: int) -> dict[str, object]:
    allowance = check.entitlement.allowance
    assert allowance is not None
    assert check.period is not None
    return {
        "account": check.account, "entitlement": check.entitlement.id, "period": check.period,
        "allowance": allowance.amount, "unit": allowance.unit.value, "used": used,
    }  # fmt: skip


def use_in(
    session: AsyncSession, row: CaseRow, check: EntitlementCheck, actor: Actor, now: datetime
) -> None:
    """A new case of an entitled account with an allowance: take its unit (cases), or record
    that it found the allowance used up (cases or hours)."""
    assert check.usage is not None
    assert check.period is not None
    if check.takes_unit:
        entitlements.take_unit(
            session, row.id, account=check.account, entitlement=check.entitlement.id,
            period=check.period, seq=check.usage.taken + 1, at=now,
        )  # fmt: skip
        detail = _detail(check, check.usage.used + 1)
        repo.audit(session, row.id, at=now, actor=actor, action="entitlement_used", detail=detail)
    elif check.exhausted:
        detail = _detail(check, check.usage.used)
        repo.audit(
            session, row.id, at=now, actor=actor, action="entitlement_exhausted", detail=detail
        )


async def follow_in(
    session: AsyncSession,
    row: CaseRow,
    before: Case,
    outcome: lifecycle.Outcome,
    accounts: AccountBook,
    actor: Actor,
    now: datetime,
) -> lifecycle.Outcome:
    """Keep what the case took of an allowance true to the change ``outcome`` makes of
    ``before``; the outcome with the case's ``entitlement_exhausted`` flag as it now is."""
    after = outcome.case
    if after.status is Status.CANCELLED and before.status is not Status.CANCELLED:
        unit = await entitlements.give_back(session, row.id, now)
        if unit is not None:
            detail = {"account": unit.account, "entitlement": unit.entitlement,
                      "period": unit.period}  # fmt: skip
            repo.audit(session, row.id, at=now, actor=actor, action="entitlement_returned",
                       detail=detail)  # fmt: skip
    if after.status is Status.RESOLVED and before.status is not Status.RESOLVED:
        await _charge_hours(session, row, after, outcome, accounts, actor, now)
    elif before.status is Status.RESOLVED and after.status.open:
        hours = await entitlements.return_hours(session, row.id, now)
        if hours is not None:
            back: dict[str, object] = {
                "account": hours.account, "entitlement": hours.entitlement,
                "period": hours.period, "minutes": hours.minutes,
            }  # fmt: skip
            repo.audit(session, row.id, at=now, actor=actor, action="entitlement_hours_returned",
                       detail=back)  # fmt: skip
    if after.account == before.account:
        return outcome
    exhausted = await _move(session, row, before.account, after.account, accounts, actor, now)
    if exhausted == after.entitlement_exhausted:
        return outcome
    after = replace(after, entitlement_exhausted=exhausted)
    return replace(outcome, case=after, changes=diff(before, after))


async def _charge_hours(
    session: AsyncSession,
    row: CaseRow,
    case: Case,
    outcome: lifecycle.Outcome,
    accounts: AccountBook,
    actor: Actor,
    now: datetime,
) -> None:
    """Charge a resolved case's time spent to its account's allowance of hours (if it has one
    and time was recorded); activities the resolve cancels do not count."""
    entitlement = accounts.entitlement_of(case.account)
    allowance = entitlement.allowance if entitlement is not None else None
    if case.account is None or allowance is None or allowance.unit is not AllowanceUnit.HOURS:
        return  # nothing to charge: ask the database nothing
    check = await check_in(session, accounts, case.account, now)
    assert check is not None
    assert check.period is not None
    assert check.usage is not None
    cancelled = [
        activity_id
        for effect in outcome.effects
        if isinstance(effect, lifecycle.SettleActivities)
        and effect.state is ActivityState.CANCELLED
        for activity_id in effect.activity_ids
    ]
    minutes = await entitlements.time_spent(session, row.id, leaving_out=cancelled)
    if minutes <= 0:
        return
    await entitlements.charge_hours(
        session, row.id, account=check.account, entitlement=check.entitlement.id,
        period=check.period, minutes=minutes, at=now,
    )  # fmt: skip
    detail = {**_detail(check, check.usage.used + minutes), "minutes": minutes}
    repo.audit(
        session, row.id, at=now, actor=actor, action="entitlement_hours_charged", detail=detail
    )


async def _move(
    session: AsyncSession,
    row: CaseRow,
    old: str | None,
    new: str | None,
    accounts: AccountBook,
    actor: Actor,
    now: datetime,
) -> bool:
    """Carry the case's unit from account ``old`` to ``new`` (or give it back when ``new``
    has none left); whether the case now finds ``new``'s allowance used up."""
    unit = await entitlements.unit_of(session, row.id)
    check = await check_in(session, accounts, new, now) if new else None
    kept = unit is not None and unit.returned_at is None
    if check is not None and check.takes_unit:
        assert check.usage is not None
        assert check.period is not None
        seq = check.usage.taken + 1
        if unit is None:
            entitlements.take_unit(session, row.id, account=check.account, seq=seq,
                                   entitlement=check.entitlement.id, period=check.period,
                                   at=now)  # fmt: skip
        else:
            entitlements.move_unit(
                unit, account=check.account, entitlement=check.entitlement.id,
                period=check.period, seq=seq,
            )  # fmt: skip
        detail = {**_detail(check, check.usage.used + 1), "from_account": old}
        repo.audit(session, row.id, at=now, actor=actor, action="entitlement_used", detail=detail)
        return False
    if kept:
        assert unit is not None
        unit.returned_at = now
        repo.audit(session, row.id, at=now, actor=actor, action="entitlement_returned",
                   detail={"account": unit.account, "entitlement": unit.entitlement,
                           "period": unit.period, "moved_to": new})  # fmt: skip
    if check is not None and check.exhausted:
        assert check.usage is not None
        repo.audit(session, row.id, at=now, actor=actor, action="entitlement_exhausted",
                   detail=_detail(check, check.usage.used))  # fmt: skip
        return True
    return False
