"""The daemon as a real process on its embedded default (SQLite + Maildir)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli import run_cli

RULES = """version: 1
users: [{id: alice, name: Alice}]
teams: [{id: tier1, name: Tier 1, members: [alice]}]
queues:
  - {id: general, name: General, team: tier1}
  - {id: billing, name: Billing, team: tier1}
  - {id: vip, name: VIP, team: tier1}
rules:
  - name: invoices
    when: {subject: invoice}
    then: {queue: billing}
default: {queue: general}
"""


def mail(n: int, subject: str) -> bytes:
    return (
        f"From: Customer {n} <c{n}@example.com>\r\nTo: support@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <d{n}@example.com>\r\n\r\nbody {n}\r\n"
    ).encode()


def drop(home: Path, n: int, subject: str) -> None:
    new = home / "var" / "maildir" / "new"
    tmp = home / "var" / "maildir" / "tmp" / f"{n}.eml"
    tmp.write_bytes(mail(n, subject))
    tmp.replace(new / f"{time.time_ns()}.{n}.test")


def cases(home: Path) -> dict[str, dict[str, object]]:
    out = run_cli(home, "cases", "list", "--json").stdout
    return {str(c["title"]): c for c in json.loads(out)}


def wait_for(predicate: object, timeout: float = 15.0, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(every)
    raise AssertionError("timed out waiting")


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    run_cli(tmp_path, "init", ".")
    config = tmp_path / "inbox-daemon.toml"
    # Groups of 10 (not 100): a signal can land between the groups of a 200-mail backlog.
    text = config.read_text()
    assert 'path = "var/maildir"\n' in text
    config.write_text(
        text.replace('path = "var/maildir"\n', 'path = "var/maildir"\nbatch_messages = 10\n')
    )
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "var" / "maildir" / "tmp").mkdir(parents=True, exist_ok=True)
    (tmp_path / "var" / "maildir" / "new").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    # The log goes to a file: a pipe nobody reads fills up and stops a busy daemon mid-write.
    with daemon_log(tmp_path).open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inbox_daemon", "run"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    deadline = time.monotonic() + 30
    while "daemon ready" not in daemon_log(tmp_path).read_text() and time.monotonic() < deadline:
        assert proc.poll() is None, daemon_log(tmp_path).read_text()
        time.sleep(0.05)
    assert "daemon ready" in daemon_log(tmp_path).read_text()
    try:
        yield tmp_path, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def daemon_log(home: Path) -> Path:
    return home / "daemon.log"


def test_maildir_mail_becomes_a_case_and_is_acknowledged(
    daemon: tuple[Path, subprocess.Popen[str]],
) -> None:
    home, proc = daemon
    drop(home, 1, "Printer on fire")
    wait_for(lambda: "Printer on fire" in cases(home))
    case = cases(home)["Printer on fire"]
    assert (case["queue"], case["contact_email"]) == ("general", "c1@example.com")
    assert not list((home / "var" / "maildir" / "new").iterdir())  # acknowledged: moved to cur/
    outgoing = home / "var" / "storage" / "outgoing" / "support"
    wait_for(lambda: outgoing.is_dir() and any(outgoing.iterdir()))
    ack = next(outgoing.iterdir()).read_text()
    assert "Subject: Re: Printer on fire [CAS-000001]" in ack
    assert "Auto-Submitted: auto-replied" in ack
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_rules_reload_under_a_running_daemon(daemon: tuple[Path, subprocess.Popen[str]]) -> None:
    home, proc = daemon
    rules = home / "rules.yaml"
    drop(home, 1, "invoice 1")
    wait_for(lambda: "invoice 1" in cases(home))
    assert cases(home)["invoice 1"]["queue"] == "billing"

    def replace_rules(text: str) -> None:
        tmp = home / "rules.tmp"
        tmp.write_text(text)
        tmp.replace(rules)

    # valid: invoices now go to vip
    replace_rules(RULES.replace("then: {queue: billing}", "then: {queue: vip}"))
    time.sleep(1.5)
    drop(home, 2, "invoice 2")
    wait_for(lambda: "invoice 2" in cases(home))
    assert cases(home)["invoice 2"]["queue"] == "vip"

    # broken: the last good rules keep routing
    replace_rules(RULES.replace("then: {queue: billing}", "then: {queue: nowhere}"))
    time.sleep(1.5)
    drop(home, 3, "invoice 3")
    wait_for(lambda: "invoice 3" in cases(home))
    assert cases(home)["invoice 3"]["queue"] == "vip"

    # valid again, through SIGHUP this time
    replace_rules(RULES)
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    drop(home, 4, "invoice 4")
    wait_for(lambda: "invoice 4" in cases(home))
    assert cases(home)["invoice 4"]["queue"] == "billing"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = daemon_log(home).read_text()
    assert "rules rejected; the last good rules stay in force" in log
    assert "unknown queue 'nowhere'" in log


def test_sighup_reloads_the_config(daemon: tuple[Path, subprocess.Popen[str]]) -> None:
    home, proc = daemon
    config = home / "inbox-daemon.toml"
    outgoing = home / "var" / "storage" / "outgoing" / "support"
    drop(home, 1, "Acknowledged")
    wait_for(lambda: outgoing.is_dir() and len(list(outgoing.iterdir())) == 1)

    # a broken file is refused and the running settings stay
    good = config.read_text()
    config.write_text(good + "\n[cases\n")
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    # acknowledgements switched off, and a section that needs a restart changed
    config.write_text(
        good.replace("acknowledge = true", "acknowledge = false").replace(
            'path = "var/storage"', 'path = "var/elsewhere"'
        )
    )
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.5)
    drop(home, 2, "Not acknowledged")
    wait_for(lambda: "Not acknowledged" in cases(home))
    time.sleep(1.0)  # the outbox would have written it by now
    assert len(list(outgoing.iterdir())) == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = daemon_log(home).read_text()
    assert "config rejected; the running settings stay" in log
    assert "config changes that need a restart" in log
    assert '"sections": ["storage"]' in log
    assert "config reloaded" in log


def test_sighup_then_sigterm_mid_batch_and_a_restart_loses_and_doubles_nothing(
    daemon: tuple[Path, subprocess.Popen[str]],
) -> None:
    home, proc = daemon
    rules = home / "rules.yaml"
    rules.write_text(RULES.replace("then: {queue: billing}", "then: {queue: vip}"))
    proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)
    new = home / "var" / "maildir" / "new"
    tmp = home / "var" / "maildir" / "tmp"
    for n in range(200):  # written to tmp/, then moved into new/ at once: one batch
        (tmp / f"{n}.eml").write_bytes(mail(n, f"invoice {n}"))
    for n in range(200):
        (tmp / f"{n}.eml").replace(new / f"batch.{n:03d}.test")
    db = home / "var" / "inbox-daemon.db"

    def count(sql: str) -> int:
        import sqlite3

        with sqlite3.connect(db, timeout=30) as conn:
            return int(conn.execute(sql).fetchone()[0])

    wait_for(lambda: count("SELECT count(*) FROM receipts") >= 10, every=0.01)
    proc.send_signal(signal.SIGTERM)  # in the middle of the backlog
    assert proc.wait(timeout=40) == 0
    taken = count("SELECT count(*) FROM receipts")
    assert 10 <= taken < 200
    assert len(list(new.iterdir())) == 200 - taken  # what was taken in was acknowledged
    run_cli(home, "run", "--once")
    assert count("SELECT count(*) FROM receipts") == 200
    assert count("SELECT count(*) FROM activities WHERE direction = 'incoming'") == 200
    assert (
        count("SELECT count(DISTINCT message_id) FROM activities WHERE direction = 'incoming'")
        == 200
    )
    assert count("SELECT count(*) FROM cases WHERE queue = 'vip'") == 200  # the reloaded rules
    assert not list(new.iterdir())
