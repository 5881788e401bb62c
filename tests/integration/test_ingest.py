"""The intake pipeline on real databases: idempotency, threading, reopen, loop safety."""

from __future__ import annotations

import collections
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import event, func, select

from inbox_daemon.acknowledge import load_templates
from inbox_daemon.cases.enums import Priority, Status
from inbox_daemon.cases.lifecycle import Close, Edit, SetStatus
from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.base import Delivery
from inbox_daemon.channels.email.quotes import strip_quoted_reply
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.messages import (
    Address,
    Attachment,
    ChannelKind,
    Checkpoint,
    InboundMessage,
    MessageFlags,
)
from inbox_daemon.router.loader import LoadedRules, load_rules_text
from inbox_daemon.service import CaseService
from inbox_daemon.store import intake
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.migrate import upgrade
from inbox_daemon.store.tables import (
    ActivityRow,
    AttachmentRow,
    AuditRow,
    CaseRow,
    QuarantineRow,
    ReceiptRow,
)

AGENT = Actor.user("alice")
RULES = """
version: 1
users:
  - {id: alice, name: Alice, email: alice@example.com}
  - {id: bob, name: Bob, email: bob@example.com}
teams:
  - {id: tier1, name: Tier 1, members: [alice, bob], strategy: round_robin}
  - {id: tier2, name: Tier 2, members: [bob], strategy: none}
queues:
  - {id: general, name: General, team: tier1}
  - {id: escalations, name: Escalations, team: tier2, default_priority: high}
sla:
  standard:
    business_time: false
    first_response: {low: 1d, medium: 4h, high: 1h, critical: 30m}
    resolve_by: {low: 5d, medium: 2d, high: 1d, critical: 4h}
rules:
  - name: outage reports
    when:
      any:
        - subject: {regex: "(?i)\\\\b(outage|down)\\\\b"}
        - from_domain: [bigcorp.example]
    then: {queue: escalations, priority: critical, sla: standard, tags: [outage]}
default: {queue: general, sla: standard}
"""


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def mail(
    n: int,
    subject: str = "Printer on fire",
    *,
    sender: str = "ann@example.com",
    in_reply_to: tuple[str, ...] = (),
    flags: MessageFlags | None = None,
    attachments: tuple[Attachment, ...] = (),
    message_id: str | None = None,
    text: str = "It smokes.",
) -> InboundMessage:
    mid = message_id or f"<m{n}@customer.example>"
    return InboundMessage(
        channel=ChannelKind.EMAIL,
        mailbox="support",
        external_id=f"7:{n}",
        sender=Address(sender, "Ann"),
        subject=subject,
        text=text,
        new_text=strip_quoted_reply(text),  # as the email channel separates it
        message_id=mid,
        in_reply_to=in_reply_to,
        references=in_reply_to,
        to=(Address("support@ours.example"),),
        flags=flags or MessageFlags(),
        attachments=attachments,
        content_hash=hashlib.sha256(f"{mid}{subject}{text}".encode()).hexdigest(),
    )


