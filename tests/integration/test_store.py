"""The case service on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import IntegrityError

from inbox_daemon.cases.directory import Directory, Queue, Team, User
from inbox_daemon.cases.enums import ActivityState, DeliveryState, Origin, Priority, Status
from inbox_daemon.cases.lifecycle import Cancel, CustomerReplied, Escalate, Reactivate
from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.errors import (
    CaseRuleError,
    NotFoundError,
    OpenActivitiesError,
    ReadOnlyCaseError,
    TransitionError,
)
from inbox_daemon.messages import Attachment
from inbox_daemon.service import CaseService
from inbox_daemon.store import cases as repo
from inbox_daemon.store import ids
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import ActivityRow, AuditRow, CaseRow, ReceiptRow

ALICE = Actor.user("alice")
DIRECTORY = Directory.of(
    users=[
        User("alice", "Alice", "alice@example.com", "UALICE"),
        User("bob", "Bob", "bob@example.com"),
        User("zoe", "Zoe", active=False),
    ],
    teams=[Team("tier1", "Tier 1", ("alice", "zoe")), Team("tier2", "Tier 2", ("bob",))],
    queues=[Queue("general", "General", team="tier1")],
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(db: Database, clock: Clock) -> CaseService:
    return CaseService(db, directory=DIRECTORY, clock=clock, message_domain="support.example.com")


async def new(svc: CaseService, **kw: object) -> str:
    args: dict[str, object] = {"title": "Printer on fire", "contact": "ann@example.com"}
    args.update(kw)
    case = await svc.create(actor=ALICE, **args)  # type: ignore[arg-type]
    return case.number


async def count(db: Database, table: type) -> int:
    async with db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_create_allocates_numbers_and_audits(svc: CaseService, db: Database) -> None:
    first = await new(svc, priority=Priority.HIGH, queue="general")
    second = await new(svc, contact="Bob Smith <BOB@Example.COM>")
    assert (first, second) == ("CAS-000001", "CAS-000002")
    case = await svc.get(second)
    assert (case.contact_email, case.contact_name) == ("bob@example.com", "Bob Smith")
    assert case.origin is Origin.PHONE
    view = await svc.show(first)
    assert view.case.priority is Priority.HIGH
    audit = {(e.field, e.new_value) for e in view.audit}
    assert ("title", "Printer on fire") in audit
    assert ("queue", "general") in audit
    assert {(e.actor_kind, e.actor_name, e.action) for e in view.audit} == {
        ("user", "alice", "create")
    }


async def test_fifty_concurrent_creates_get_fifty_numbers(svc: CaseService, db: Database) -> None:
    numbers = await asyncio.gather(*(new(svc, title=f"case {i}") for i in range(50)))
    assert len(set(numbers)) == 50
    assert sorted(numbers) == [f"CAS-{i:06d}" for i in range(1, 51)]
    assert await count(db, CaseRow) == 50


async def test_one_transaction_counts_case_numbers_and_gives_back_what_it_rolls_back(
    svc: CaseService, db: Database
) -> None:
    def draft(title: str) -> Case:
        return Case(number="", title=title, contact_email="ann@example.com")

    async with db.transaction() as session:
        made = [(await svc.create_in(session, draft(f"case {i}"), ALICE))[1] for i in range(3)]
        assert [row.number for row in made] == ["CAS-000001", "CAS-000002", "CAS-000003"]
        async with session.begin_nested():  # kept: a savepoint that commits
            made.append((await svc.create_in(session, draft("kept"), ALICE))[1])

        async def lost() -> None:
            async with session.begin_nested():  # rolled back: its number is a gap, not reused
                await svc.create_in(session, draft("lost"), ALICE)
                raise RuntimeError

        with pytest.raises(RuntimeError):
            await lost()
        made.append((await svc.create_in(session, draft("after"), ALICE))[1])
    assert [row.number for row in made][3:] == ["CAS-000004", "CAS-000006"]

    async def rolled_back() -> None:
        async with db.transaction() as session:
            await svc.create_in(session, draft("rolled back"), ALICE)
            raise RuntimeError

    with pytest.raises(RuntimeError):
        await rolled_back()
    assert await new(svc) == "CAS-000007"  # the rolled-back transaction gave CAS-000007 back
    async with db.transaction() as session:
        numbers = sorted((await session.execute(select(CaseRow.number))).scalars())
        created = (
            await session.execute(
                select(AuditRow.case_id).where(AuditRow.action == "create").distinct()
            )
        ).scalars()
        assert sorted(created) == sorted((await session.execute(select(CaseRow.id))).scalars())
    assert numbers == [f"CAS-{i:06d}" for i in (1, 2, 3, 4, 6, 7)]


async def test_open_case_counts_include_what_the_session_has_not_written(
    svc: CaseService, db: Database
) -> None:
    def draft(title: str, owner: str | None) -> Case:
        return Case(number="", title=title, contact_email="ann@example.com", owner_user=owner)

    async with db.transaction() as session:
        for i, owner in enumerate(["alice", "alice", "bob", None]):
            await svc.create_in(session, draft(f"written {i}", owner), ALICE)
    async with db.transaction() as session:
        assert await repo.open_case_counts(session) == {"alice": 2, "bob": 1}
        rows = list((await session.execute(select(CaseRow).order_by(CaseRow.id))).scalars())
        rows[0].owner_user = "bob"  # alice -> bob, not written yet
        rows[2].status = Status.RESOLVED.value  # bob's resolved case no longer counts
        await svc.create_in(session, draft("pending", "zoe"), ALICE)
        pending = await repo.open_case_counts(session)
        assert pending == {"alice": 1, "bob": 1, "zoe": 1}
        await session.flush()
        assert await repo.open_case_counts(session) == pending  # as the database now counts
        rows[1].owner_user = None
        assert await repo.open_case_counts(session) == {"bob": 1, "zoe": 1}


async def test_ids_handed_out_early_never_meet_ids_the_database_picks(db: Database) -> None:
    """Intake gives new rows their ids before writing them; a row another part of the same
    transaction adds without one, and the next transaction's rows, never collide with them."""
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def activity(case_id: int, **kw: object) -> ActivityRow:
        return ActivityRow(case_id=case_id, kind="note", direction="internal", state="completed",
                           actor="test",
                           created_at=now, updated_at=now, **kw)  # fmt: skip

    async with db.transaction() as session:
        case = CaseRow(id=await ids.new_id(session, CaseRow), number="CAS-000001", title="t",
                       status="new", priority="medium", origin="email", support_level=1,
                       tags=[], created_at=now, updated_at=now)  # fmt: skip
        session.add(case)
        early = [activity(case.id, id=await ids.new_id(session, ActivityRow)) for _ in range(2)]
        session.add_all(early)
        plain = activity(case.id)  # the database (or the count, on SQLite) picks its id
        session.add(plain)
        await session.flush()
        later = activity(case.id, id=await ids.new_id(session, ActivityRow))
        session.add(later)
    async with db.transaction() as session:
        nxt = activity(case.id, id=await ids.new_id(session, ActivityRow))
        session.add(nxt)
    taken = [a.id for a in (*early, plain, later, nxt)]
    assert len(set(taken)) == 5
    assert early[0].id < early[1].id < later.id < nxt.id
    assert await count(db, ActivityRow) == 5


