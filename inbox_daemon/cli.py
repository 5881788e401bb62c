"""The ``inbox-daemon`` command. Only this module exits; errors print as one line on stderr."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from inbox_daemon import __version__
from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.directory import Directory, Queue
from inbox_daemon.cases.enums import Origin, Priority, Status
from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.channels.base import Delivery, IngestResult
from inbox_daemon.channels.email.delivery import make_delivery, parse_lazily
from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.config import CONFIG_FILENAME, Settings, load_settings
from inbox_daemon.daemon import Daemon, Runtime
from inbox_daemon.errors import ConfigError, InboxError, NotFoundError, RejectedMessage
from inbox_daemon.logging import configure, get_logger
from inbox_daemon.messages import InboundMessage
from inbox_daemon.router.engine import ThreadFacts, explain, format_explanation
from inbox_daemon.router.loader import check_queue_removal, load_rules, summary
from inbox_daemon.router.schema import RulesErrors
from inbox_daemon.service import CaseService, CaseView
from inbox_daemon.store import cases as repo
from inbox_daemon.store import intake
from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import require_current, upgrade
from inbox_daemon.store.tables import QuarantineRow

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
    runtime = Runtime(_settings(args), with_rules=with_rules)
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


# --- commands ----------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir).resolve()
    target.mkdir(parents=True, exist_ok=True)
    templates = resources.files("inbox_daemon") / "templates"
    written = []
    for name in (CONFIG_FILENAME, "rules.yaml"):
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
            actor=_actor(args),
        )

    print(_run(_with_service(args, go)).number)
    return 0


def cmd_cases_list(args: argparse.Namespace) -> int:
    statuses = [Status(s) for s in args.status or []]

    async def go(svc: CaseService) -> list[Case]:
        return await svc.find(status=statuses, queue=args.queue, owner=args.owner)

    cases = _run(_with_service(args, go, with_rules=False))
    if args.json:
        print(json.dumps([_case_dict(c) for c in cases], indent=2))
    else:
        _print_table(cases)
    return 0


def cmd_cases_show(args: argparse.Namespace) -> int:
    view = _run(_with_service(args, lambda svc: svc.show(args.number), with_rules=False))
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
        _with_service(args, lambda svc: svc.reply(args.number, args.text, _actor(args)))
    )
    print(f"{args.number.upper()}: reply #{activity.id} queued as {activity.message_id}")
    return 0


def cmd_cases_note(args: argparse.Namespace) -> int:
    activity = _run(_with_service(args, lambda svc: svc.note(args.number, args.text, _actor(args))))
    print(f"{args.number.upper()}: note #{activity.id} added")
    return 0


def cmd_cases_assign(args: argparse.Namespace) -> int:
    if not (args.user or args.team or args.queue):
        raise UsageError("cases assign needs --user, --team or --queue")
    return _report(
        _run(
            _with_service(
                args,
                lambda svc: svc.assign(
                    args.number, _actor(args), user=args.user, team=args.team, queue=args.queue
                ),
            )
        )
    )


def cmd_cases_pick(args: argparse.Namespace) -> int:
    return _report(_run(_with_service(args, lambda svc: svc.pick(args.number, args.user))))


def _event_command(make: Callable[[argparse.Namespace], lifecycle.Event]) -> Callable[..., int]:
    def command(args: argparse.Namespace) -> int:
        event = make(args)
        return _report(
            _run(_with_service(args, lambda svc: svc.change(args.number, event, _actor(args))))
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
                    _actor(args),
                    cancel_open_activities=args.cancel_open_activities,
                ),
            )
        )
    )


def cmd_cases_close_resolved(args: argparse.Namespace) -> int:
    closed = _run(_with_service(args, lambda svc: svc.close_resolved()))
    print(f"closed {len(closed)} case(s)" + (f": {', '.join(closed)}" if closed else ""))
    return 0


def cmd_rules_check(args: argparse.Namespace) -> int:
    """Validate a rules file; with a database at hand, also refuse dropping busy queues."""
    settings: Settings | None = None
    if args.file:
        path = Path(args.file)
        with contextlib.suppress(ConfigError):  # a file can be checked on its own
            settings = _settings(args)
    else:
        settings = _settings(args)
        path = settings.rules_path
    loaded = load_rules(path)
    if settings is not None:
        busy = _run(_open_queues(settings))
        if busy is not None:
            old = Directory.of(queues=[Queue(q, q) for q in busy])
            problems = check_queue_removal(old, loaded.directory, busy, loaded=loaded)
            if problems:
                raise RulesErrors(problems)
    print(summary(loaded))
    return 0


async def _open_queues(settings: Settings) -> set[str] | None:
    """Queues with open cases, or None when the database is not there (yet)."""
    db = Database(settings.database_url)
    try:
        try:
            await require_current(db)
        except InboxError:
            return None
        async with db.transaction() as session:
            return await repo.queues_with_open_cases(session)
    finally:
        await db.dispose()


def _parse_file(path: Path, mailbox: str, our: frozenset[str]) -> InboundMessage:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    return parse_message(raw, channel_mailbox=mailbox, external_id=f"file:{path.name}",
                         our_addresses=our)  # fmt: skip


def cmd_rules_explain(args: argparse.Namespace) -> int:
    if args.rules:
        rules_path = Path(args.rules)
        our: frozenset[str] = frozenset()
    else:
        settings = _settings(args)
        rules_path, our = settings.rules_path, settings.our_addresses
    loaded = load_rules(rules_path)
    message = _parse_file(Path(args.message), args.mailbox, our)
    at = _parse_time(args.at) if args.at else datetime.now(UTC)
    facts = ThreadFacts(is_reply=bool(message.thread_ids))
    print(format_explanation(explain(loaded.rules, message, facts, at)))
    return 0


def _parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--at {text!r}: use ISO 8601, e.g. 2026-03-02T09:30+01:00") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


EX_TEMPFAIL = 75


def cmd_ingest(args: argparse.Namespace) -> int:
    """An MTA pipe: exit 0 once stored, 75 (temporary failure: retry later) if it could not be."""
    raw = sys.stdin.buffer.read()
    try:
        settings = _settings(args)
        names = [m.name for m in settings.mailbox]
        mailbox = args.mailbox or (names[0] if names else "stdin")
        if args.mailbox and names and args.mailbox not in names:
            raise UsageError(f"unknown mailbox {args.mailbox!r}: configured are {', '.join(names)}")
        result = _run(_with_runtime(args, lambda rt: _ingest_raw(rt, raw, mailbox)))
    except (UsageError, ConfigError):
        raise
    except Exception as exc:
        print(f"{PROG}: error: message not stored, try again later: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    print(f"{result.outcome}{' ' + result.case_number if result.case_number else ''}")
    return 0


async def _ingest_raw(runtime: Runtime, raw: bytes, mailbox: str) -> IngestResult:
    external_id = "stdin:" + hashlib.sha256(raw).hexdigest()
    return await runtime.ingestor(await _delivery(runtime, raw, mailbox, external_id))


async def _delivery(runtime: Runtime, raw: bytes, mailbox: str, external_id: str) -> Delivery:
    return await make_delivery(
        raw,
        parse=parse_lazily,
        mailbox=mailbox,
        external_id=external_id,
        our_addresses=runtime.settings.our_addresses,
        log=get_logger("inbox_daemon.cli"),
    )


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    async def go(runtime: Runtime) -> list[QuarantineRow]:
        async with runtime.db.transaction() as session:
            return await intake.quarantine_list(session, None if args.all else "held")

    rows = _run(_with_runtime(args, go, with_rules=False))
    if not rows:
        print("nothing in quarantine")
    for row in rows:
        print(f"#{row.id}  {row.created_at:%Y-%m-%d %H:%M}  {row.state:8}  {row.channel}:"
              f"{row.mailbox}  {row.external_id}  {row.size} bytes  {row.reason}")  # fmt: skip
    return 0


async def _quarantined(runtime: Runtime, qid: int) -> QuarantineRow:
    async with runtime.db.transaction() as session:
        row = await session.get(QuarantineRow, qid)
    if row is None:
        raise NotFoundError(f"no quarantined message #{qid}: `inbox-daemon quarantine list`")
    return row


def cmd_quarantine_show(args: argparse.Namespace) -> int:
    async def go(runtime: Runtime) -> tuple[QuarantineRow, bytes]:
        row = await _quarantined(runtime, args.id)
        return row, runtime.quarantine.read(row.sha256)

    row, raw = _run(_with_runtime(args, go, with_rules=False))
    print(f"#{row.id} {row.channel}:{row.mailbox} {row.external_id} ({row.state})")
    print(f"reason: {row.reason}")
    print(f"stored: {row.sha256} ({row.size} bytes)")
    if args.raw:
        sys.stdout.flush()
        sys.stdout.buffer.write(raw)
    else:
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        print(head[:8192].decode("utf-8", "replace"))
    return 0


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    async def go(runtime: Runtime) -> IngestResult:
        row = await _quarantined(runtime, args.id)
        raw = runtime.quarantine.read(row.sha256)
        delivery = await _delivery(runtime, raw, row.mailbox, row.external_id)
        return await runtime.ingestor.retry_quarantined(row.id, delivery)

    result = _run(_with_runtime(args, go))
    if result.outcome == "quarantined":
        raise RejectedMessage(f"#{args.id} still cannot be taken in: {result.detail}")
    print(f"#{args.id}: {result.outcome}{' ' + result.case_number if result.case_number else ''}")
    return 0


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help=f"config file (default: $INBOX_DAEMON_CONFIG or ./{CONFIG_FILENAME})",
    )
    acting = argparse.ArgumentParser(add_help=False)
    acting.add_argument("--as", dest="as_user", metavar="USER", help="the agent making the change")

    parser = argparse.ArgumentParser(
        prog=PROG, description="Customer email and Slack messages in, service cases out."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write a commented config and rules.yaml, create the database")
    p.add_argument("dir", nargs="?", default=".", help="folder to set up (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("run", parents=[common], help="run the daemon")
    p.add_argument("--once", action="store_true", help="one pass over every channel, then exit")
    p.set_defaults(func=cmd_run)

    db = sub.add_parser("db", help="database schema").add_subparsers(
        dest="db_command", required=True, metavar="COMMAND"
    )
    p = db.add_parser("upgrade", parents=[common], help="apply pending schema migrations")
    p.set_defaults(func=cmd_db_upgrade)

    cases = sub.add_parser("cases", help="work with cases").add_subparsers(
        dest="cases_command", required=True, metavar="COMMAND"
    )
    p = cases.add_parser("new", parents=[common, acting], help="log a case (e.g. a phone call)")
    p.add_argument("--title", required=True)
    p.add_argument("--contact", required=True, help="customer email address or Slack user id")
    p.add_argument("--priority", choices=[x.value for x in Priority], default="medium")
    p.add_argument("--origin", choices=[x.value for x in Origin], default="phone")
    p.add_argument("--description")
    p.add_argument("--queue")
    p.set_defaults(func=cmd_cases_new)

    p = cases.add_parser("list", parents=[common], help="list cases, newest first")
    p.add_argument("--status", action="append", choices=[x.value for x in Status])
    p.add_argument("--queue")
    p.add_argument("--owner", metavar="USER")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cases_list)

    p = cases.add_parser("show", parents=[common], help="a case with its activities and audit")
    p.add_argument("number")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cases_show)

    for name, helptext, func in (
        ("reply", "answer the customer through the case's channel", cmd_cases_reply),
        ("note", "add an internal note (never sent)", cmd_cases_note),
    ):
        p = cases.add_parser(name, parents=[common, acting], help=helptext)
        p.add_argument("number")
        p.add_argument("text")
        p.set_defaults(func=func)

    p = cases.add_parser("assign", parents=[common, acting], help="give the case to someone")
    p.add_argument("number")
    p.add_argument("--user")
    p.add_argument("--team")
    p.add_argument("--queue")
    p.set_defaults(func=cmd_cases_assign)

    p = cases.add_parser("escalate", parents=[common, acting], help="raise the support level")
    p.add_argument("number")
    p.add_argument("--user")
    p.add_argument("--team")
    p.add_argument("--queue")
    p.set_defaults(
        func=_event_command(lambda a: lifecycle.Escalate(user=a.user, team=a.team, queue=a.queue))
    )

    p = cases.add_parser("pick", parents=[common], help="work a case from its queue")
    p.add_argument("number")
    p.add_argument("--user", required=True)
    p.set_defaults(func=cmd_cases_pick)

    p = cases.add_parser("release", parents=[common, acting], help="put a picked case back")
    p.add_argument("number")
    p.set_defaults(func=_event_command(lambda a: lifecycle.Release()))

    p = cases.add_parser("status", parents=[common, acting], help="in progress / waiting / hold")
    p.add_argument("number")
    p.add_argument("status", choices=["in_progress", "waiting_for_response", "on_hold"])
    p.set_defaults(func=_event_command(lambda a: lifecycle.SetStatus(Status(a.status))))

    p = cases.add_parser("resolve", parents=[common, acting], help="resolve a case")
    p.add_argument("number")
    p.add_argument("--resolution", required=True)
    p.add_argument(
        "--cancel-open-activities", action="store_true", help="cancel open activities first"
    )
    p.set_defaults(func=cmd_cases_resolve)

    p = cases.add_parser("reactivate", parents=[common, acting], help="reopen a resolved case")
    p.add_argument("number")
    p.set_defaults(func=_event_command(lambda a: lifecycle.Reactivate()))

    p = cases.add_parser("cancel", parents=[common, acting], help="cancel a case (final)")
    p.add_argument("number")
    p.set_defaults(func=_event_command(lambda a: lifecycle.Cancel()))

    p = cases.add_parser(
        "close-resolved", parents=[common], help="close cases resolved past the waiting period"
    )
    p.set_defaults(func=cmd_cases_close_resolved)

    rules = sub.add_parser("rules", help="check and explain rules.yaml").add_subparsers(
        dest="rules_command", required=True, metavar="COMMAND"
    )
    p = rules.add_parser("check", parents=[common], help="validate rules.yaml (all errors)")
    p.add_argument("file", nargs="?", help="the rules file (default: the config's [rules] path)")
    p.set_defaults(func=cmd_rules_check)
    p = rules.add_parser("explain", parents=[common], help="which rules a message matches, and why")
    p.add_argument("message", metavar="MESSAGE.eml")
    p.add_argument("--rules", metavar="FILE", help="the rules file (default: the config's)")
    p.add_argument("--at", metavar="TIME", help="evaluate at this ISO 8601 time (default: now)")
    p.add_argument("--mailbox", default="support", help="the mailbox it arrived in")
    p.set_defaults(func=cmd_rules_explain)

    p = sub.add_parser("ingest", parents=[common], help="take one mail from stdin (an MTA pipe)")
    p.add_argument("--mailbox", metavar="NAME", help="the mailbox it arrived in")
    p.set_defaults(func=cmd_ingest)

    quarantine = sub.add_parser("quarantine", help="messages set aside").add_subparsers(
        dest="quarantine_command", required=True, metavar="COMMAND"
    )
    p = quarantine.add_parser("list", parents=[common], help="messages waiting for a person")
    p.add_argument("--all", action="store_true", help="also the ones already dealt with")
    p.set_defaults(func=cmd_quarantine_list)
    p = quarantine.add_parser("show", parents=[common], help="why a message was set aside")
    p.add_argument("id", type=int)
    p.add_argument("--raw", action="store_true", help="print the whole raw message")
    p.set_defaults(func=cmd_quarantine_show)
    p = quarantine.add_parser("retry", parents=[common], help="take a message in again")
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_quarantine_retry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure("warning", "auto")  # `run` reconfigures from the settings
    try:
        result: int = args.func(args)
        return result
    except InboxError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
