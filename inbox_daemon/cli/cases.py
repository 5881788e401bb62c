"""Commands that set up the daemon and work with cases."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import Origin, Priority, Status
from inbox_daemon.cases.model import Case
from inbox_daemon.cli.activities import spent_of, took
from inbox_daemon.cli.common import (
    PROG,
    UsageError,
    _actor,
    _case_dict,
    _print_table,
    _print_view,
    _run,
    _settings,
    _view_dict,
    _with_service,
)
from inbox_daemon.config import CONFIG_FILENAME, load_settings
from inbox_daemon.daemon import Daemon
from inbox_daemon.document import TEMPLATE_NAME
from inbox_daemon.logging import configure
from inbox_daemon.runtime import Runtime
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import upgrade

# --- commands ----------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir).resolve()
    target.mkdir(parents=True, exist_ok=True)
    templates = resources.files("inbox_daemon") / "templates"
    written = []
    for name in (CONFIG_FILENAME, "rules.yaml", TEMPLATE_NAME):
        dest = target / name
        if dest.exists() and not args.force:
            print(f"{dest} exists; kept it (use --force to overwrite)", file=sys.stderr)
            continue
        dest.write_text((templates / name).read_text())
        written.append(dest)
    settings = load_settings(target / CONFIG_FILENAME)
    for sub in ("attachments", "quarantine", "outgoing"):
        (settings.storage_path / sub).mkdir(parents=True, exist_ok=True)

    async def migrate() -> None:
        db = Database(settings.database_url)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    _run(migrate())
    for path in written:
        print(f"wrote {path}")
    print(f"database ready: {settings.database_url}")
    print(f"next: cd {target} && {PROG} run")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def go() -> str:
        db = Database(settings.database_url)
        try:
            state = await upgrade(db)
            return ", ".join(state.current)
        finally:
            await db.dispose()

    print(f"database at revision {_run(go())}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure(settings.logging.level, settings.logging.format)
    _run(Daemon(Runtime(settings)).run(once=args.once))
    return 0


def cmd_cases_new(args: argparse.Namespace) -> int:
    async def go(svc: CaseService) -> Case:
        return await svc.create(
            title=args.title,
            contact=args.contact,
            priority=Priority(args.priority),
            origin=Origin(args.origin),
            description=args.description or "",
            queue=args.queue,
            actor=_actor(args, svc),
        )

    print(_run(_with_service(args, go)).number)
    return 0


def cmd_cases_list(args: argparse.Namespace) -> int:
    statuses = [Status(s) for s in args.status or []]

    async def go(svc: CaseService) -> list[Case]:
        return await svc.find(
            status=statuses, queue=args.queue, owner=args.owner, account=args.account
        )

    # The accounts come from rules.yaml: read it when one is named.
    cases = _run(_with_service(args, go, with_rules=args.account is not None))
    if args.json:
        print(json.dumps([_case_dict(c) for c in cases], indent=2))
    else:
        _print_table(cases)
    return 0


def cmd_cases_show(args: argparse.Namespace) -> int:
    view = _run(_with_service(args, lambda svc: svc.show(args.number), with_rules="if_valid"))
    if args.json:
        print(json.dumps(_view_dict(view), indent=2))
    else:
        _print_view(view)
    return 0


def _report(outcome: lifecycle.Outcome) -> int:
    case = outcome.case
    print(f"{case.number}: {outcome.action} done, status {case.status.value}")
    return 0


def cmd_cases_reply(args: argparse.Namespace) -> int:
    activity = _run(
        _with_service(args, lambda svc: svc.reply(args.number, args.text, _actor(args, svc)))
    )
    print(f"{args.number.upper()}: reply #{activity.id} queued as {activity.message_id}")
    return 0


def cmd_cases_note(args: argparse.Namespace) -> int:
    spent = spent_of(args)
    activity = _run(
        _with_service(
            args,
            lambda svc: svc.note(args.number, args.text, _actor(args, svc), spent_minutes=spent),
        )
    )
    print(f"{args.number.upper()}: note #{activity.id} added{took(spent)}")
    return 0


def cmd_cases_assign(args: argparse.Namespace) -> int:
    if not (args.user or args.team or args.queue):
        raise UsageError("cases assign needs --user, --team or --queue")
    return _report(
        _run(
            _with_service(
                args,
                lambda svc: svc.assign(
                    args.number, _actor(args, svc), user=args.user, team=args.team, queue=args.queue
                ),
            )
        )
    )


def _event_command(make: Callable[[argparse.Namespace], lifecycle.Event]) -> Callable[..., int]:
    def command(args: argparse.Namespace) -> int:
        event = make(args)
        return _report(
            _run(_with_service(args, lambda svc: svc.change(args.number, event, _actor(args, svc))))
        )

    return command


def cmd_cases_resolve(args: argparse.Namespace) -> int:
    return _report(
        _run(
            _with_service(
                args,
                lambda svc: svc.resolve(
                    args.number,
                    args.resolution,
                    _actor(args, svc),
                    open_activities=(
                        "cancel"
                        if args.cancel_open_activities
                        else "complete"
                        if args.complete_open_activities
                        else "fail"
                    ),
                ),
            )
        )
    )


def cmd_cases_close_resolved(args: argparse.Namespace) -> int:
    closed = _run(_with_service(args, lambda svc: svc.close_resolved()))
    print(f"closed {len(closed)} case(s)" + (f": {', '.join(closed)}" if closed else ""))
    return 0