async def test_unknown_case_is_a_clear_error(svc: CaseService) -> None:
    with pytest.raises(NotFoundError, match="no case 'CAS-999999'"):
        await svc.get("CAS-999999")


async def test_bad_contact_creates_nothing(svc: CaseService, db: Database) -> None:
    with pytest.raises(CaseRuleError, match="is not one email address or Slack user id"):
        await new(svc, contact="not a contact")
    with pytest.raises(CaseRuleError, match="needs a title"):
        await new(svc, title="  ")
    assert await count(db, CaseRow) == 0


async def test_resolve_with_open_task_fails_then_cancels(svc: CaseService, db: Database) -> None:
    number = await new(svc)
    task = await svc.add_task(number, "call the customer back", ALICE)
    with pytest.raises(OpenActivitiesError, match="1 open activity"):
        await svc.resolve(number, "fixed", ALICE)
    case = await svc.get(number)
    assert case.status is Status.NEW  # nothing changed
    await svc.resolve(number, "fixed", ALICE, open_activities="cancel")
    view = await svc.show(number)
    assert view.case.status is Status.RESOLVED
    states = {a.id: a.state for a in view.activities}
    assert states[task.id] == ActivityState.CANCELLED.value
    actions = [e.action for e in view.audit]
    assert "activities_cancelled" in actions
    assert actions[-1] == "resolve"


