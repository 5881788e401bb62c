"""The whole shared corpus goes through the real intake pipeline without a crash.

Each mail becomes an activity (on a new or an existing case), is recognised as automatic
(an auto-reply or bounce answering nothing is not turned into a case), or is quarantined with
a reason. Running the corpus a second time creates nothing new.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inbox_daemon.channels.base import Delivery
from inbox_daemon.channels.email.delivery import make_delivery
from inbox_daemon.channels.email.parse import parse_message
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import Checkpoint
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.migrate import upgrade
from inbox_daemon.store.tables import ActivityRow, CaseRow, QuarantineRow
from tests.corpus.test_corpus_parse import CORPUS, _corpus_items

OUTCOMES = {
    "created", "appended", "reopened", "recorded", "ignored", "set_aside", "quarantined",
    "duplicate",
}  # fmt: skip


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str, bytes]]:
    if not CORPUS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the mail corpus is missing in CI: {CORPUS}")
        pytest.skip(f"mail corpus not available at {CORPUS}")
    return list(_corpus_items(CORPUS))


@pytest.fixture
async def pipeline(tmp_path: Path) -> AsyncIterator[Ingestor]:
    db = Database(f"sqlite:///{tmp_path / 'corpus.db'}")
    await upgrade(db)
    files = FileStore(tmp_path / "files")
    ingestor = Ingestor(
        CaseService(db),
        files=files,
        quarantine=FileStore(tmp_path / "quarantine"),
        options=IntakeOptions(our_addresses=frozenset({"support@inbox-daemon.test"})),
    )
    try:
        yield ingestor
    finally:
        await db.dispose()


async def email_delivery(
    raw: bytes, external_id: str, checkpoint: Checkpoint | None = None
) -> Delivery:
    """What the IMAP and Maildir channels hand the pipeline for one raw mail."""
    return await make_delivery(
        raw, parse=parse_message, mailbox="corpus", external_id=external_id,
        our_addresses=(), log=get_logger("test"), checkpoint=checkpoint,
    )  # fmt: skip


async def _count(db: Database, model: type) -> int:
    async with db.transaction() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_whole_corpus_goes_through_intake(
    corpus: list[tuple[str, bytes]], pipeline: Ingestor
) -> None:
    outcomes: Counter[str] = Counter()
    by_name = {}
    for uid, (name, raw) in enumerate(corpus, start=1):
        delivery = await email_delivery(raw, f"1:{uid}", checkpoint=Checkpoint(1, uid))
        result = await pipeline(delivery)
        outcomes[result.outcome] += 1
        by_name[name] = result
    assert set(outcomes) <= OUTCOMES
    assert sum(outcomes.values()) == len(corpus)
    db = pipeline.db
    activities = await _count(db, ActivityRow)
    assert (
        activities
        == outcomes["created"] + outcomes["appended"] + outcomes["recorded"] + outcomes["reopened"]
    )
    assert await _count(db, CaseRow) == outcomes["created"]
    # nothing vanishes: what made no activity is kept, quarantined or set aside
    assert await _count(db, QuarantineRow) == outcomes["quarantined"] + outcomes["set_aside"]
    assert outcomes["ignored"] == 0
    # automatic mail answering nothing never becomes a case
    bounces = [n for n in by_name if n.startswith("sisimai-set-of-emails/")]
    assert sum(by_name[n].outcome == "created" for n in bounces) < len(bounces) // 4
    # counted once and pinned, so that a change in what is taken in shows up here
    assert dict(outcomes) == {"created": 34, "set_aside": 133, "quarantined": 23}
    async with db.transaction() as session:
        states = Counter((await session.execute(select(QuarantineRow.state))).scalars())
    assert states == {"held": 23, "ignored": 133}
    quarantined = {n for n, r in by_name.items() if r.outcome == "quarantined"}
    assert all(
        (n.startswith("github-email_reply_parser/") and n.endswith(".txt"))  # bodies, no headers
        or n == "spamscope-mail-parser/mail_outlook_1"  # an Outlook .msg file
        for n in quarantined
    )
    assert by_name["django-helpdesk/quoted_printable.eml"].outcome == "created"

    # and a second pass over the same mailbox creates nothing new
    for uid, (_name, raw) in enumerate(corpus, start=1):
        again = await pipeline(await email_delivery(raw, f"1:{uid}"))
        assert again.outcome == "duplicate"
    assert await _count(db, ActivityRow) == activities
