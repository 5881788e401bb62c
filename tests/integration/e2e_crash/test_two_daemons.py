"""Two daemons on one PostgreSQL database and one IMAP mailbox; the one reading it is SIGKILLed.

A private Dovecot account holds 500 generated mails (distinct Message-IDs, each from its own
sender so the autoresponder limit never holds an acknowledgement back). A folder set up by
``inbox-daemon init`` points at it (plain IMAP, no ``[mailbox.smtp]``: acknowledgements are
written as .eml files to ``<storage>/outgoing/support/``), and two ``inbox-daemon run``
processes share that config and one fresh PostgreSQL database, with 2-second mailbox leases.

Exactly one of them must take the mailbox's lease; once some mail is in, it is SIGKILLed and the
other must take the mailbox over within a few lease times and finish the backlog. In the end
every mail was taken in once and acknowledged once: 500 receipts, incoming activities and cases,
500 outgoing acknowledgements all ``sent`` (none sent more than twice), 500 distinct .eml files
with the same Message-IDs, every message ``\\Seen`` on the server; and the survivor stops with 0
on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from crash_helpers import append_all, pg_rows, unseen_uids
from servers.dovecot import MailAccount

from tests.conftest import drop_postgres_database, make_postgres_database, require_postgres

pytestmark = pytest.mark.postgres

MAILS = 500
LEASE_SECONDS = 2.0
#: The holder is killed once this many mails are in (and before the backlog is done).
KILL_AT = 60
READY_TIMEOUT = 20.0
TAKEOVER_TIMEOUT = 4 * LEASE_SECONDS + 2
FINISH_TIMEOUT = 40.0
PASSWORD_ENV = "INBOX_TWO_DAEMONS_IMAP_PASSWORD"
TAKEN = "mailbox lease taken"


def make_mails() -> tuple[list[bytes], list[str]]:
    start = datetime(2025, 2, 3, 9, 0, tzinfo=UTC)
    raws, ids = [], []
    for n in range(MAILS):
        msg = EmailMessage()
        msg["From"] = f"Customer {n} <customer{n}@example.com>"
        msg["To"] = "support@example.com"
        msg["Date"] = format_datetime(start + timedelta(minutes=n))
        msg["Message-ID"] = mid = f"<two-daemons-{n}@customer{n}.example>"
        msg["Subject"] = f"Problem {n}"
        msg.set_content(f"Hello,\n\nmail number {n}.\n\nRegards,\nCustomer {n}\n")
        raws.append(msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        ids.append(mid)
    return raws, ids


@dataclass
class Proc:
    name: str
    log: Path
    proc: subprocess.Popen[bytes]
    #: Where the log is read from by :meth:`logged`.
    offset: int = 0

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def logged(self, needle: str) -> bool:
        with self.log.open("rb") as fh:
            fh.seek(self.offset)
            return needle.encode() in fh.read()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)


@pytest.fixture
def pg_url() -> Iterator[str]:
    require_postgres()
    url = asyncio.run(make_postgres_database())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(url))


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    made: list[Proc] = []
    yield made
    for proc in made:  # whatever happened, no daemon outlives the test
        with contextlib.suppress(Exception):
            proc.kill()


def set_up_home(home: Path, account: MailAccount, env: dict[str, str]) -> None:
    init = subprocess.run(
        [sys.executable, "-m", "inbox_daemon", "init", "."],
        cwd=home, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    config = home / "inbox-daemon.toml"
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
    )
    text, boxes = re.subn(
        r'(?ms)^\[\[mailbox\]\]\n.*?^path = "var/maildir"\n', imap, config.read_text()
    )
    assert boxes == 1, "the inbox-daemon.toml template changed shape"
    config.write_text(text)
    settings = tomllib.loads(text)
    assert [(b["kind"], b["tls"]) for b in settings["mailbox"]] == [("imap", "none")]
    assert all("smtp" not in b for b in settings["mailbox"])
    assert settings["cases"]["acknowledge"] is True


def wait_for(
    predicate: Any, timeout: float, what: str, procs: list[Proc], every: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.text()[-2500:]}" for p in procs)
            pytest.fail(f"timed out after {timeout} s waiting for {what}:\n{tails}")
        time.sleep(every)


def test_second_daemon_takes_over_the_mailbox_of_a_killed_one(
    dovecot: MailAccount, pg_url: str, procs: list[Proc], tmp_path: Path
) -> None:
    raws, message_ids = make_mails()
    append_all(dovecot, raws)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    env |= {
        PASSWORD_ENV: dovecot.password,
        "PYTHONUNBUFFERED": "1",
        "INBOX_DAEMON_DATABASE__URL": pg_url,
        "INBOX_DAEMON_DAEMON__LEASE_SECONDS": str(LEASE_SECONDS),
        # A reply claimed by the killed daemon is sent again after 3 s, not 10 min; and the
        # survivor's outbox looks for such rows twice a second.
        "INBOX_DAEMON_OUTBOX__LEASE_MINUTES": "0.05",
        "INBOX_DAEMON_OUTBOX__INTERVAL_SECONDS": "0.5",
    }
    set_up_home(home, dovecot, env)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return asyncio.run(pg_rows(pg_url, sql))

    def taken_in() -> int:
        return int(rows("SELECT count(*) FROM receipts")[0][0])

    for name in ("a", "b"):
        log = home / f"daemon-{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "inbox_daemon", "run"],
                cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(Proc(name, log, popen))
    a, b = procs

    # -- exactly one takes the mailbox
    wait_for(lambda: a.logged(TAKEN) or b.logged(TAKEN), READY_TIMEOUT, "a lease", procs)
    assert a.alive(), a.text()[-3000:]
    assert b.alive(), b.text()[-3000:]
    holders = [p for p in procs if p.logged(TAKEN)]
    assert len(holders) == 1, "both daemons took the mailbox lease"
    holder = holders[0]
    survivor = b if holder is a else a

    # -- once some mail is in, the holder dies; the other takes over
    wait_for(lambda: taken_in() >= KILL_AT, READY_TIMEOUT, f"{KILL_AT} mails taken in", procs)
    assert not survivor.logged(TAKEN), "the standby took the lease while the holder was alive"
    assert survivor.alive(), survivor.text()[-3000:]
    holder.kill()
    killed_at = time.monotonic()
    before = taken_in()
    assert before < MAILS, "the backlog was done before the kill: make it larger"
    wait_for(lambda: survivor.logged(TAKEN), TAKEOVER_TIMEOUT, "the takeover", [survivor])
    takeover = time.monotonic() - killed_at
    print(f"killed {holder.name} at {before} mails; {survivor.name} took over in {takeover:.1f} s")

    # -- the survivor finishes the backlog and every acknowledgement
    out = home / "var" / "storage" / "outgoing" / "support"
    sent_sql = (  # the acknowledgements (the agents' notifications are kind 'notification')
        "SELECT count(*) FROM activities WHERE direction = 'outgoing' AND kind = 'email'"
        " AND delivery_state = 'sent'"
    )
    unsent_sql = (
        "SELECT count(*) FROM activities WHERE direction = 'outgoing' AND delivery_state <> 'sent'"
    )

    def done() -> bool:
        assert survivor.alive(), survivor.text()[-3000:]
        return taken_in() >= MAILS and rows(sent_sql)[0][0] >= MAILS and rows(unsent_sql)[0][0] == 0

    wait_for(done, FINISH_TIMEOUT, "the backlog and its acknowledgements", [survivor], 0.2)
    deadline = time.monotonic() + 10
    while (unseen := unseen_uids(dovecot)) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivor.proc.send_signal(signal.SIGTERM)
    assert survivor.proc.wait(timeout=30) == 0, survivor.text()[-3000:]

    # -- taken in exactly once
    assert rows("SELECT count(*) FROM receipts") == [(MAILS,)]
    incoming = "FROM activities WHERE direction = 'incoming'"
    assert rows(f"SELECT count(*) {incoming}") == [(MAILS,)]
    assert rows(f"SELECT message_id {incoming} GROUP BY message_id HAVING count(*) > 1") == []
    assert {r[0] for r in rows(f"SELECT message_id {incoming}")} == set(message_ids)
    assert rows("SELECT count(*) FROM cases") == [(MAILS,)]

    # -- acknowledged exactly once
    outgoing = rows(
        "SELECT message_id, delivery_state, attempts, case_id FROM activities "
        "WHERE direction = 'outgoing' AND kind = 'email'"
    )
    # the agent each case was routed to is told once, by mail (rules.yaml's agents have email)
    told = rows(
        "SELECT message_id, delivery_state, attempts, case_id FROM activities "
        "WHERE kind = 'notification'"
    )
    assert {r[1] for r in told} == {"sent"}
    assert len({r[3] for r in told}) == len(told), "an agent was told twice of one case"
    assert len(outgoing) == MAILS
    assert {r[1] for r in outgoing} == {"sent"}
    assert [r for r in outgoing if r[2] > 2] == [], "an acknowledgement was sent 3+ times"
    assert len({r[3] for r in outgoing}) == MAILS  # one per case
    sent_ids = {r[0] for r in outgoing}
    assert len(sent_ids) == MAILS
    assert None not in sent_ids
    files = sorted(out.glob("*.eml"))
    told_ids = {r[0] for r in told}
    assert len(files) == MAILS + len(told), f"{len(files)} .eml files in {out}"
    parser = BytesParser(policy=policy.default)
    file_ids = [str(parser.parsebytes(f.read_bytes())["Message-ID"]).strip() for f in files]
    assert len(set(file_ids)) == len(files)  # nothing written twice
    assert set(file_ids) == sent_ids | told_ids

    # -- and flagged on the server
    assert unseen == [], f"taken in but never flagged \\Seen: UIDs {unseen}"
