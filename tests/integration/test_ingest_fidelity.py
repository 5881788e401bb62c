"""No heuristic makes a customer's mail vanish: intake on real databases, mails parsed from bytes.

A subject that looks automatic only keeps the mail from being answered; automatic mail that
answers nothing follows rules.yaml's ``automatic_mail`` policy (set aside by default, kept for
an admin, a case when one is asked for); an agent's answer sent from their mail client is
recorded on its case as an outgoing activity by that agent and never acknowledged.
"""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from inbox_daemon.cases.enums import Direction, Status
from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.base import Delivery
from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.ingest import Ingestor
from inbox_daemon.messages import Checkpoint
from inbox_daemon.router.loader import LoadedRules, load_rules_text
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.tables import ActivityRow, CaseRow, QuarantineRow
from tests.integration.test_ingest import RULES, Clock, acknowledging, rows

OURS = "support@ours.example"


def raw_mail(
    subject: str,
    *,
    sender: str = "Ann <ann@example.com>",
    to: str = OURS,
    cc: str | None = None,
    message_id: str = "<m1@customer.example>",
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    body: str = "It smokes.\n",
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = "Mon, 02 Mar 2026 09:00:00 +0000"
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


def delivered(raw: bytes, uid: int) -> Delivery:
    """What the IMAP channel hands the pipeline for one raw mail."""
    message = parse_message(
        raw, channel_mailbox="support", external_id=f"7:{uid}", our_addresses=(OURS,)
    )
    return Delivery("email", "support", f"7:{uid}", raw, message, None, Checkpoint(7, uid))


@pytest.fixture
def intake(db: Database, tmp_path: Path) -> tuple[Ingestor, CaseService]:
    return pipeline(db, tmp_path, load_rules_text(RULES, "rules.yaml"))


def pipeline(db: Database, tmp_path: Path, rules: LoadedRules) -> tuple[Ingestor, CaseService]:
    svc = CaseService(db, directory=rules.directory, clock=Clock(), message_domain="ours.example")
    return acknowledging(svc, tmp_path, rules), svc


async def outgoing(db: Database) -> list[ActivityRow]:
    async with db.transaction() as session:
        stmt = select(ActivityRow).where(ActivityRow.direction == Direction.OUTGOING.value)
        return list((await session.execute(stmt.order_by(ActivityRow.id))).scalars())


async def set_aside(db: Database) -> list[QuarantineRow]:
    async with db.transaction() as session:
        return list((await session.execute(select(QuarantineRow))).scalars())


@pytest.mark.parametrize(
    "subject",
    [
        "Out of office printer will not print",
        "Automatic reply not working in Outlook, please help",
        "OOO calendar sync fails",
    ],
)
async def test_a_subject_alone_never_discards_a_mail(
    intake: tuple[Ingestor, CaseService], db: Database, subject: str
) -> None:
    ingest, svc = intake
    result = await ingest(delivered(raw_mail(subject), 1))
    assert (result.outcome, result.case_number) == ("created", "CAS-000001")
    view = await svc.show("CAS-000001")
    assert view.case.title == subject
    [activity] = view.activities
    assert activity.flags["auto_subject"] is True
    assert activity.automatic is False  # a person's message: answers thread to it
    # only the automatic answer is suppressed
    assert await outgoing(db) == []
    # while the same mail with an ordinary subject is acknowledged
    other = raw_mail("Printer will not print", message_id="<m2@customer.example>")
    assert (await ingest(delivered(other, 2))).outcome == "created"
    assert len(await outgoing(db)) == 1


async def test_a_long_subject_is_kept_whole_and_only_the_title_is_cut(
    intake: tuple[Ingestor, CaseService], db: Database
) -> None:
    ingest, svc = intake
    subject = "Printer " + "very " * 400 + "broken"  # 2,014 characters
    assert (await ingest(delivered(raw_mail(subject), 1))).outcome == "created"
    view = await svc.show("CAS-000001")
    assert view.activities[0].subject == subject  # was cut at 1,000, without a word
    assert view.case.title == subject[:500]
    [shortened] = [e for e in view.audit if e.action == "title_shortened"]
    assert shortened.detail == {"subject_length": len(subject), "title_length": 500}
    # an answer threads to it with the whole subject
    reply = await svc.reply("CAS-000001", "On it.", Actor.user("alice"))
    assert reply.subject == subject
    short = raw_mail("Printer jam", message_id="<m2@customer.example>")
    await ingest(delivered(short, 2))
    assert not [e for e in (await svc.show("CAS-000002")).audit if e.action == "title_shortened"]


async def test_automatic_mail_answering_nothing_is_kept_and_can_become_a_case(
    intake: tuple[Ingestor, CaseService], db: Database
) -> None:
    ingest, svc = intake
    raw = raw_mail("Your ticket JIRA-7 was updated", sender="jira@tracker.example",
                   headers={"Auto-Submitted": "auto-generated"})  # fmt: skip
    result = await ingest(delivered(raw, 1))
    assert (result.outcome, result.detail) == (
        "set_aside",
        "auto-reply that answers none of our messages",
    )
    assert await rows(db, CaseRow) == 0
    [kept] = await set_aside(db)
    assert (kept.state, kept.external_id, kept.size) == ("ignored", "7:1", len(raw))
    assert ingest.quarantine_files.read(kept.sha256) == raw  # the raw mail, for a person
    assert (await ingest(delivered(raw, 1))).outcome == "duplicate"  # taken in once

    # an admin looks at it and wants a case of it
    retried = await ingest.retry_quarantined(kept.id, delivered(raw, 1))
    assert (retried.outcome, retried.case_number) == ("created", "CAS-000001")
    assert (await svc.get("CAS-000001")).title == "Your ticket JIRA-7 was updated"
    assert await outgoing(db) == []  # automatic mail is never answered
    [done] = await set_aside(db)
    assert done.state == "retried"


POLICY = RULES.replace(
    "rules:\n",
    "rules:\n"
    "  - name: tracker mail is work\n"
    "    when: {from_domain: tracker.example, automatic: true}\n"
    "    then: {automatic_mail: case, queue: escalations}\n"
    "  - name: newsletters are noise\n"
    "    when: {from_domain: news.example}\n"
    "    then: {automatic_mail: ignore}\n",
)


async def test_the_automatic_mail_policy_is_a_rule(db: Database, tmp_path: Path) -> None:
    ingest, svc = pipeline(db, tmp_path, load_rules_text(POLICY, "rules.yaml"))
    auto = {"Auto-Submitted": "auto-generated"}
    tracker = raw_mail("JIRA-7 updated", sender="jira@tracker.example", headers=auto)
    result = await ingest(delivered(tracker, 1))
    assert (result.outcome, result.case_number) == ("created", "CAS-000001")
    assert (await svc.get("CAS-000001")).queue == "escalations"
    news = raw_mail("Our December news", sender="hello@news.example",
                    message_id="<n1@news.example>", headers={"Precedence": "bulk"})  # fmt: skip
    assert (await ingest(delivered(news, 2))).outcome == "ignored"
    other = raw_mail("Build failed", sender="ci@builds.example",
                     message_id="<b1@builds.example>", headers=auto)  # fmt: skip
    assert (await ingest(delivered(other, 3))).outcome == "set_aside"  # the default: record
    assert [row.external_id for row in await set_aside(db)] == ["7:3"]
    assert await outgoing(db) == []


async def test_an_agent_answering_from_their_mail_client_is_recorded_as_their_reply(
    intake: tuple[Ingestor, CaseService], db: Database
) -> None:
    ingest, svc = intake
    assert (await ingest(delivered(raw_mail("Printer on fire"), 1))).case_number == "CAS-000001"
    [ack] = await outgoing(db)
    # alice (an agent in rules.yaml) answers Ann from her own mail client, support in copy
    answer = raw_mail("Re: Printer on fire", sender="Alice <alice@example.com>",
                      to="ann@example.com", cc=OURS, message_id="<a1@example.com>",
                      in_reply_to="<m1@customer.example>", body="Unplug it.\n")  # fmt: skip
    result = await ingest(delivered(answer, 2))
    assert (result.outcome, result.case_number) == ("recorded", "CAS-000001")
    view = await svc.show("CAS-000001")
    mine = next(a for a in view.activities if a.id == result.activity_id)
    assert (mine.direction, mine.actor, mine.delivery_state) == ("outgoing", "user:alice", "sent")
    assert mine.automatic is False
    assert view.case.status is Status.IN_PROGRESS  # an agent's answer, as from the CLI
    assert view.case.first_responded_at is not None
    assert [(e.action, e.actor_name) for e in view.audit if e.action == "reply_by_mail"] == [
        ("reply_by_mail", "alice")
    ]
    assert [a.id for a in await outgoing(db)] == [ack.id, mine.id]  # nothing new to send

    # the shared mailbox itself answering by the case number in the subject
    shared = raw_mail("Re: [CAS-000001] Printer on fire", sender=f"Support <{OURS}>",
                      to="ann@example.com", message_id="<s1@ours.example>")  # fmt: skip
    again = await ingest(delivered(shared, 3))
    assert (again.outcome, again.case_number) == ("recorded", "CAS-000001")
    latest = (await outgoing(db))[-1]
    assert (latest.actor, latest.delivery_state) == ("channel:email:support", "sent")

    # and our own acknowledgement coming back into the mailbox is ignored
    echo = raw_mail("Re: Printer on fire", sender=f"Support <{OURS}>",
                    message_id=ack.message_id or "")  # fmt: skip
    assert (await ingest(delivered(echo, 4))).outcome == "ignored"

    # Ann's next reply to alice's answer threads to the case
    reply = raw_mail("Re: Printer on fire", message_id="<m3@customer.example>",
                     in_reply_to="<a1@example.com>")  # fmt: skip
    assert (await ingest(delivered(reply, 5))).outcome == "appended"


async def test_an_agent_writing_as_a_customer_stays_a_customer(
    intake: tuple[Ingestor, CaseService], db: Database
) -> None:
    ingest, _svc = intake
    own = raw_mail("My laptop is slow", sender="Alice <alice@example.com>")
    assert (await ingest(delivered(own, 1))).outcome == "created"
    follow = raw_mail(
        "Re: My laptop is slow", sender="Alice <alice@example.com>",
        message_id="<a2@example.com>", in_reply_to="<m1@customer.example>",
    )  # fmt: skip
    assert (await ingest(delivered(follow, 2))).outcome == "appended"
