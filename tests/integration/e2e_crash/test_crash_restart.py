"""The daemon killed with SIGKILL while it takes in an IMAP backlog, again and again.

A private Dovecot holds 200 generated mails (distinct Message-IDs, about a third of them replies
to earlier ones by In-Reply-To/References, some with small attachments). A folder set up by
``inbox-daemon init`` is pointed at it (one IMAP mailbox, plain IMAP, the password from the
environment, acknowledgements off so no SMTP is needed), and ``python -m inbox_daemon run`` is
started and SIGKILLed at seeded random moments until it has been killed at least
``MIN_KILLS`` times in the middle of the backlog; then it runs until the backlog is done and is
stopped with SIGTERM.

Afterwards every mail must have been taken in exactly once: one receipt and one incoming
activity per mail (replies append to existing cases, so activities are counted, not cases), no
Message-ID twice, one attachment row per attachment, gap-free case numbers (a killed
transaction gives its number back), the mailbox checkpoint on the last UID, and every message
flagged ``\\Seen`` on the server. The counts come straight from the database (sqlite3 for the
embedded default; asyncpg for the PostgreSQL variant).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import append_all, pg_rows, unseen_uids
from servers.dovecot import MailAccount

from inbox_daemon.config import Settings
from tests.conftest import drop_postgres_database, make_postgres_database

SEED = 20250106
MAILS = 200
#: Messages per transaction: small enough for kills to land in many batches of the backlog.
BATCH = 10
REPLY_SHARE = 0.3
ATTACHMENT_SHARE = 0.12
#: Kills that must land while the backlog is being taken in (progress made, not finished).
MIN_KILLS = 5
#: Rounds of start + kill at most (kills during start-up or before the first commit count
#: towards this bound but not towards MIN_KILLS).
MAX_ROUNDS = 30
#: The kill comes this long (seeded, uniform) after the run's first commit (its log says
#: "message taken in"): between transactions, inside one, or between a commit and its \Seen.
KILL_AFTER = (0.0, 0.1)
#: This share of the kills comes instead the same while after "daemon ready" (and, on
#: PostgreSQL, the mailbox's lease): during start-up, the first fetch or the first batch. How
#: long a machine takes to get there varies too much to count on them landing mid-backlog.
EARLY_KILLS = 0.25
READY_TIMEOUT = 30.0
FINISH_TIMEOUT = 60.0
PASSWORD_ENV = "INBOX_CRASH_TEST_IMAP_PASSWORD"


# --- the mail ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corpus:
    raws: list[bytes]
    message_ids: list[str]
    #: Index of the mail each reply answers.
    parents: dict[int, int]
    attachments: int


def make_corpus(rng: random.Random, count: int = MAILS) -> Corpus:
    """``count`` customer mails; replies only ever answer an earlier mail (lower UID)."""
    start = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    raws: list[bytes] = []
    ids: list[str] = []
    subjects: list[str] = []
    parents: dict[int, int] = {}
    attachments = 0
    for n in range(count):
        customer = rng.randrange(60)
        msg = EmailMessage()
        msg["From"] = f"Customer {customer} <customer{customer}@example.com>"
        msg["To"] = "support@example.com"
        msg["Date"] = format_datetime(start + timedelta(minutes=n))
        mid = f"<crash-{n}.{rng.getrandbits(32):08x}@customer{customer}.example>"
        msg["Message-ID"] = mid
        if n > 0 and rng.random() < REPLY_SHARE:
            parent = rng.randrange(n)
            parents[n] = parent
            msg["Subject"] = f"Re: {subjects[parent]}"
            msg["In-Reply-To"] = ids[parent]
            msg["References"] = ids[parent]
            subject = subjects[parent]
        else:
            subject = f"Problem {n}: the {rng.choice(['printer', 'VPN', 'invoice', 'login'])}"
            msg["Subject"] = subject
        msg.set_content(f"Hello,\n\nmail number {n} about {subject}.\n\nRegards,\nCustomer\n")
        if rng.random() < ATTACHMENT_SHARE:
            data = rng.randbytes(rng.randint(200, 6000))
            msg.add_attachment(
                data, maintype="application", subtype="octet-stream", filename=f"log-{n}.bin"
            )
            attachments += 1
        raws.append(msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        ids.append(mid)
        subjects.append(subject)
    return Corpus(raws, ids, parents, attachments)


# --- the database, read from outside the daemon ----------------------------------------------


@dataclass
class Backend:
    #: The folder set up by ``inbox-daemon init``.
    home: Path
    #: The value of INBOX_DAEMON_DATABASE__URL (None: the file's own SQLite URL).
    url: str | None = None

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        if self.url is None:
            path = self.home / "var" / "inbox-daemon.db"
            if not path.exists():
                return []
            conn = sqlite3.connect(path, timeout=30)
            try:
                return conn.execute(sql).fetchall()
            finally:
                conn.close()
        return asyncio.run(pg_rows(self.url, sql))

    def scalar(self, sql: str) -> Any:
        return self.rows(sql)[0][0]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    home = tmp_path / "home"
    home.mkdir()
    if request.param == "sqlite":
        yield Backend(home)
        return
    url = asyncio.run(make_postgres_database())
    try:
        yield Backend(home, url)
    finally:
        asyncio.run(drop_postgres_database(url))


# --- the daemon ------------------------------------------------------------------------------


def _has_setting(section: str, key: str) -> bool:
    spec = Settings.model_fields.get(section)
    return spec is not None and key in getattr(type(spec.default), "model_fields", {})


def daemon_env(backend: Backend, account: MailAccount) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    env[PASSWORD_ENV] = account.password
    env["PYTHONUNBUFFERED"] = "1"
    if backend.url is not None:
        env["INBOX_DAEMON_DATABASE__URL"] = backend.url
        if _has_setting("daemon", "lease_seconds"):
            # The lease of a killed daemon must expire quickly for its successor to take over.
            env["INBOX_DAEMON_DAEMON__LEASE_SECONDS"] = "1"
    return env


def set_up_home(home: Path, account: MailAccount, env: dict[str, str]) -> None:
    """``inbox-daemon init``, then its Maildir mailbox swapped for our Dovecot account."""
    init = subprocess.run(
        [sys.executable, "-m", "inbox_daemon", "init", "."],
        cwd=home, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    config = home / "inbox-daemon.toml"
    text = config.read_text()
    imap = (
        "[[mailbox]]\n"
        'name = "support"\n'
        'address = "support@example.com"\n'
        'kind = "imap"\n'
        f'host = "{account.host}"\n'
        f"port = {account.port}\n"
        'tls = "none"\n'
        f'username = "{account.user}"\n'
        f'password_env = "{PASSWORD_ENV}"\n'
        f"batch_messages = {BATCH}\n"
    )
    text, boxes = re.subn(r'(?ms)^\[\[mailbox\]\]\n.*?^path = "var/maildir"\n', imap, text)
    text, acks = re.subn(r"(?m)^acknowledge = true", "acknowledge = false", text)
    assert (boxes, acks) == (1, 1), "the inbox-daemon.toml template changed shape"
    config.write_text(text)
    settings = tomllib.loads(text)
    assert [(b["kind"], b["tls"]) for b in settings["mailbox"]] == [("imap", "none")]
    assert settings["cases"]["acknowledge"] is False


@dataclass
class Daemon:
    home: Path
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        with self.log.open("ab") as out:
            out.write(b"--- start\n")
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "inbox_daemon", "run"],
                cwd=self.home, env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        self._offset = self.log.stat().st_size

    def logged(self, text: str) -> bool:
        with self.log.open("rb") as fh:
            fh.seek(self._offset)
            return text.encode() in fh.read()

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.02
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert self.proc is not None
            if self.proc.poll() is not None:
                pytest.fail(f"the daemon exited ({self.proc.returncode}) waiting for {what}:\n"
                            f"{self.tail()}")  # fmt: skip
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{self.tail()}")
            time.sleep(every)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def daemon_factory() -> Iterator[Callable[[Path, dict[str, str]], Daemon]]:
    made: list[Daemon] = []

    def make(home: Path, env: dict[str, str]) -> Daemon:
        daemon = Daemon(home, env, home / "daemon.log")
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:  # whatever happened, no daemon outlives the test
        with contextlib.suppress(Exception):
            daemon.kill()


# --- the test --------------------------------------------------------------------------------


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    dovecot: MailAccount,
    backend: Backend,
    daemon_factory: Callable[[Path, dict[str, str]], Daemon],
) -> None:
    rng = random.Random(SEED)
    corpus = make_corpus(rng)
    uids = append_all(dovecot, corpus.raws)
    assert len(set(uids)) == MAILS
    home = backend.home
    env = daemon_env(backend, dovecot)
    set_up_home(home, dovecot, env)
    daemon = daemon_factory(home, env)

    def taken_in() -> int:
        return int(backend.scalar("SELECT count(*) FROM receipts"))

    # -- kill it at random moments while it works through the backlog
    rounds: list[tuple[float, int, int]] = []
    kills_mid_backlog = 0
    while kills_mid_backlog < MIN_KILLS and len(rounds) < MAX_ROUNDS:
        before = taken_in()
        assert before < MAILS, f"the backlog was done before {MIN_KILLS} kills: {rounds}"
        daemon.start()
        daemon.wait_until(lambda: daemon.logged("daemon ready"), READY_TIMEOUT, "daemon ready")
        if backend.url is not None:  # PostgreSQL: the mailbox is read once its lease is taken
            daemon.wait_until(
                lambda: daemon.logged("mailbox lease taken") or daemon.logged("imap.connected"),
                READY_TIMEOUT,
                "the mailbox lease",
            )
        delay = rng.uniform(*KILL_AFTER)
        if rng.random() >= EARLY_KILLS:
            daemon.wait_until(
                lambda: daemon.logged("message taken in"), READY_TIMEOUT, "a first commit"
            )
        time.sleep(delay)
        daemon.kill()
        after = taken_in()
        rounds.append((round(delay, 3), before, after))
        if before < after < MAILS:
            kills_mid_backlog += 1
    assert kills_mid_backlog >= MIN_KILLS, f"only {kills_mid_backlog} kills mid-backlog: {rounds}"
    print(f"kill rounds (delay s, taken in before, after): {rounds}")

    # -- then let it finish, and stop it cleanly
    daemon.start()
    daemon.wait_until(lambda: taken_in() >= MAILS, FINISH_TIMEOUT, "the whole backlog", every=0.1)
    last_uid = max(uids)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the last \Seen follows the last commit closely
        unseen = unseen_uids(dovecot)
        if not unseen:
            break
        time.sleep(0.1)
    assert daemon.stop() == 0, daemon.tail()

    # -- exactly once, in the database
    db = backend
    assert db.scalar("SELECT count(*) FROM receipts") == MAILS
    assert db.rows("SELECT DISTINCT outcome FROM receipts ORDER BY outcome") == [
        ("appended",),
        ("created",),
    ]
    assert db.scalar("SELECT count(*) FROM receipts WHERE outcome = 'appended'") == len(
        corpus.parents
    )
    external = {r[0] for r in db.rows("SELECT external_id FROM receipts")}
    assert {e.split(":")[1] for e in external} == {str(u) for u in uids}
    incoming = "FROM activities WHERE direction = 'incoming'"
    assert db.scalar(f"SELECT count(*) {incoming}") == MAILS
    twice = f"SELECT message_id {incoming} GROUP BY message_id HAVING count(*) > 1"
    assert db.rows(twice) == []
    assert {r[0] for r in db.rows(f"SELECT message_id {incoming}")} == set(corpus.message_ids)
    assert db.scalar("SELECT count(*) FROM attachments") == corpus.attachments
    # Replies landed on the case of the mail they answer.
    case_of = dict(
        db.rows("SELECT a.message_id, c.number FROM activities a JOIN cases c ON c.id = a.case_id")
    )
    for reply, parent in corpus.parents.items():
        ids = corpus.message_ids
        assert case_of[ids[reply]] == case_of[ids[parent]], (reply, parent)
    # One case per mail that answers nothing, numbered without gaps.
    numbers = sorted(r[0] for r in db.rows("SELECT number FROM cases"))
    assert numbers == [f"CAS-{n:06d}" for n in range(1, MAILS - len(corpus.parents) + 1)]
    assert db.rows("SELECT last_uid FROM mailbox_state") == [(last_uid,)]

    # -- and acknowledged on the server
    # A kill between a batch's commit and its UID STORE leaves it unflagged; the channel
    # resumes after the committed checkpoint, so it has to flag that batch when it reconnects.
    assert unseen == [], (
        f"taken in but never flagged \\Seen: UIDs {unseen} "
        f"(kill rounds: delay, taken in before, after: {rounds})"
    )
