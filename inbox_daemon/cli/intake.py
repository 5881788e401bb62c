"""Commands about intake: rules check/explain, ingest from stdin, quarantine.

``ingest`` holds a small mail in memory; one larger than
:data:`~inbox_daemon.channels.email.spool.SPOOL_THRESHOLD` is written to a temporary spool
directory as it is read and parsed from there (removed before the command returns).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import sys
from datetime import UTC, datetime
from pathlib import Path

from inbox_daemon.acknowledge import load_templates
from inbox_daemon.cases.directory import Directory, Queue
from inbox_daemon.channels.base import Delivery, IngestResult
from inbox_daemon.channels.email.delivery import make_delivery, make_file_delivery, parse_lazily
from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.channels.email.spool import should_spool, spool_directory
from inbox_daemon.cli.common import (
    PROG,
    UsageError,
    _run,
    _settings,
    _with_runtime,
)
from inbox_daemon.config import Settings
from inbox_daemon.errors import ConfigError, InboxError, NotFoundError, RejectedMessage
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import InboundMessage
from inbox_daemon.router.engine import ThreadFacts, explain, format_explanation
from inbox_daemon.router.loader import check_queue_removal, load_rules, summary
from inbox_daemon.router.schema import RulesErrors
from inbox_daemon.runtime import Runtime
from inbox_daemon.service.notice_templates import load_notice_templates
from inbox_daemon.store import cases as repo
from inbox_daemon.store import intake
from inbox_daemon.store.db import Database
from inbox_daemon.store.migrate import schema_state
from inbox_daemon.store.tables import QuarantineRow


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
    checked = _check_templates(path.parent)
    if checked:
        print(f"templates: {', '.join(checked)} ok")
    return 0


def _check_templates(folder: Path) -> list[str]:
    """Load the acknowledgement and notification templates beside a rules file (a bad one
    raises :class:`ConfigError` naming it); the names of those found there."""
    load_templates(folder)
    load_notice_templates(folder)
    patterns = ("acknowledgement*.txt", "notification*.txt")
    return sorted(p.name for pattern in patterns for p in folder.glob(pattern))


async def _open_queues(settings: Settings) -> set[str] | None:
    """Queues with open cases, or None when the database is not there (yet), cannot be
    reached or is at another revision (`rules check` writes nothing, not even a schema)."""
    try:
        db = Database(settings.database_url, create_folder=False)
    except InboxError:
        return None
    try:
        try:
            state = await schema_state(db)
        except InboxError:
            return None
        if not state.up_to_date:
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
    account = loaded.accounts.match(email=message.sender.email)
    entitled = account is not None and loaded.accounts.entitlement_of(account.id) is not None
    facts = ThreadFacts(
        is_reply=bool(message.thread_ids),
        account=account.id if account is not None else None,
        tier=account.tier if account is not None else None,
        entitlement=args.entitlement if entitled else None,
    )
    if account is not None:
        print(f"account {account.id!r} ({account.name})" + (f", tier {account.tier}"
              if account.tier else "") + (f", entitlement {args.entitlement}" if entitled
              else ""))  # fmt: skip
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
    with contextlib.ExitStack() as spool:
        try:
            raw, path, digest = _read_stdin(spool)
        except OSError as exc:  # the temporary file, not the mail
            print(f"{PROG}: error: message not stored, try again later: {exc}", file=sys.stderr)
            return EX_TEMPFAIL
        try:
            settings = _settings(args)
            names = [m.name for m in settings.mailbox]
            mailbox = args.mailbox or (names[0] if names else "stdin")
            if args.mailbox and names and args.mailbox not in names:
                raise UsageError(
                    f"unknown mailbox {args.mailbox!r}: configured are {', '.join(names)}"
                )
            external_id = "stdin:" + digest
            result = _run(
                _with_runtime(args, lambda rt: _ingest_stdin(rt, raw, path, mailbox, external_id))
            )
        except (UsageError, ConfigError):
            raise
        except Exception as exc:
            print(f"{PROG}: error: message not stored, try again later: {exc}", file=sys.stderr)
            return EX_TEMPFAIL
    print(f"{result.outcome}{' ' + result.case_number if result.case_number else ''}")
    return 0


_STDIN_CHUNK = 1024 * 1024
#: How much of a quarantined mail `quarantine show` reads to print its header block.
_SHOW_HEAD = 64 * 1024


def _read_stdin(spool: contextlib.ExitStack) -> tuple[bytes, Path | None, str]:
    """stdin as ``(raw, None, sha256)`` when small; a larger mail goes to a file as it is read:
    ``(b"", path, sha256)``, the file in a spool directory that ``spool`` removes."""
    stream = sys.stdin.buffer
    digest = hashlib.sha256()
    held: list[bytes] = []
    size = 0
    while not should_spool(size) and (chunk := stream.read(_STDIN_CHUNK)):
        digest.update(chunk)
        held.append(chunk)
        size += len(chunk)
    if not should_spool(size):
        return b"".join(held), None, digest.hexdigest()
    path = spool.enter_context(spool_directory()) / "stdin.eml"
    with open(path, "xb") as out:
        out.writelines(held)
        held.clear()
        while chunk := stream.read(_STDIN_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return b"", path, digest.hexdigest()


async def _ingest_stdin(
    runtime: Runtime, raw: bytes, path: Path | None, mailbox: str, external_id: str
) -> IngestResult:
    if path is None:
        return await runtime.ingestor(await _delivery(runtime, raw, mailbox, external_id))
    delivery = await _file_delivery(runtime, path, path.parent / "parts", mailbox, external_id)
    return await runtime.ingestor(delivery)


async def _file_delivery(
    runtime: Runtime, path: Path, spool_dir: Path, mailbox: str, external_id: str
) -> Delivery:
    return await make_file_delivery(
        path,
        mailbox=mailbox,
        external_id=external_id,
        our_addresses=runtime.settings.our_addresses,
        log=get_logger("inbox_daemon.cli"),
        spool_dir=spool_dir,
    )


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
            state = None if args.all else "ignored" if args.ignored else "held"
            return await intake.quarantine_list(session, state)

    rows = _run(_with_runtime(args, go, with_rules=False))
    if not rows:
        print("nothing set aside" if args.ignored else "nothing in quarantine")
    for row in rows:
        again = f"  (delivered {row.deliveries} times)" if row.deliveries > 1 else ""
        print(f"#{row.id}  {row.created_at:%Y-%m-%d %H:%M}  {row.state:8}  {row.channel}:"
              f"{row.mailbox}  {row.external_id}  {row.size} bytes  {row.reason}"
              f"{again}")  # fmt: skip
    return 0


async def _quarantined(runtime: Runtime, qid: int) -> QuarantineRow:
    async with runtime.db.transaction() as session:
        row = await session.get(QuarantineRow, qid)
    if row is None:
        raise NotFoundError(f"no quarantined message #{qid}: `inbox-daemon quarantine list`")
    return row


def cmd_quarantine_show(args: argparse.Namespace) -> int:
    async def go(runtime: Runtime) -> tuple[QuarantineRow, Path]:
        row = await _quarantined(runtime, args.id)
        return row, runtime.quarantine.path_for(row.sha256)

    row, path = _run(_with_runtime(args, go, with_rules=False))
    print(f"#{row.id} {row.channel}:{row.mailbox} {row.external_id} ({row.state})")
    print(f"reason: {row.reason}")
    print(f"stored: {row.sha256} ({row.size} bytes)")
    if row.deliveries > 1:
        last = f"{row.updated_at:%Y-%m-%d %H:%M}"
        print(f"delivered: {row.deliveries} times (the same bytes; the last at {last})")
    with path.open("rb") as stored:  # a large mail is not read whole
        if args.raw:
            sys.stdout.flush()
            while chunk := stored.read(_STDIN_CHUNK):
                sys.stdout.buffer.write(chunk)
        else:
            start = stored.read(_SHOW_HEAD)
            head = start.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
            print(head[:8192].decode("utf-8", "replace"))
    return 0


def cmd_quarantine_retry(args: argparse.Namespace) -> int:
    async def go(runtime: Runtime) -> IngestResult:
        row = await _quarantined(runtime, args.id)
        if not should_spool(row.size):
            raw = runtime.quarantine.read(row.sha256)
            delivery = await _delivery(runtime, raw, row.mailbox, row.external_id)
            return await runtime.ingestor.retry_quarantined(row.id, delivery)
        with spool_directory() as spool:  # a large mail is parsed from its stored file
            path = runtime.quarantine.path_for(row.sha256)
            delivery = await _file_delivery(runtime, path, spool, row.mailbox, row.external_id)
            return await runtime.ingestor.retry_quarantined(row.id, delivery)

    result = _run(_with_runtime(args, go))
    if result.outcome == "quarantined":
        raise RejectedMessage(f"#{args.id} still cannot be taken in: {result.detail}")
    print(f"#{args.id}: {result.outcome}{' ' + result.case_number if result.case_number else ''}")
    return 0
