"""A new channel kind is one registration and its adapters: no edit of intake, the case
service, acknowledgements or the outbox.

A small in-memory kind ("memo", a web-form-like channel), registered only here, takes a
customer's message in, the agent's answer goes out through its sender, threaded, and the
customer's next message joins the same case.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from inbox_daemon.acknowledge import load_templates
from inbox_daemon.cases.enums import ActivityKind, DeliveryState, Direction, Origin
from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.base import Delivery, IngestResult, Sink
from inbox_daemon.errors import RulesError
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.kinds import (
    ChannelKindSpec,
    UnknownChannelKind,
    register,
    unregister,
)
from inbox_daemon.messages import Address, DeliveryReceipt, InboundMessage, OutboundMessage
from inbox_daemon.outbox import Outbox
from inbox_daemon.router.engine import ThreadFacts, evaluate
from inbox_daemon.router.loader import load_rules_text
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import ActivityRow, CaseRow

MEMO = ChannelKindSpec("memo", ActivityKind.MESSAGE, Origin.WEB, contact="email")


@dataclass
class MemoChannel:
    """The inbound adapter: forms waiting in memory, each handed to the sink once."""

    name: str = "memo"
    waiting: list[InboundMessage] = field(default_factory=list)

    async def run_once(self, sink: Sink) -> int:
        taken = 0
        while self.waiting:
            msg = self.waiting.pop(0)
            delivery = Delivery(self.name, msg.mailbox, msg.external_id, b"", msg)
            result = await sink(delivery)
            assert result.outcome != "quarantined", result.detail
            taken += 1
        return taken

    async def run(self, sink: Sink) -> None:
        await self.run_once(sink)


@dataclass
class MemoSender:
    """The outbound adapter: renders the neutral message its own way (a plain dict)."""

    name: str = "memo"
    sent: list[dict[str, object]] = field(default_factory=list)

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.sent.append(
            {"to": [a.email for a in message.to], "name": message.to[0].name,
             "text": message.text, "answers": message.in_reply_to,
             "title": f"{message.subject} ({message.case_number})"}
        )  # fmt: skip
        return DeliveryReceipt(external_id=f"memo-{len(self.sent)}", sent_at=datetime.now(UTC))


def form(n: int, text: str, *, answers: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel="memo",
        mailbox="web-desk",
        external_id=f"form-{n}",
        sender=Address("ann@example.com", "Ann"),
        subject="My parcel",
        text=text,
        new_text=text,
        message_id=f"<form-{n}@desk.example>",
        in_reply_to=(answers,) if answers else (),
    )


@pytest.fixture
def memo_kind() -> Iterator[ChannelKindSpec]:
    register(MEMO)
    yield MEMO
    unregister(MEMO.name)


@pytest.fixture
def world(db: Database, tmp_path: Path, memo_kind: ChannelKindSpec) -> tuple[CaseService, Ingestor]:
    service = CaseService(db, message_domain="support.example.com")
    ingestor = Ingestor(
        service,
        files=FileStore(tmp_path / "files"),
        quarantine=FileStore(tmp_path / "quarantine"),
        options=IntakeOptions(acknowledgements=load_templates()),
    )
    return service, ingestor


async def test_a_channel_kind_registered_here_takes_a_message_in_and_the_answer_out(
    db: Database, world: tuple[CaseService, Ingestor]
) -> None:
    service, ingestor = world
    channel = MemoChannel(waiting=[form(1, "Where is my parcel?")])
    results: list[IngestResult] = []

    async def sink(delivery: Delivery) -> IngestResult:
        results.append(await ingestor(delivery))
        return results[-1]

    assert await channel.run_once(sink) == 1
    assert results[0].outcome == "created"
    number = results[0].case_number
    assert number is not None
    case = await service.get(number)
    assert (case.origin, case.contact_email, case.contact_name) == (
        Origin.WEB, "ann@example.com", "Ann",
    )  # fmt: skip

    answer = await service.reply(number, "It left today.", Actor.user("alice"))
    assert (answer.channel, answer.kind) == ("memo", ActivityKind.MESSAGE.value)
    sender = MemoSender()
    assert await Outbox(db, {"memo": sender}).run_once() == 1
    assert sender.sent == [
        {"to": ["ann@example.com"], "name": "Ann", "text": "It left today.",
         "answers": "<form-1@desk.example>", "title": f"My parcel ({number})"}
    ]  # fmt: skip

    channel.waiting.append(form(2, "Thanks!", answers=answer.message_id))
    await channel.run_once(sink)
    assert (results[1].outcome, results[1].case_number) == ("appended", number)

    async with db.transaction() as session:
        rows = (
            await session.execute(
                select(ActivityRow.channel, ActivityRow.kind, ActivityRow.direction,
                       ActivityRow.delivery_state)
                .join(CaseRow, CaseRow.id == ActivityRow.case_id)
                .where(CaseRow.number == number)
                .order_by(ActivityRow.id)
            )
        ).all()  # fmt: skip
    kind = ActivityKind.MESSAGE.value
    assert [tuple(r) for r in rows] == [
        ("memo", kind, Direction.INCOMING.value, None),
        ("memo", kind, Direction.OUTGOING.value, DeliveryState.SENT.value),
        ("memo", kind, Direction.INCOMING.value, None),
    ]  # no acknowledgement: the memo kind does not acknowledge


def test_a_rule_may_name_the_kind_once_it_is_registered() -> None:
    rules = (
        "version: 1\nrules:\n  - name: forms\n    when: {channel: memo}\n    then: {tags: [form]}\n"
    )
    with pytest.raises(RulesError, match="unknown channel 'memo'"):
        load_rules_text(rules, "rules.yaml")
    register(MEMO)
    try:
        loaded = load_rules_text(rules, "rules.yaml")
        decision = evaluate(loaded.rules, form(1, "hi"), ThreadFacts(), datetime.now(UTC))
        assert decision.tags == ("form",)
    finally:
        unregister(MEMO.name)


async def test_a_message_of_a_kind_nobody_registered_is_kept_in_quarantine(
    world: tuple[CaseService, Ingestor],
) -> None:
    _service, ingestor = world
    msg = form(3, "Hello")
    stray = replace(msg, channel="fax")
    for _attempt in range(2):  # the third failure sets it aside
        with pytest.raises(UnknownChannelKind, match="unknown channel kind 'fax'"):
            await ingestor(Delivery("fax", "line-1", "f-1", b"raw fax", stray))
    result = await ingestor(Delivery("fax", "line-1", "f-1", b"raw fax", stray))
    assert result.outcome == "quarantined"
    assert "unknown channel kind 'fax'" in result.detail