async def test_resolved_case_is_read_only_until_reactivated(svc: CaseService, db: Database) -> None:
    number = await new(svc)
    await svc.resolve(number, "fixed", ALICE)
    audit_before = await count(db, AuditRow)
    with pytest.raises(ReadOnlyCaseError, match="reactivate"):
        await svc.note(number, "one more thing", ALICE)
    with pytest.raises(ReadOnlyCaseError):
        await svc.assign(number, ALICE, user="alice")
    with pytest.raises(ReadOnlyCaseError):
        await svc.add_task(number, "x", ALICE)
    assert await count(db, AuditRow) == audit_before
    assert await count(db, ActivityRow) == 0
    await svc.change(number, Reactivate(), ALICE)
    await svc.note(number, "one more thing", ALICE)
    view = await svc.show(number)
    assert view.case.status is Status.IN_PROGRESS
    assert view.case.resolution is None
    resolved = [e for e in view.audit if e.field == "resolution"]
    assert [(e.old_value, e.new_value) for e in resolved] == [(None, "fixed"), ("fixed", None)]


async def test_cancelled_case_is_final(svc: CaseService) -> None:
    number = await new(svc)
    await svc.change(number, Cancel(), ALICE)
    with pytest.raises(TransitionError, match="from Cancelled to In progress"):
        await svc.change(number, Reactivate(), ALICE)
    outcome = await svc.change(number, CustomerReplied(), Actor.customer("ann@example.com"))
    assert outcome.case.status is Status.CANCELLED


async def test_pick_needs_queue_membership_and_active_user(svc: CaseService) -> None:
    number = await new(svc, queue="general")
    with pytest.raises(CaseRuleError, match="bob cannot pick"):
        await svc.pick(number, "bob")
    with pytest.raises(NotFoundError, match="not active"):
        await svc.pick(number, "zoe")
    with pytest.raises(NotFoundError, match="unknown user 'nobody'"):
        await svc.pick(number, "nobody")
    outcome = await svc.pick(number, "alice")
    assert (outcome.case.worked_by, outcome.case.status) == ("alice", Status.IN_PROGRESS)
    view = await svc.show(number)
    assert view.audit[-1].actor_name == "alice"
    assert view.audit[-1].action == "pick"


async def test_escalate_and_assign_record_who(svc: CaseService) -> None:
    number = await new(svc, queue="general")
    await svc.change(number, Escalate(team="tier2"), Actor.rule("outage reports"))
    await svc.assign(number, ALICE, user="bob")
    view = await svc.show(number)
    assert view.case.support_level == 2
    assert (view.case.owner_team, view.case.owner_user) == ("tier2", "bob")
    by = {(e.field, e.actor_kind, e.actor_name) for e in view.audit}
    assert ("support_level", "rule", "outage reports") in by
    assert ("owner_user", "user", "alice") in by
    with pytest.raises(NotFoundError, match="unknown team"):
        await svc.assign(number, ALICE, team="nope")


async def test_reply_queues_outgoing_message_with_fixed_message_id(
    svc: CaseService, db: Database
) -> None:
    number = await new(svc)
    activity = await svc.reply(number, "Please restart it.", ALICE)
    assert activity.delivery_state == DeliveryState.PENDING.value
    assert activity.message_id is not None
    assert activity.message_id.endswith(".cas-000001@support.example.com>")
    assert activity.recipients == ["ann@example.com"]
    case = await svc.get(number)
    assert case.status is Status.IN_PROGRESS
    assert case.first_responded_at is not None


async def test_note_stays_internal(svc: CaseService) -> None:
    number = await new(svc)
    note = await svc.note(number, "customer is a VIP", ALICE)
    assert (note.direction, note.delivery_state) == ("internal", None)


async def test_auto_close_after_waiting_period(svc: CaseService, clock: Clock) -> None:
    old = await new(svc)
    await svc.resolve(old, "fixed", ALICE)
    clock.now += timedelta(days=3)
    recent = await new(svc)
    await svc.resolve(recent, "fixed", ALICE)
    clock.now += timedelta(days=4)
    assert await svc.close_resolved() == [old]
    closed = await svc.show(old)
    assert closed.case.status is Status.CLOSED
    assert (closed.audit[-1].actor_kind, closed.audit[-1].actor_name) == ("system", "auto-close")
    assert (await svc.get(recent)).status is Status.RESOLVED
    clock.now += timedelta(days=3)
    assert await svc.close_resolved() == [recent]


