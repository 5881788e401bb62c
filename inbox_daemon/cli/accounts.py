"""``inbox-daemon accounts``: the customer accounts of rules.yaml with their entitlements and
what each has used of its allowance this period (cases taken, or hours charged)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from inbox_daemon.cases.accounts import AllowanceUnit
from inbox_daemon.cli.common import _run, _with_service
from inbox_daemon.cli.shell import Commands, OneLineParser
from inbox_daemon.service import AccountUsage


def _row(usage: AccountUsage) -> dict[str, Any]:
    account, check = usage.account, usage.check
    row: dict[str, Any] = {
        "id": account.id, "name": account.name, "tier": account.tier,
        "entitlement": account.entitlement, "terms": None, "sla_policy": None,
        "allowance": None, "period": None, "used": None, "exhausted": False,
    }  # fmt: skip
    if check is None:
        return row
    entitlement = check.entitlement
    row.update(terms=entitlement.terms, sla_policy=entitlement.sla_policy)
    allowance = entitlement.allowance
    if allowance is not None and check.usage is not None:
        used = check.usage.used
        row.update(
            allowance={"amount": allowance.amount, "unit": allowance.unit.value,
                       "per": allowance.per.value},
            period=check.period,
            used=used / 60 if allowance.unit is AllowanceUnit.HOURS else used,
            exhausted=check.exhausted,
        )  # fmt: skip
    return row


def _line(usage: AccountUsage) -> str:
    account, check = usage.account, usage.check
    parts = [f"{account.id:<12} {account.name}"]
    if account.tier:
        parts.append(f"tier {account.tier}")
    if account.entitlement is None:
        parts.append("no entitlement")
    elif check is None:
        parts.append(f"entitlement {account.entitlement} (not in rules.yaml)")
    else:
        entitlement = check.entitlement
        parts.append(f"entitlement {entitlement.id}: {entitlement.terms}")
        if entitlement.sla_policy:
            parts.append(f"SLA {entitlement.sla_policy}")
        allowance = entitlement.allowance
        if allowance is not None and check.usage is not None:
            used = allowance.describe(check.usage.used)
            parts.append(f"{used} ({check.period})" + (": EXHAUSTED" if check.exhausted else ""))
    return ", ".join(parts)


def cmd_accounts(args: argparse.Namespace) -> int:
    found = _run(_with_service(args, lambda svc: svc.account_usage()))
    if args.json:
        print(json.dumps([_row(u) for u in found], indent=2))
    elif not found:
        print("no accounts: rules.yaml declares them under 'accounts:'")
    else:
        for usage in found:
            print(_line(usage))
    return 0


def add_accounts_command(
    sub: Commands,
    common: OneLineParser,
) -> None:
    p = sub.add_parser(
        "accounts",
        parents=[common],
        help="customer accounts with their entitlements and what they used this period",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_accounts)


__all__ = ["add_accounts_command", "cmd_accounts"]
