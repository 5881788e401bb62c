"""What every command shares: settings, the runtime, printing cases."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.config import Settings, load_settings
from inbox_daemon.errors import InboxError
from inbox_daemon.runtime import Runtime
from inbox_daemon.service import CaseService, CaseView
from inbox_daemon.store.migrate import require_current

T = TypeVar("T")
PROG = "inbox-daemon"


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
    args: argparse.Namespace, work: Callable[[Runtime], Awaitable[T]], *, with_rules: bool = True
) -> T:
    runtime = Runtime(_settings(args), with_rules=with_rules, with_channels=False)
    try:
        await require_current(runtime.db)
        return await work(runtime)
    finally:
        await runtime.close()


async def _with_service(
    args: argparse.Namespace,
    work: Callable[[CaseService], Awaitable[T]],
    *,
    with_rules: bool = True,
) -> T:
    return await _with_runtime(args, lambda runtime: work(runtime.service), with_rules=with_rules)


def _actor(args: argparse.Namespace) -> Actor:
    return Actor.user(args.as_user) if getattr(args, "as_user", None) else Actor.system("cli")


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


def _print_view(view: CaseView) -> None:
    c = view.case
    print(f"{c.number}  {c.title}")
    for name in (
        "status", "priority", "origin", "contact_email", "contact_slack", "queue",
        "owner_team", "owner_user", "worked_by", "support_level", "category", "reason",
        "first_response_due", "resolve_by_due", "resolution", "parent_number",
        "created_at", "updated_at", "resolved_at", "closed_at",
    ):  # fmt: skip
        value = getattr(c, name)
        if value not in (None, ""):
            print(f"  {name.replace('_', ' ')}: {_iso(value)}")
    print("activities:")
    for a in view.activities:
        extra = f" [{a.delivery_state}]" if a.delivery_state else ""
        if a.due_at is not None:
            extra += f" due {a.due_at.isoformat(timespec='minutes')}"
        if a.assignee:
            extra += f" for {a.assignee}"
        if a.result:
            extra += f" ({a.result})"
        first = (a.subject or a.body_text).strip().splitlines()[:1]
        print(f"  #{a.id} {a.created_at:%Y-%m-%d %H:%M} {a.direction} {a.kind} {a.state}{extra}"
              f" {a.actor}: {first[0] if first else ''}")  # fmt: skip
    print("audit:")
    for e in view.audit:
        change = f" {e.field}: {e.old_value!r} -> {e.new_value!r}" if e.field else ""
        print(f"  {e.at:%Y-%m-%d %H:%M:%S} {e.actor_kind}:{e.actor_name} {e.action}{change}")


def _view_dict(view: CaseView) -> dict[str, Any]:
    return {
        "case": _case_dict(view.case),
        "activities": [
            {col: _iso(getattr(a, col)) for col in a.__table__.columns.keys()}  # noqa: SIM118
            for a in view.activities
        ],
        "audit": [
            {col: _iso(getattr(e, col)) for col in e.__table__.columns.keys()}  # noqa: SIM118
            for e in view.audit
        ],
    }