async def test_receipts_are_unique_per_source_and_per_message(db: Database) -> None:
    now = datetime.now(UTC)
    row = {
        "channel": "email",
        "mailbox": "support",
        "external_id": "1:10",
        "message_id": "<a@x>",
        "content_hash": "h1",
        "outcome": "stored",
        "created_at": now,
    }
    async with db.transaction() as session:
        await session.execute(insert(ReceiptRow).values(**row))
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(insert(ReceiptRow).values(**{**row, "message_id": "<b@x>"}))
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(insert(ReceiptRow).values(**{**row, "external_id": "1:11"}))
    async with db.transaction() as session:  # same Message-ID, other content: a new message
        await session.execute(
            insert(ReceiptRow).values(**{**row, "external_id": "1:12", "content_hash": "h2"})
        )
    assert await count(db, ReceiptRow) == 2


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        async with db.transaction() as session:
            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
            keys = (await session.execute(text("PRAGMA foreign_keys"))).scalar_one()
            busy = (await session.execute(text("PRAGMA busy_timeout"))).scalar_one()
        assert (mode, keys, busy) == ("wal", 1, 30000)
    finally:
        await db.dispose()


def test_file_store_is_content_addressed(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    sha, size = store.put(b"hello")
    assert sha == "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    assert size == 5
    assert store.path_for(sha) == tmp_path / "files" / "2c" / "f2" / sha
    assert store.read(sha) == b"hello"
    assert store.put(b"hello") == (sha, 5)  # stored once
    files = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert files == [store.path_for(sha)]
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.path_for("../../etc/passwd")


def test_file_store_takes_an_attachment_from_memory_or_from_its_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "files")
    spooled = tmp_path / "part.bin"
    spooled.write_bytes(b"hello")
    in_memory = Attachment("a.txt", "text/plain", 5, content=b"hello")
    on_disk = Attachment("a.txt", "text/plain", 5, path=spooled)
    assert store.put_attachment(in_memory) == store.put_attachment(on_disk) == store.put(b"hello")
    with pytest.raises(ValueError, match="no bytes"):
        store.put_attachment(Attachment("gone.txt", "text/plain", 5))


async def test_sqlite_statements_make_one_trip_to_the_driver_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store/sqlite_driver.py: each statement is one call on aiosqlite's thread, and what
    SQLAlchemy reads back (rows, row counts, ids, errors) is as with SQLAlchemy's own cursor."""
    import aiosqlite

    from inbox_daemon.store.migrate import upgrade

    db = Database(f"sqlite:///{tmp_path / 'trips.db'}")
    await upgrade(db)
    trips: list[str] = []
    real = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: object, *args: object) -> object:
        trips.append(getattr(fn, "__name__", "?"))
        return await real(self, fn, *args)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    now = datetime.now(UTC)
    try:
        async with db.transaction() as s:
            await s.execute(text("SELECT 1"))  # the transaction's BEGIN IMMEDIATE is behind us
            trips.clear()
            rows = [
                {"channel": "email", "mailbox": "m", "external_id": str(i), "outcome": "x",
                 "created_at": now}
                for i in range(3)
            ]  # fmt: skip
            await s.execute(insert(ReceiptRow), rows)  # executemany
            assert trips == ["_run"]
            row = ReceiptRow(channel="email", mailbox="m", external_id="9", outcome="x",
                             created_at=now)  # fmt: skip
            s.add(row)
            await s.flush()  # an INSERT whose new id SQLAlchemy reads back
            assert row.id == 4
            assert trips == ["_run"] * 2
            counted = await s.scalar(select(func.count()).select_from(ReceiptRow))
            assert counted == 4
            result = await s.execute(text("UPDATE receipts SET outcome = 'y' WHERE id <= 2"))
            assert result.rowcount == 2  # type: ignore[attr-defined]
            assert trips == ["_run"] * 4
        with pytest.raises(IntegrityError):
            async with db.transaction() as s:
                await s.execute(insert(ReceiptRow), rows[:1])  # the same source again
        async with db.transaction() as s:
            outcomes = (await s.execute(select(ReceiptRow.outcome).order_by(ReceiptRow.id))).all()
        assert [o for (o,) in outcomes] == ["y", "y", "x", "x"]
    finally:
        await db.dispose()