def delivery(msg: InboundMessage, mailbox: str = "support", uid: int | None = None) -> Delivery:
    uid = uid if uid is not None else int(msg.external_id.split(":")[1])
    return Delivery(
        channel="email",
        mailbox=mailbox,
        external_id=f"7:{uid}",
        raw=b"raw bytes of " + msg.external_id.encode(),
        message=replace(msg, mailbox=mailbox),
        checkpoint=Checkpoint(7, uid),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rules() -> LoadedRules:
    return load_rules_text(RULES, "rules.yaml")


@pytest.fixture
def svc(db: Database, clock: Clock, rules: LoadedRules) -> CaseService:
    return CaseService(
        db,
        directory=rules.directory,
        clock=clock,
        message_domain="ours.example",
        sla_lookup=rules.sla_of,
        zone_lookup=rules.zone_of,
        accounts=rules.accounts,
    )


@pytest.fixture
def ingest(svc: CaseService, tmp_path: Path, rules: LoadedRules) -> Ingestor:
    return Ingestor(
        svc,
        files=FileStore(tmp_path / "attachments"),
        quarantine=FileStore(tmp_path / "quarantine"),
        rules=lambda: rules,
        options=IntakeOptions(our_addresses=frozenset({"support@ours.example"})),
    )


#: RULES, and a rule that tags the mail of a customer who has an open case.
REGULARS = RULES.replace(
    "rules:\n",
    "rules:\n  - name: regulars\n    when: {customer_has_open_cases: true}\n"
    "    then: {tags: [regular]}\n",
)


def acknowledging(svc: CaseService, tmp_path: Path, rules: LoadedRules) -> Ingestor:
    """An Ingestor that acknowledges new cases, at most 3 answers per sender and hour."""
    return Ingestor(
        svc, files=FileStore(tmp_path / "a"), quarantine=FileStore(tmp_path / "q"),
        rules=lambda: rules,
        options=IntakeOptions(
            our_addresses=frozenset({"support@ours.example"}),
            acknowledgements=load_templates(), auto_answers_per_hour=3,
        ),
    )  # fmt: skip


async def rows(db: Database, model: type) -> int:
    async with db.transaction() as s:
        return int((await s.execute(select(func.count()).select_from(model))).scalar_one())


async def test_new_mail_creates_routed_case_once(
    ingest: Ingestor, db: Database, svc: CaseService
) -> None:
    first = await ingest(delivery(mail(1)))
    assert (first.outcome, first.case_number) == ("created", "CAS-000001")
    again = await ingest(delivery(mail(1)))
    assert again.outcome == "duplicate"
    other_box = await ingest(delivery(mail(1), mailbox="sales", uid=99))
    assert other_box.outcome == "duplicate"  # the same mail delivered to two of our mailboxes
    reused_id = mail(2, "Something else entirely", message_id="<m1@customer.example>")
    assert (await ingest(delivery(reused_id))).outcome == "created"  # same id, new content
    assert await rows(db, CaseRow) == 2
    assert await rows(db, ActivityRow) == 2
    view = await svc.show("CAS-000001")
    case = view.case
    assert (case.queue, case.owner_team, case.origin.value) == ("general", "tier1", "email")
    assert case.owner_user == "alice"  # round robin starts at the first member
    assert case.first_response_due == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert case.resolve_by_due == datetime(2026, 3, 4, 9, 0, tzinfo=UTC)
    routed = [e for e in view.audit if e.action == "routed"]
    assert routed[0].actor_kind == "rule"
    assert routed[0].actor_name == "default"
    assert len(routed[0].detail["rules_version"]) == 8
    created = [e for e in view.audit if e.action == "create"]
    assert {(e.actor_kind, e.actor_name) for e in created} == {("channel", "email:support")}
    assert (await svc.get("CAS-000002")).owner_user == "bob"  # and rotates
    async with db.transaction() as s:
        assert await intake.checkpoint(s, "support") == Checkpoint(7, 2)


async def test_rule_routes_outage_and_records_its_name(
    ingest: Ingestor, svc: CaseService, db: Database
) -> None:
    result = await ingest(delivery(mail(1, "Site DOWN since 9am")))
    view = await svc.show(result.case_number or "")
    assert view.case.queue == "escalations"
    assert view.case.priority.value == "critical"
    assert view.case.owner_team == "tier2"
    assert view.case.owner_user is None  # tier2 does not assign: the case waits to be picked
    assert view.case.first_response_due == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    routed = next(e for e in view.audit if e.action == "routed")
    assert routed.actor_name == "outage reports"
    assert routed.detail["tags"] == ["outage"]
    async with db.transaction() as s:
        row = (await s.execute(select(CaseRow))).scalar_one()
        assert row.tags == ["outage"]


async def test_reply_threads_by_message_id_and_case_number(
    ingest: Ingestor, svc: CaseService
) -> None:
    await ingest(delivery(mail(1)))
    ours = await svc.reply("CAS-000001", "Unplug it.", AGENT)
    assert ours.message_id is not None
    reply = await ingest(delivery(mail(2, "Re: Printer on fire", in_reply_to=(ours.message_id,))))
    assert (reply.outcome, reply.case_number) == ("appended", "CAS-000001")
    by_token = await ingest(delivery(mail(3, "Re: [CAS-000001] still smoking")))
    assert (by_token.outcome, by_token.case_number) == ("appended", "CAS-000001")
    customer_chain = await ingest(delivery(mail(4, "more", in_reply_to=("<m3@customer.example>",))))
    assert customer_chain.case_number == "CAS-000001"
    view = await svc.show("CAS-000001")
    assert [a.direction for a in view.activities] == [
        "incoming",
        "outgoing",
        "incoming",
        "incoming",
        "incoming",
    ]


@pytest.mark.parametrize("paused", [Status.WAITING_FOR_RESPONSE, Status.ON_HOLD])
async def test_reply_to_paused_case_reopens_it(
    ingest: Ingestor, svc: CaseService, paused: Status
) -> None:
    await ingest(delivery(mail(1)))
    await svc.pick("CAS-000001", "alice")
    await svc.change("CAS-000001", SetStatus(paused), AGENT)
    result = await ingest(delivery(mail(2, "Re: [CAS-000001] hello?")))
    assert result.outcome == "reopened"
    case = await svc.get("CAS-000001")
    assert (case.status, case.owner_user, case.worked_by, case.queue) == (
        Status.REOPENED, None, None, "general",
    )  # fmt: skip


async def test_reply_to_resolved_reopens_and_to_closed_opens_follow_up(
    ingest: Ingestor, svc: CaseService, clock: Clock
) -> None:
    await ingest(delivery(mail(1)))
    await svc.resolve("CAS-000001", "replaced toner", AGENT)
    reopened = await ingest(delivery(mail(2, "Re: [CAS-000001] it broke again")))
    assert reopened.outcome == "reopened"
    view = await svc.show("CAS-000001")
    assert view.case.status is Status.REOPENED
    assert view.case.owner_user is None
    reopen_audit = [e for e in view.audit if e.field == "status" and e.new_value == "reopened"]
    assert reopen_audit[0].actor_name == "email:support"
    assert reopen_audit[0].detail == {"message_id": "<m2@customer.example>"}

    await svc.resolve("CAS-000001", "replaced printer", AGENT)
    await svc.change("CAS-000001", Close(), Actor.system("auto-close"))
    follow = await ingest(delivery(mail(3, "Re: [CAS-000001] thanks, one more question")))
    assert (follow.outcome, follow.case_number, follow.detail) == (
        "follow_up",
        "CAS-000002",
        "CAS-000001",
    )
    new = await svc.get("CAS-000002")
    assert new.parent_number == "CAS-000001"
    assert new.status is Status.NEW
    assert (await svc.get("CAS-000001")).status is Status.CLOSED


async def test_reopen_window_opens_follow_up_for_old_resolved_case(
    svc: CaseService, tmp_path: Path, clock: Clock, rules: LoadedRules
) -> None:
    ingest = Ingestor(
        svc, files=FileStore(tmp_path / "a"), quarantine=FileStore(tmp_path / "q"),
        rules=lambda: rules, options=IntakeOptions(reopen_window=timedelta(days=30)),
    )  # fmt: skip
    await ingest(delivery(mail(1)))
    await svc.resolve("CAS-000001", "done", AGENT)
    clock.now += timedelta(days=31)
    result = await ingest(delivery(mail(2, "Re: [CAS-000001] again")))
    assert result.outcome == "follow_up"
    assert (await svc.get("CAS-000001")).status is Status.RESOLVED


async def test_auto_replies_and_bounces_never_reopen_or_create(
    ingest: Ingestor, svc: CaseService, db: Database
) -> None:
    await ingest(delivery(mail(1)))
    ours = await svc.reply("CAS-000001", "Unplug it.", AGENT)
    await svc.resolve("CAS-000001", "answered", AGENT)
    ooo = mail(
        2,
        "Out of office",
        in_reply_to=(ours.message_id or "",),
        flags=MessageFlags(auto_reply=True),
    )
    result = await ingest(delivery(ooo))
    assert (result.outcome, result.case_number) == ("recorded", "CAS-000001")
    assert (await svc.get("CAS-000001")).status is Status.RESOLVED
    bounce = mail(
        3,
        "Undelivered Mail",
        sender="mailer-daemon@mx.example",
        in_reply_to=(ours.message_id or "",),
        flags=MessageFlags(bounce=True, failed_recipients=("ann@example.com",)),
    )
    assert (await ingest(delivery(bounce))).outcome == "recorded"
    view = await svc.show("CAS-000001")
    sent = next(a for a in view.activities if a.id == ours.id)
    assert (sent.delivery_state, sent.last_error) == ("failed", "bounced: ann@example.com")
    assert view.case.status is Status.RESOLVED
    stray = mail(4, "Automatic reply: away", flags=MessageFlags(auto_reply=True))
    assert (await ingest(delivery(stray))).outcome == "set_aside"
    assert await rows(db, CaseRow) == 1


async def test_mail_from_our_own_address_answering_no_case_is_set_aside(
    ingest: Ingestor, db: Database
) -> None:
    result = await ingest(delivery(mail(1, sender="Support@Ours.Example")))
    assert (result.outcome, result.detail) == (
        "set_aside",
        "sent from one of our own addresses and answers no case",
    )
    assert await rows(db, CaseRow) == 0
    assert await rows(db, ReceiptRow) == 1  # remembered: not fetched again
    async with db.transaction() as session:
        kept = (await session.execute(select(QuarantineRow))).scalar_one()
    assert (kept.state, kept.external_id) == ("ignored", "7:1")  # and kept for a person


async def test_unparseable_mail_is_quarantined_once(
    ingest: Ingestor, db: Database, tmp_path: Path
) -> None:
    broken = Delivery(
        "email", "support", "7:5", b"\x00garbage", None, "no headers at all", Checkpoint(7, 5)
    )
    result = await ingest(broken)
    assert (result.outcome, result.detail) == ("quarantined", "no headers at all")
    assert (await ingest(broken)).outcome == "duplicate"
    async with db.transaction() as s:
        q = (await s.execute(select(QuarantineRow))).scalar_one()
        assert (q.reason, q.state, q.size) == ("no headers at all", "held", 8)
        assert FileStore(tmp_path / "quarantine").read(q.sha256) == b"\x00garbage"
        assert await intake.checkpoint(s, "support") == Checkpoint(7, 5)


async def test_the_same_bytes_delivered_again_count_on_one_quarantine_row(
    ingest: Ingestor, db: Database
) -> None:
    def broken(uid: int, mailbox: str = "support") -> Delivery:
        return Delivery("email", mailbox, f"7:{uid}", b"\x00garbage", None, "no headers at all",
                        Checkpoint(7, uid))  # fmt: skip

    results = [await ingest(broken(uid)) for uid in (5, 6, 7)]
    assert [r.outcome for r in results] == ["quarantined"] * 3
    assert (await ingest(broken(8, "sales"))).outcome == "quarantined"  # another mailbox
    async with db.transaction() as s:
        found = (await s.execute(select(QuarantineRow).order_by(QuarantineRow.id))).scalars()
        assert [(q.mailbox, q.external_id, q.deliveries) for q in found] == [
            ("support", "7:5", 3),
            ("sales", "7:8", 1),
        ]
        # every delivery is answered: none is offered again
        sources = {("email", "support", f"7:{uid}") for uid in (5, 6, 7)}
        assert await intake.sources_taken(s, list(sources)) == sources
    assert await rows(db, ReceiptRow) == 4


async def test_message_that_keeps_failing_is_set_aside(
    ingest: Ingestor, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def explode(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ingest.placement, "place", explode)
    d = delivery(mail(1))
    for _ in range(2):
        with pytest.raises(RuntimeError, match="disk on fire"):
            await ingest(d)
    result = await ingest(d)
    assert result.outcome == "quarantined"
    assert "after 3 attempts: RuntimeError: disk on fire" in result.detail
    assert await rows(db, CaseRow) == 0
    assert await rows(db, QuarantineRow) == 1
    assert (await ingest(d)).outcome == "duplicate"


async def test_attachments_are_stored_by_content(
    ingest: Ingestor, db: Database, tmp_path: Path
) -> None:
    pdf = Attachment("../../etc/passwd.pdf", "application/pdf", 4, content=b"%PDF")
    await ingest(delivery(mail(1, attachments=(pdf,))))
    await ingest(delivery(mail(2, "other", attachments=(pdf,))))
    async with db.transaction() as s:
        atts = list((await s.execute(select(AttachmentRow))).scalars())
    sha = hashlib.sha256(b"%PDF").hexdigest()
    assert [(a.sha256, a.size, a.filename) for a in atts] == [(sha, 4, "../../etc/passwd.pdf")] * 2
    stored = [p for p in (tmp_path / "attachments").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [sha]


async def test_a_batch_stores_its_attachments_before_its_transaction(
    ingest: Ingestor, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All files of a batch are on disk (synced) before its transaction starts; one too large
    is not stored; the same bytes twice are one file."""
    big = Attachment("huge.bin", "application/octet-stream", 10**9, content=b"x")
    pdf = Attachment("a.pdf", "application/pdf", 4, content=b"%PDF")
    png = Attachment("b.png", "image/png", 4, content=b"\x89PNG")
    batch = [
        in_group(delivery(mail(1, "one", attachments=(pdf, big))), 1),
        in_group(delivery(mail(2, "two", sender="bob@example.com", attachments=(png, pdf))), 1),
    ]
    on_disk: list[list[str]] = []
    begin = ingest.db.transaction

    def watched() -> Any:
        on_disk.append(sorted(p.name for p in (tmp_path / "attachments").rglob("*") if p.is_file()))
        return begin()

    monkeypatch.setattr(ingest.db, "transaction", watched)
    results = await ingest.batch(batch)
    assert [r.outcome for r in results] == ["created", "created"]
    shas = {data: hashlib.sha256(data).hexdigest() for data in (b"%PDF", b"\x89PNG")}
    assert on_disk[0] == sorted(shas.values())  # before the batch's transaction began
    async with begin() as s:
        rows = (await s.execute(select(AttachmentRow).order_by(AttachmentRow.id))).scalars()
        assert [(a.filename, a.sha256) for a in rows] == [
            ("a.pdf", shas[b"%PDF"]),
            ("b.png", shas[b"\x89PNG"]),
            ("a.pdf", shas[b"%PDF"]),
        ]


async def test_reopened_case_moves_only_when_a_rule_says_so(
    ingest: Ingestor, svc: CaseService
) -> None:
    await ingest(delivery(mail(1, "Site down")))  # outage rule: escalations
    await svc.resolve("CAS-000001", "restarted", AGENT)
    await ingest(delivery(mail(2, "Re: [CAS-000001] thanks")))  # only the default matches
    case = await svc.get("CAS-000001")
    assert (case.status, case.queue) == (Status.REOPENED, "escalations")

    await ingest(delivery(mail(3, "Printer jam")))  # default: general
    await svc.resolve("CAS-000002", "cleared", AGENT)
    await ingest(delivery(mail(4, "Re: [CAS-000002] now the whole site is down")))
    moved = await svc.show("CAS-000002")
    assert (moved.case.queue, moved.case.owner_team) == ("escalations", "tier2")
    assert moved.case.priority.value == "critical"
    queue_change = next(
        e for e in moved.audit if e.field == "queue" and e.new_value == "escalations"
    )
    assert (queue_change.actor_kind, queue_change.actor_name) == ("rule", "outage reports")


async def test_round_robin_survives_a_restart(
    db: Database, clock: Clock, rules: LoadedRules, tmp_path: Path
) -> None:
    def fresh() -> tuple[Ingestor, CaseService]:
        svc = CaseService(db, directory=rules.directory, clock=clock)
        files = FileStore(tmp_path / "a")
        return Ingestor(svc, files=files, quarantine=files, rules=lambda: rules), svc

    ingest, svc = fresh()
    await ingest(delivery(mail(1, "one")))
    ingest, svc = fresh()  # a new daemon process on the same database
    await ingest(delivery(mail(2, "two")))
    await ingest(delivery(mail(3, "three")))
    owners = [(await svc.get(f"CAS-00000{i}")).owner_user for i in (1, 2, 3)]
    assert owners == ["alice", "bob", "alice"]


async def test_new_email_case_is_acknowledged_within_the_rate_limit(
    svc: CaseService, tmp_path: Path, rules: LoadedRules, db: Database
) -> None:
    woken = []
    svc.on_outgoing = lambda: woken.append(True)
    ingest = acknowledging(svc, tmp_path, rules)
    first = await ingest(delivery(mail(1)))
    assert first.queued_outgoing
    assert woken == [True]
    view = await svc.show("CAS-000001")
    ack = next(a for a in view.activities if a.direction == "outgoing")
    assert (ack.automatic, ack.delivery_state, ack.recipients) == (
        True,
        "pending",
        ["ann@example.com"],
    )
    assert ack.in_reply_to == "<m1@customer.example>"
    assert "CAS-000001" in ack.body_text
    # a reply on the case is not acknowledged again
    assert not (await ingest(delivery(mail(2, "Re: [CAS-000001] more")))).queued_outgoing
    # a noreply sender never is
    assert not (
        await ingest(delivery(mail(3, "Report", sender="no-reply@shop.example")))
    ).queued_outgoing
    # an autoresponder that does not say so, opening case after case, gets 3 answers an hour
    acked = [
        (
            await ingest(delivery(mail(10 + i, f"Ticket {i}", sender="bot@loop.example")))
        ).queued_outgoing
        for i in range(10)
    ]
    assert acked == [True, True, True] + [False] * 7


async def test_sla_clock_stops_while_paused_and_recounts_on_priority_change(
    ingest: Ingestor, svc: CaseService, clock: Clock
) -> None:
    await ingest(delivery(mail(1)))  # 09:00, standard SLA, medium: 4h / 2d in calendar time
    case = await svc.get("CAS-000001")
    assert case.sla_policy == "standard"
    assert case.first_response_due == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    clock.now += timedelta(hours=1)  # 10:00
    await svc.change("CAS-000001", SetStatus(Status.WAITING_FOR_RESPONSE), AGENT)
    clock.now += timedelta(hours=2)  # 12:00: the customer answers, the clock runs again
    await ingest(delivery(mail(2, "Re: [CAS-000001] here you go")))
    case = await svc.get("CAS-000001")
    assert case.status is Status.REOPENED
    assert case.first_response_due == datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    assert case.resolve_by_due == datetime(2026, 3, 4, 11, 0, tzinfo=UTC)
    # high: 1h / 1d from creation; the pause began after the 10:00 first-response target
    await svc.change("CAS-000001", Edit({"priority": Priority.HIGH}), AGENT)
    view = await svc.show("CAS-000001")
    assert view.case.first_response_due == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert view.case.resolve_by_due == datetime(2026, 3, 3, 11, 0, tzinfo=UTC)
    changed = {e.field for e in view.audit if e.action == "edit"}
    assert changed == {"priority", "first_response_due", "resolve_by_due"}


async def test_new_case_takes_bare_title_reply_to_contact_and_new_text(
    svc: CaseService, tmp_path: Path, rules: LoadedRules, db: Database
) -> None:
    ingest = Ingestor(
        svc, files=FileStore(tmp_path / "a"), quarantine=FileStore(tmp_path / "q"),
        rules=lambda: rules, options=IntakeOptions(max_attachment_bytes=1000),
    )  # fmt: skip
    big = Attachment("dump.bin", "application/octet-stream", 5000, content=b"x" * 5000)
    small = Attachment("log.txt", "text/plain", 3, content=b"log")
    msg = replace(
        mail(
            1, "AW: Fwd: WG:  Printer   jam", text="It jams again.\n\nOn Mon, Bob wrote:\n> old\n"
        ),
        reply_to=(Address("helpdesk-owner@example.com", "Owner"),),
        attachments=(big, small),
    )
    await ingest(delivery(msg))
    view = await svc.show("CAS-000001")
    assert view.case.title == "Printer jam"
    assert (view.case.contact_email, view.case.contact_name) == (
        "helpdesk-owner@example.com",
        "Owner",
    )
    assert view.case.description == "It jams again."
    activity = view.activities[0]
    assert activity.body_new == "It jams again."
    assert activity.body_text.startswith("It jams again.\n\nOn Mon, Bob wrote:\n> old\n")
    assert "[attachment 'dump.bin' (0.0 MB) not kept: larger than the 0 MB limit]" in (
        activity.body_text
    )
    async with db.transaction() as s:
        names = list((await s.execute(select(AttachmentRow.filename))).scalars())
    assert names == ["log.txt"]


async def test_an_answer_threads_to_the_customer_not_to_their_auto_reply(
    ingest: Ingestor, svc: CaseService
) -> None:
    await ingest(delivery(mail(1)))
    ours = await svc.reply("CAS-000001", "Unplug it.", AGENT)
    ooo = mail(2, "Out of office", in_reply_to=(ours.message_id or "",),
               flags=MessageFlags(auto_reply=True))  # fmt: skip
    assert (await ingest(delivery(ooo))).outcome == "recorded"
    again = await svc.reply("CAS-000001", "Still there?", AGENT)
    assert again.in_reply_to == "<m1@customer.example>"


# -- batches -----------------------------------------------------------------------------------


def in_group(d: Delivery, first: int) -> Delivery:
    assert d.checkpoint is not None
    return replace(d, checkpoint=Checkpoint(7, d.checkpoint.uid, group_start=first))


async def test_a_batch_takes_every_message_as_one_at_a_time_would(
    ingest: Ingestor, db: Database, svc: CaseService
) -> None:
    first = mail(1)
    reply = mail(2, "Re: Printer on fire", in_reply_to=(first.message_id,), text="Still.")
    bad = Delivery("email", "support", "7:4", b"\x00junk", None, "no headers", Checkpoint(7, 4))
    batch = [
        delivery(first),
        delivery(reply),
        delivery(first, mailbox="sales", uid=3),  # the same mail via another of our mailboxes
        bad,
        delivery(mail(5, "Another thing", sender="bob@example.com")),
    ]
    batch = [in_group(d, 1) for d in batch]
    results = await ingest.batch(batch)
    assert [r.outcome for r in results] == [
        "created",
        "appended",
        "duplicate",
        "quarantined",
        "created",
    ]
    assert [r.case_number for r in results] == [
        "CAS-000001",
        "CAS-000001",
        None,
        None,
        "CAS-000002",
    ]
    async with db.transaction() as s:
        saved = await intake.checkpoint(s, "support")
        assert saved == Checkpoint(7, 5)
        assert saved is not None
        assert saved.group_start == 1
    view = await svc.show("CAS-000001")
    assert [a.message_id for a in view.activities if a.direction == "incoming"] == [
        first.message_id,
        reply.message_id,
    ]
    # The audit rows recorded while the batch ran were all written, each with its case.
    assert [e.action for e in view.audit if e.action in ("create", "routed")][-1] == "routed"
    assert {e.action for e in (await svc.show("CAS-000002")).audit} >= {"create", "routed"}
    assert [r.outcome for r in await ingest.batch(batch)] == ["duplicate"] * 5


async def test_a_failing_message_costs_its_batch_mates_a_retry_not_their_place(
    ingest: Ingestor, db: Database, svc: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    place = ingest.placement.place

    async def explode_on_two(
        session: object, delivery: Delivery, msg: InboundMessage, now: datetime, as_case: bool
    ) -> object:
        if msg.subject == "two":
            raise RuntimeError("disk on fire")
        return await place(session, delivery, msg, now, as_case)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest.placement, "place", explode_on_two)
    batch = [delivery(mail(n, name, sender=f"{name}@example.com"))
             for n, name in ((1, "one"), (2, "two"), (3, "three"))]  # fmt: skip
    for _attempt in (1, 2):
        with pytest.raises(RuntimeError, match="disk on fire"):
            await ingest.batch(batch)
        # The batch's own transaction left nothing; one at a time, "one" got in, once.
        assert await rows(db, CaseRow) == 1
    results = await ingest.batch(batch)
    assert [r.outcome for r in results] == ["duplicate", "quarantined", "created"]
    assert await rows(db, CaseRow) == 2
    assert await rows(db, QuarantineRow) == 1
    # Nothing of the transactions rolled back was written: one creation trail per case.
    async with db.transaction() as s:
        created = list(
            (await s.execute(select(AuditRow.case_id).where(AuditRow.action == "create"))).scalars()
        )
        case_ids = sorted((await s.execute(select(CaseRow.id))).scalars())
    assert sorted(set(created)) == case_ids
    assert created.count(case_ids[0]) == created.count(case_ids[1]) > 0


async def test_a_batch_counts_its_own_answers_and_cases(
    svc: CaseService, tmp_path: Path, db: Database
) -> None:
    """What one message of a batch changes (an answer sent, a case opened) the next one sees,
    exactly as if each had its own transaction."""
    rules = load_rules_text(REGULARS, "rules.yaml")
    ingest = acknowledging(svc, tmp_path, rules)
    await ingest(delivery(mail(1, "Earlier", sender="bot@loop.example")))  # one answer already
    bots = [delivery(mail(10 + i, f"Ticket {i}", sender="bot@loop.example")) for i in range(4)]
    new = [delivery(mail(20 + i, f"New {i}", sender="new@example.com")) for i in range(2)]
    results = await ingest.batch(bots + new)
    assert [r.outcome for r in results] == ["created"] * 6
    assert [r.queued_outgoing for r in results] == [True, True, False, False, True, True]
    tags = {}
    for result in results:
        assert result.case_number is not None
        tags[result.case_number] = await repo_tags(db, result.case_number)
    # the newcomer's second mail sees the case their first one opened
    assert list(tags.values()) == [["regular"]] * 4 + [[], ["regular"]]


async def test_a_batch_threads_to_what_it_wrote_itself(ingest: Ingestor, svc: CaseService) -> None:
    """Replies, case numbers and the round-robin turn within one batch: the batch is written
    at its end, and still each message sees what the ones before it did."""
    await ingest(delivery(mail(1, "Old", sender="ann@example.com")))  # CAS-000001, alice
    batch = [
        delivery(mail(10, "New thing", sender="bob@example.com")),
        delivery(mail(11, "Re: New thing", sender="bob@example.com",
                      in_reply_to=("<m10@customer.example>",))),
        delivery(mail(12, "Third", sender="carol@example.com")),
        delivery(mail(13, "Re: [CAS-000003] again", sender="carol@example.com")),
        # refers to the old case and to one of the batch: the newest activity's case wins
        delivery(mail(14, "mixed", sender="dan@example.com",
                      in_reply_to=("<m10@customer.example>", "<m1@customer.example>"))),
    ]  # fmt: skip
    results = await ingest.batch([in_group(d, 10) for d in batch])
    assert [(r.outcome, r.case_number) for r in results] == [
        ("created", "CAS-000002"),
        ("appended", "CAS-000002"),
        ("created", "CAS-000003"),
        ("appended", "CAS-000003"),
        ("appended", "CAS-000002"),
    ]
    owners = [(await svc.get(f"CAS-00000{i}")).owner_user for i in (1, 2, 3)]
    assert owners == ["alice", "bob", "alice"]  # the rotation went on inside the batch
    view = await svc.show("CAS-000002")
    assert [a.message_id for a in view.activities] == [
        "<m10@customer.example>",
        "<m11@customer.example>",
        "<m14@customer.example>",
    ]


async def test_a_batch_costs_the_same_statements_whatever_its_size(
    svc: CaseService, tmp_path: Path, db: Database, rules: LoadedRules
) -> None:
    """Each table a batch writes gets one INSERT for the batch, not one per message."""
    ingest = acknowledging(svc, tmp_path, rules)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()[:3]))

    async def statements_for(first: int, size: int) -> collections.Counter[str]:
        batch = [delivery(mail(n, f"Thing {n}", sender=f"c{n}@example.com"))
                 for n in range(first, first + size)]  # fmt: skip
        statements.clear()
        event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
        try:
            results = await ingest.batch([in_group(d, first) for d in batch])
        finally:
            event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
        assert [(r.outcome, r.queued_outgoing) for r in results] == [("created", True)] * size
        return collections.Counter(statements)

    await statements_for(1, 3)  # the first batch also makes the mailbox's and teams' rows
    small = await statements_for(10, 5)
    large = await statements_for(100, 41)
    # PostgreSQL takes ids from their sequences in blocks that double: a few queries more
    sequence = next((k for k in large if k.startswith("SELECT nextval(")), "")
    assert small.pop(sequence, 0) <= large.pop(sequence, 0) <= 6
    assert small == large
    assert large["INSERT INTO cases"] == 1
    assert large["INSERT INTO activities"] == 1  # the mails and their acknowledgements
    assert sum(large.values()) < 20
    assert await rows(db, CaseRow) == 49


async def test_a_batch_takes_the_case_counter_before_a_team_rotation(
    ingest: Ingestor, db: Database
) -> None:
    """Always the counter's lock first, then a rotation's: two instances' batches then never
    hold one each and wait for the other's (PostgreSQL would abort one as a deadlock)."""
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(" ".join(statement.split()[:3]))

    event.listen(db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        await ingest.batch([in_group(delivery(mail(n, f"case {n}")), 1) for n in (1, 2)])
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", seen)
    counter = statements.index("UPDATE counters SET")
    rotation = next(i for i, s in enumerate(statements) if s.startswith("SELECT team_rotation"))
    assert counter < rotation


async def test_least_open_assignment_counts_the_batch_it_is_in(
    svc: CaseService, tmp_path: Path, db: Database
) -> None:
    """Least-open assignment inside a batch counts the batch's own new cases (not yet
    written) as a batch of one message each would."""
    rules = load_rules_text(RULES.replace("strategy: round_robin", "strategy: least_open"), "r")
    ingest = Ingestor(svc, files=FileStore(tmp_path / "a"), quarantine=FileStore(tmp_path / "q"),
                      rules=lambda: rules)  # fmt: skip
    await ingest(delivery(mail(1, "one")))  # alice: 1 open, bob: 0
    batch = [delivery(mail(n, f"case {n}", sender=f"c{n}@example.com")) for n in range(2, 7)]
    results = await ingest.batch([in_group(d, 2) for d in batch])
    owners = [(await svc.get(r.case_number or "")).owner_user for r in results]
    assert owners == ["bob", "alice", "bob", "alice", "bob"]


async def repo_tags(db: Database, number: str) -> list[str]:
    async with db.transaction() as s:
        return list(
            (await s.execute(select(CaseRow.tags).where(CaseRow.number == number))).scalar_one()
        )


@contextlib.asynccontextmanager
async def second_database(db_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """Another empty, migrated database on the same backend as ``db_url``."""
    from tests.conftest import drop_postgres_database, make_postgres_database

    url = f"sqlite:///{tmp_path / 'twin.db'}" if db_url.startswith("sqlite") else None
    url = url or await make_postgres_database()
    database = Database(url)
    try:
        await upgrade(database)
        yield database
    finally:
        await database.dispose()
        if not url.startswith("sqlite"):
            await drop_postgres_database(url)


async def snapshot(db: Database) -> dict[str, list[tuple[object, ...]]]:
    """What intake wrote, without ids and the random parts (our Message-IDs)."""
    async with db.transaction() as s:
        numbers = dict((await s.execute(select(CaseRow.id, CaseRow.number))).all())
        cases = [
            (c.number, c.title, c.status, c.priority, c.queue, c.owner_team, c.owner_user,
             tuple(c.tags or ()), numbers.get(c.parent_id), c.contact_email)
            for c in (await s.execute(select(CaseRow).order_by(CaseRow.id))).scalars()
        ]  # fmt: skip
        activities = [
            (numbers[a.case_id], a.direction, a.kind, a.state, a.delivery_state, a.automatic,
             a.message_id if a.direction == "incoming" else None, a.subject, a.body_new)
            for a in (await s.execute(select(ActivityRow).order_by(ActivityRow.id))).scalars()
        ]  # fmt: skip
        audit = [
            (numbers[e.case_id], e.action, e.field, e.old_value, e.new_value, e.actor_kind,
             e.actor_name)
            for e in (await s.execute(select(AuditRow).order_by(AuditRow.id))).scalars()
        ]  # fmt: skip
        receipts = [
            (r.mailbox, r.external_id, r.outcome, r.message_id)
            for r in (await s.execute(select(ReceiptRow).order_by(ReceiptRow.id))).scalars()
        ]
        quarantine = [
            (q.external_id, q.reason)
            for q in (await s.execute(select(QuarantineRow).order_by(QuarantineRow.id))).scalars()
        ]
    return {"cases": cases, "activities": activities, "audit": audit, "receipts": receipts,
            "quarantine": quarantine}  # fmt: skip


async def test_a_batch_writes_exactly_what_one_message_at_a_time_writes(
    db: Database, db_url: str, tmp_path: Path, clock: Clock, rules: LoadedRules
) -> None:
    """Every kind of message in one batch: new, reply, reopen, follow-up, the same mail twice,
    an auto-reply and a bounce on our answer, an automatic mail answering nothing, our own
    mail, an unparseable one, a newcomer writing twice. Taken one at a time into one database
    and as one batch into another, they leave the same rows behind."""

    rules = load_rules_text(REGULARS, "rules.yaml")

    async def prepare(database: Database) -> tuple[Ingestor, str]:
        svc = CaseService(database, directory=rules.directory, clock=clock,
                          message_domain="ours.example", sla_lookup=rules.sla_of)  # fmt: skip
        ingest = acknowledging(svc, tmp_path / str(id(database)), rules)
        await ingest(delivery(mail(1, "Printer on fire")))  # CAS-000001, to be resolved
        await ingest(delivery(mail(2, "Scanner jammed", sender="bob@example.com")))  # closed
        await ingest(delivery(mail(3, "Login fails", sender="carol@example.com")))  # answered
        ours = await svc.reply("CAS-000003", "Reset it.", AGENT)
        await svc.resolve("CAS-000001", "replaced toner", AGENT)
        await svc.resolve("CAS-000002", "cleared", AGENT)
        await svc.change("CAS-000002", Close(), Actor.system("auto-close"))
        return ingest, ours.message_id or ""

    def scenario(ours: str) -> list[Delivery]:
        new = mail(10, "Outage in Berlin", sender="dave@bigcorp.example")
        auto = MessageFlags(auto_reply=True)
        bounce = MessageFlags(bounce=True, failed_recipients=("carol@example.com",))
        return [
            delivery(new),
            delivery(mail(11, "Re: Outage", in_reply_to=(new.message_id or "",),
                          sender="dave@bigcorp.example")),
            delivery(mail(12, "Re: [CAS-000001] broken again")),
            delivery(mail(13, "Re: [CAS-000002] one more thing", sender="bob@example.com")),
            delivery(mail(22, "And the fax", text="The fax too.")),  # ann's case is open again
            delivery(new, mailbox="sales", uid=14),
            delivery(mail(15, "Out of office", in_reply_to=(ours,), flags=auto)),
            delivery(mail(16, "Undelivered", sender="mailer-daemon@mx.example",
                          in_reply_to=(ours,), flags=bounce)),
            delivery(mail(17, "Automatic reply", flags=auto)),
            delivery(mail(18, "Loop?", sender="support@ours.example")),
            Delivery("email", "support", "7:19", b"\x00junk", None, "no headers",
                     Checkpoint(7, 19)),
            delivery(mail(20, "First question", sender="erin@example.com")),
            delivery(mail(21, "Second question", sender="erin@example.com")),
        ]  # fmt: skip

    one_by_one, ours = await prepare(db)
    singles = [await one_by_one(d) for d in scenario(ours)]
    async with second_database(db_url, tmp_path) as twin:
        batched, twin_ours = await prepare(twin)
        with structlog.testing.capture_logs() as logs:
            together = await batched.batch(scenario(twin_ours))
        fell_back = [e for e in logs if e["event"].startswith("batch could not be stored")]
        assert fell_back == []  # all of it in one transaction
        assert [(r.outcome, r.case_number, r.detail) for r in together] == [
            (r.outcome, r.case_number, r.detail) for r in singles
        ]
        assert [r.outcome for r in together] == [
            "created", "appended", "reopened", "follow_up", "created", "duplicate",
            "recorded", "recorded", "set_aside", "set_aside", "quarantined", "created", "created",
        ]  # fmt: skip
        after = await snapshot(db)
        assert await snapshot(twin) == after
    tagged = {number: tags for number, _t, _s, _p, _q, _o, _u, tags, *_ in after["cases"]}
    assert tagged["CAS-000006"] == ("regular",)  # ann, whose case was reopened in the batch
    assert tagged["CAS-000007"] == ()  # erin's first
    assert tagged["CAS-000008"] == ("regular",)  # erin's second


async def test_replies_to_a_merged_cases_thread_land_on_the_case_it_went_into(
    ingest: Ingestor, svc: CaseService
) -> None:
    await ingest(delivery(mail(1)))
    await ingest(delivery(mail(2, "Printer smoking again", sender="ben@example.com")))
    ours = await svc.reply("CAS-000002", "Unplug it.", AGENT)
    await svc.merge("CAS-000002", "CAS-000001", AGENT)
    by_header = await ingest(
        delivery(mail(3, "Re: Printer", sender="ben@example.com", in_reply_to=(ours.message_id,)))
    )
    assert (by_header.outcome, by_header.case_number) == ("appended", "CAS-000001")
    by_token = await ingest(delivery(mail(4, "Re: [CAS-000002] still", sender="ben@example.com")))
    assert (by_token.outcome, by_token.case_number) == ("appended", "CAS-000001")
    assert (await svc.get("CAS-000002")).status is Status.CLOSED
    assert await rows(svc.db, CaseRow) == 2  # no follow-up case of the closed duplicate


async def test_the_agent_a_new_case_is_routed_to_and_a_reopened_cases_team_are_told(
    ingest: Ingestor, svc: CaseService, db: Database
) -> None:
    """Intake queues the notifications in its own transaction and wakes the outbox."""
    svc.notify_channels = frozenset({"email"})
    woken: list[int] = []
    svc.on_outgoing = lambda: woken.append(1)

    async def told() -> list[tuple[str, str, str]]:
        async with db.transaction() as s:
            found = await s.scalars(
                select(ActivityRow)
                .where(ActivityRow.kind == "notification")
                .order_by(ActivityRow.id)
            )
            return [(a.recipients[0], a.subject or "", a.body_text.splitlines()[0]) for a in found]

    created = await ingest(delivery(mail(1)))
    assert (created.outcome, created.queued_outgoing) == ("created", True)
    assert (await svc.get("CAS-000001")).owner_user == "alice"  # tier1's round robin
    assert await told() == [(
        "alice@example.com", "Routed: Printer on fire",
        "CAS-000001 (Printer on fire) was routed to you by the routing rule default.",
    )]  # fmt: skip
    await svc.resolve("CAS-000001", "new toner", AGENT)
    before = len(woken)
    reopened = await ingest(delivery(mail(2, "Re: [CAS-000001] it smokes again")))
    assert (reopened.outcome, reopened.queued_outgoing) == ("reopened", True)
    assert len(woken) > before
    line = "CAS-000001 (Printer on fire) was reopened by a customer message (email:support)."
    assert (await told())[1:] == [
        ("alice@example.com", "Reopened: Printer on fire", line),
        ("bob@example.com", "Reopened: Printer on fire", line),
    ]
    # An answer of our own that opens nothing tells nobody.
    appended = await ingest(delivery(mail(3, "Re: [CAS-000001] more smoke")))
    assert (appended.outcome, len(await told())) == ("appended", 3)
