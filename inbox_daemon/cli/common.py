"""What every command shares: settings, the runtime, printing cases."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

from inbox_daemon.cases.accounts import format_spent
from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.cli.shell import PROG as PROG
from inbox_daemon.config import Settings, load_settings
from inbox_daemon.errors import InboxError
from inbox_daemon.runtime import Runtime
from inbox_daemon.service import CaseService, CaseView
from inbox_daemon.store.migrate import require_current

T = TypeVar("T")


class UsageError(InboxError):
    pass


# --- helpers -----------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _run(coro: Awaitable[T]) -> T:
    async def wrapper() -> T:
        return await coro

    return asyncio.run(wrapper())


async def _with_runtime(
    args: argparse.Namespace,
    work: Callable[[Runtime], Awaitable[T]],
    *,
    with_rules: bool | Literal["if_valid"] = True,
) -> T:
    runtime = Runtime(_settings(args), with_rules=with_rules, with_channels=False)
    if runtime.rules_problem is not None:
        print(
            f"{PROG}: warning: rules.yaml not read, so no account names and due dates in UTC:"
            f" {runtime.rules_problem}",
            file=sys.stderr,
        )
    try:
        created = await require_current(runtime.db)
        if created is not None:
            print(
                f"{PROG}: the database {runtime.db.safe_url} was empty: created its schema"
                f" ({', '.join(created.current)})",
                file=sys.stderr,
            )
        return await work(runtime)
    finally:
        await runtime.close()


async def _with_service(
    args: argparse.Namespace,
    work: Callable[[CaseService], Awaitable[T]],
    *,
    with_rules: bool | Literal["if_valid"] = True,
) -> T:
    return await _with_runtime(args, lambda runtime: work(runtime.service), with_rules=with_rules)


def _actor(args: argparse.Namespace, service: CaseService) -> Actor:
    """Who a command acts as: ``--as`` (an active agent of rules.yaml), else the agent whose
    ``os_user`` is the login running the command, else ``system:cli``."""
    agent = _agent(args, service)
    return Actor.user(agent) if agent is not None else Actor.system("cli")


def _agent(args: argparse.Namespace, service: CaseService) -> str | None:
    directory = service.directory
    name = getattr(args, "as_user", None)
    if name:
        user = directory.users.get(name)
        if user is None:
            known = ", ".join(sorted(directory.users)) or "none are configured"
            raise UsageError(f"--as {name!r} is not an agent in rules.yaml (agents: {known})")
        if not user.active:
            raise UsageError(f"--as {name!r}: {user.name} is not an active agent")
        return user.id
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        return None
    user = directory.by_os_user(login)
    return user.id if user is not None and user.active else None


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _case_dict(case: Case) -> dict[str, Any]:
    return {name: _iso(getattr(case, name)) for name in case.__dataclass_fields__}


def _print_table(cases: Sequence[Case]) -> None:
    if not cases:
        print("no cases")
        return
    rows = [
        (c.number, c.status.value, c.priority.value, c.queue or "-", c.owner_user or "-",
         c.contact or "-", c.title)
        for c in cases
    ]  # fmt: skip
    header = ("NUMBER", "STATUS", "PRIORITY", "QUEUE", "OWNER", "CONTACT", "TITLE")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [str(v).ljust(w) for v, w in zip(row, widths, strict=False)]
        print("  ".join([*cells, str(row[-1])]))


#: The fields of a case shown in the time zone of its calendar.
DUE_FIELDS = ("first_response_due", "resolve_by_due")


def local_time(value: datetime, zone: ZoneInfo) -> str:
    """``2026-03-03 17:00 CET (Europe/Berlin)``: a due date as the calendar's zone shows it."""
    local = value.astimezone(zone)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()} ({zone.key})"


def _account_line(view: CaseView) -> str | None:
    c = view.case
    if c.account is None:
        return None
    found = view.account
    if found is None:
        return f"{c.account} (no longer in rules.yaml)"
    parts = [f"{found.id} ({found.name})"]
    if found.tier:
        parts.append(f"tier {found.tier}")
    if found.entitlement:
        parts.append(f"entitlement {found.entitlement}")
    return ", ".join(parts)


def _print_view(view: CaseView) -> None:
    c = view.case
    print(f"{c.number}  {c.title}")
    account = _account_line(view)
    for name in (
        "status", "priority", "origin", "contact_email", "contact_slack", "account",
        "entitlement_exhausted", "queue", "owner_team", "owner_user", "worked_by",
        "support_level", "category", "reason", "sla_policy", "first_response_due",
        "resolve_by_due", "resolution", "parent_number", "merged_into", "created_at",
        "updated_at", "resolved_at", "closed_at",
    ):  # fmt: skip
        value = getattr(c, name)
        if name == "account":
            value = account
        elif name == "entitlement_exhausted":
            if value:
                print("  entitlement: EXHAUSTED (the allowance was used up; created all the same)")
            continue
        elif name in DUE_FIELDS and isinstance(value, datetime):
            value = local_time(value, view.zone)
        if value not in (None, ""):
            print(f"  {name.replace('_', ' ')}: {_iso(value)}")
    if view.time_spent:
        print(f"  time spent: {format_spent(view.time_spent)}")
    if c.cc_contacts:
        print(f"  cc contacts: {', '.join(c.cc_contacts)}")
    if view.children:
        print(f"  child cases: {', '.join(view.children)}")
    if view.merged:
        print(f"  merged from: {', '.join(view.merged)}")
    print("activities:")
    for a in view.activities:
        extra = f" [{a.delivery_state}]" if a.delivery_state else ""
        if a.due_at is not None:
            extra += f" due {a.due_at.isoformat(timespec='minutes')}"
        if a.assignee:
            extra += f" for {a.assignee}"
        if a.result:
            extra += f" ({a.result})"
        if a.spent_minutes:
            extra += f" {format_spent(a.spent_minutes)} spent"
        first = (a.subject or a.body_text).strip().splitlines()[:1]
        print(f"  #{a.id} {a.created_at:%Y-%m-%d %H:%M} {a.direction} {a.kind} {a.state}{extra}"
              f" {a.actor}: {first[0] if first else ''}")  # fmt: skip
    print("audit:")
    for e in view.audit:
        change = f" {e.field}: {e.old_value!r} -> {e.new_value!r}" if e.field else ""
        print(f"  {e.at:%Y-%m-%d %H:%M:%S} {e.actor_kind}:{e.actor_name} {e.action}{change}")


def _view_dict(view: CaseView) -> dict[str, Any]:
    case = _case_dict(view.case)
    for name in DUE_FIELDS:  # in the calendar's zone, with its offset
        value = getattr(view.case, name)
        case[name] = value.astimezone(view.zone).isoformat() if value is not None else None
    found = view.account
    case["account_name"] = found.name if found is not None else None
    case["tier"] = found.tier if found is not None else None
    case["time_zone"] = view.zone.key
    case["time_spent_minutes"] = view.time_spent
    return {
        "case": case,
        "children": list(view.children),
        "merged": list(view.merged),
        "activities": [
            {col: _iso(getattr(a, col)) for col in a.__table__.columns.keys()}  # noqa: SIM118
            for a in view.activities
        ],
        "audit": [
            {col: _iso(getattr(e, col)) for col in e.__table__.columns.keys()}  # noqa: SIM118
            for e in view.audit
        ],
    }
