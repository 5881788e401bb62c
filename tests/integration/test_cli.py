"""The `inbox-daemon` command, run as a real process."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from inbox_daemon.cli import main
from inbox_daemon.store.migrate import alembic_config

Run = Callable[..., subprocess.CompletedProcess[str]]


def run_cli(
    cwd: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "inbox_daemon", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder set up by `inbox-daemon init`."""
    target = tmp_path_factory.mktemp("home")
    out = run_cli(target, "init", ".")
    assert "wrote" in out.stdout
    return target


@pytest.fixture
def cli(home: Path) -> Run:
    def call(
        *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(home, *args, check=check, env=env)

    return call


def db_rows(home: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "var" / "inbox-daemon.db") as conn:
        return conn.execute(sql).fetchall()


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("inbox-daemon: error: ")
    return lines[0]


def test_init_writes_config_rules_and_database(home: Path) -> None:
    assert (home / "inbox-daemon.toml").read_text().startswith("# inbox-daemon configuration")
    assert "version: 1" in (home / "rules.yaml").read_text()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert db_rows(home, "SELECT version_num FROM alembic_version") == [(head,)]
    for sub in ("attachments", "quarantine", "outgoing"):
        assert (home / "var" / "storage" / sub).is_dir()


def test_init_keeps_existing_files(home: Path, cli: Run) -> None:
    proc = cli("init", ".")
    assert "exists; kept it" in proc.stderr


def test_case_life_through_the_cli(cli: Run, home: Path) -> None:
    number = cli(
        "cases", "new", "--title", "VPN down", "--contact", "Ann <ann@example.com>",
        "--priority", "high", "--as", "alice",
    ).stdout.strip()  # fmt: skip
    assert number.startswith("CAS-")
    listed = json.loads(cli("cases", "list", "--json").stdout)
    mine = next(c for c in listed if c["number"] == number)
    assert (mine["title"], mine["priority"], mine["status"]) == ("VPN down", "high", "new")
    assert mine["contact_email"] == "ann@example.com"
    table = cli("cases", "list", "--status", "new").stdout
    assert number in table
    assert "VPN down" in table

    assert "queued as <" in cli("cases", "reply", number, "Looking into it", "--as", "alice").stdout
    cli("cases", "note", number, "probably the firewall", "--as", "alice")
    cli("cases", "status", number, "on_hold", "--as", "alice")
    cli("cases", "resolve", number, "--resolution", "firewall rule fixed", "--as", "alice")

    shown = json.loads(cli("cases", "show", number.lower(), "--json").stdout)
    assert shown["case"]["status"] == "resolved"
    assert shown["case"]["resolution"] == "firewall rule fixed"
    kinds = [(a["direction"], a["kind"]) for a in shown["activities"]]
    assert kinds == [("outgoing", "email"), ("internal", "note")]
    assert shown["activities"][0]["delivery_state"] == "pending"
    status_changes = [
        (e["old_value"], e["new_value"], e["actor_name"])
        for e in shown["audit"]
        if e["field"] == "status"
    ]
    assert status_changes == [
        (None, "new", "alice"),
        ("new", "in_progress", "alice"),
        ("in_progress", "on_hold", "alice"),
        ("on_hold", "resolved", "alice"),
    ]
    text = cli("cases", "show", number).stdout
    assert "resolution: firewall rule fixed" in text
    assert "user:alice resolve status: 'on_hold' -> 'resolved'" in text

    cli("cases", "reactivate", number)
    cli("cases", "cancel", number)
    assert (
        json.loads(cli("cases", "show", number, "--json").stdout)["case"]["status"] == "cancelled"
    )


def test_illegal_transition_is_one_line_and_changes_nothing(cli: Run, home: Path) -> None:
    number = cli("cases", "new", "--title", "x", "--contact", "bob@example.com").stdout.strip()
    cli("cases", "cancel", number)
    before = db_rows(home, "SELECT count(*) FROM audit_events")
    err = one_line_error(cli("cases", "reactivate", number, check=False))
    assert "from Cancelled to In progress" in err
    err = one_line_error(cli("cases", "note", number, "hello", check=False))
    assert f"case {number} is cancelled and can no longer change" in err
    assert db_rows(home, "SELECT count(*) FROM audit_events") == before
    assert db_rows(home, f"SELECT status FROM cases WHERE number = '{number}'") == [("cancelled",)]


def test_a_contact_that_is_not_one_address_is_refused_and_stores_nothing(
    cli: Run, home: Path
) -> None:
    # parseaddr read the unquoted colon as group syntax and took evil@x.example as the contact.
    before = db_rows(home, "SELECT count(*) FROM cases")
    for contact in ("Eve Bcc: evil@x.example <eve@example.com>", "test test@example.com",
                    "ann@example.com, bob@example.com"):  # fmt: skip
        err = one_line_error(cli("cases", "new", "--title", "x", "--contact", contact, check=False))
        assert f"contact {contact!r} is not one email address" in err
        assert "write it as 'Name <ann@example.com>'" in err
    assert db_rows(home, "SELECT count(*) FROM cases") == before
    number = cli(
        "cases", "new", "--title", "x", "--contact", "Ann (Sales) <Ann@Example.com>"
    ).stdout.strip()  # fmt: skip
    assert db_rows(
        home, f"SELECT contact_email, contact_name FROM cases WHERE number = '{number}'"
    ) == [("ann@example.com", "Ann (Sales)")]


def test_resolve_with_open_activities_needs_the_flag(cli: Run, home: Path) -> None:
    number = cli("cases", "new", "--title", "x", "--contact", "bob@example.com").stdout.strip()
    case_id = db_rows(home, f"SELECT id FROM cases WHERE number = '{number}'")[0][0]
    with sqlite3.connect(home / "var" / "inbox-daemon.db") as conn:
        conn.execute(
            "INSERT INTO activities (case_id, kind, direction, state, subject, body_text,"
            ' recipients, cc, "references", automatic, flags, actor, attempts, created_at,'
            " updated_at) VALUES (?, 'task', 'internal', 'open', 'call back', '', '[]', '[]',"
            " '[]', 0, '{}', 'user:alice', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            (case_id,),
        )
    err = one_line_error(cli("cases", "resolve", number, "--resolution", "ok", check=False))
    assert "1 open activity" in err
    assert "--cancel-open-activities" in err
    cli("cases", "resolve", number, "--resolution", "ok", "--cancel-open-activities")
    assert db_rows(home, f"SELECT state FROM activities WHERE case_id = {case_id}") == [
        ("cancelled",)
    ]


def test_unknown_case(cli: Run) -> None:
    err = one_line_error(cli("cases", "show", "CAS-424242", check=False))
    assert "no case 'CAS-424242'" in err


def test_missing_config(tmp_path: Path) -> None:
    err = one_line_error(run_cli(tmp_path, "cases", "list", check=False))
    assert "no inbox-daemon.toml" in err
    assert "inbox-daemon init" in err
    err = one_line_error(run_cli(tmp_path, "cases", "list", "--config", "nope.toml", check=False))
    assert "config file nope.toml not found" in err


def test_invalid_config(tmp_path: Path) -> None:
    (tmp_path / "inbox-daemon.toml").write_text('[database]\nurl = "sqlite:///x.db"\nulr = 1\n')
    err = one_line_error(run_cli(tmp_path, "cases", "list", check=False))
    assert "database.ulr: unknown key" in err
    (tmp_path / "inbox-daemon.toml").write_text("[database\n")
    assert "invalid TOML" in one_line_error(run_cli(tmp_path, "cases", "list", check=False))
    (tmp_path / "inbox-daemon.toml").write_text('[database]\nurl = "mysql://x"\n')
    assert "unsupported database 'mysql'" in one_line_error(
        run_cli(tmp_path, "cases", "list", check=False)
    )


def test_environment_overrides_config(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    env = {"INBOX_DAEMON_DATABASE__URL": f"sqlite:///{other}"}
    first = run_cli(home, "cases", "list", env=env)
    assert first.stdout.strip() == "no cases"
    assert f"the database sqlite:///{other} was empty" in first.stderr
    assert other.is_file()  # the environment's database, not the file's


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    run_cli(tmp_path, "init", ".")
    with sqlite3.connect(tmp_path / "var" / "inbox-daemon.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    err = one_line_error(run_cli(tmp_path, "run", "--once", check=False))
    assert "newer than this inbox-daemon" in err
    err = one_line_error(run_cli(tmp_path, "db", "upgrade", check=False))
    assert "newer than this inbox-daemon" in err


@pytest.mark.parametrize(
    "args",
    [
        [], ["init"], ["run"], ["db", "upgrade"], ["cases"], ["cases", "new"], ["cases", "list"],
        ["cases", "show"], ["cases", "reply"], ["cases", "note"], ["cases", "assign"],
        ["cases", "pick"], ["cases", "resolve"], ["cases", "reactivate"], ["cases", "cancel"],
        ["cases", "close-resolved"], ["cases", "escalate"], ["cases", "release"],
        ["cases", "status"], ["cases", "task"], ["cases", "call"], ["cases", "activity"],
        ["cases", "activity", "complete"], ["cases", "activity", "cancel"], ["rules", "check"],
        ["rules", "explain"], ["ingest"],
        ["quarantine", "list"], ["quarantine", "show"], ["quarantine", "retry"],
    ],
    ids=" ".join,
)  # fmt: skip
def test_every_command_has_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """The command's own parser (in-process: a subprocess per command would be slow)."""
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: inbox-daemon")
    assert len(out.splitlines()) > 3


def test_run_once_and_sigterm(home: Path) -> None:
    run_cli(home, "run", "--once")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "inbox_daemon", "run"],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        seen = ""
        assert proc.stderr is not None
        while "daemon ready" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "daemon ready" in seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        rest = proc.stderr.read()
        assert '"event": "daemon stopped"' in rest
    finally:
        proc.kill()
        proc.wait()


SAMPLE = (
    b"From: Ann Customer <ann@example.com>\r\n"
    b"To: support@example.com\r\n"
    b"Subject: =?utf-8?q?Drucker_br=C3=A4nnt?=\r\n"
    b"Message-ID: <stdin-1@example.com>\r\n"
    b"Date: Mon, 02 Mar 2026 09:00:00 +0100\r\n"
    b"\r\n"
    b"The printer is on fire.\r\n"
)


def run_stdin(cwd: Path, data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    return subprocess.run(
        [sys.executable, "-m", "inbox_daemon", "ingest", *args],
        cwd=cwd, env=env, input=data, capture_output=True, timeout=60,
    )  # fmt: skip


def run_cli_bytes(cwd: Path, *args: str) -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    proc = subprocess.run(
        [sys.executable, "-m", "inbox_daemon", *args],
        cwd=cwd, env=env, capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    return proc.stdout


def test_ingest_from_stdin_is_idempotent(tmp_path: Path) -> None:
    run_cli(tmp_path, "init", ".")
    first = run_stdin(tmp_path, SAMPLE)
    assert first.returncode == 0, first.stderr
    assert first.stdout.decode().strip() == "created CAS-000001"
    again = run_stdin(tmp_path, SAMPLE)
    assert (again.returncode, again.stdout.decode().strip()) == (0, "duplicate")
    shown = json.loads(run_cli(tmp_path, "cases", "show", "CAS-000001", "--json").stdout)
    assert shown["case"]["title"] == "Drucker brännt"
    assert shown["case"]["contact_email"] == "ann@example.com"
    assert shown["activities"][0]["message_id"] == "<stdin-1@example.com>"


def test_ingest_temporary_failure_exit_code(tmp_path: Path) -> None:
    run_cli(tmp_path, "init", ".")
    (tmp_path / "var" / "inbox-daemon.db").unlink()
    (tmp_path / "var" / "inbox-daemon.db").mkdir()  # the database cannot be opened
    proc = run_stdin(tmp_path, SAMPLE)
    assert proc.returncode == 75
    assert b"message not stored, try again later" in proc.stderr


def large_sample(seed: int = 5) -> tuple[bytes, bytes]:
    """SAMPLE with a 3 MB attachment (above the spool threshold), and the attachment."""
    import base64
    import random

    data = random.Random(seed).randbytes(4 * 1024 * 1024)
    encoded = base64.b64encode(data).decode("ascii")
    body = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    raw = SAMPLE.replace(
        b"\r\n\r\nThe printer is on fire.\r\n",
        b'\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe printer is on fire.\r\n"
        b'--b\r\nContent-Type: image/jpeg; name="fire.jpg"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n" + body.encode() + b"\r\n--b--\r\n",
    )
    return raw, data


def test_ingest_of_a_large_mail_goes_through_a_spool_file(tmp_path: Path) -> None:
    import hashlib

    raw, data = large_sample()
    run_cli(tmp_path, "init", ".")
    first = run_stdin(tmp_path, raw)
    assert first.returncode == 0, first.stderr
    assert first.stdout.decode().strip() == "created CAS-000001"
    again = run_stdin(tmp_path, raw)
    assert (again.returncode, again.stdout.decode().strip()) == (0, "duplicate")
    sha = hashlib.sha256(data).hexdigest()
    [stored] = [p for p in (tmp_path / "var").rglob(sha) if p.is_file()]
    assert stored.read_bytes() == data


def test_quarantine_list_show_retry(tmp_path: Path) -> None:
    run_cli(tmp_path, "init", ".")
    proc = run_stdin(tmp_path, b"")
    assert (proc.returncode, proc.stdout.decode().strip()) == (0, "quarantined")
    listed = run_cli(tmp_path, "quarantine", "list").stdout
    assert listed.startswith("#1 ")
    assert "held" in listed
    shown = run_cli(tmp_path, "quarantine", "show", "1").stdout
    assert "reason:" in shown
    retry = run_cli(tmp_path, "quarantine", "retry", "1", check=False)
    assert "still cannot be taken in" in one_line_error(retry)
    err = one_line_error(run_cli(tmp_path, "quarantine", "show", "42", check=False))
    assert "no quarantined message #42" in err


def test_automatic_mail_answering_nothing_is_listed_and_can_become_a_case(tmp_path: Path) -> None:
    run_cli(tmp_path, "init", ".")
    raw = SAMPLE.replace(b"Subject:", b"Auto-Submitted: auto-generated\r\nSubject:", 1)
    proc = run_stdin(tmp_path, raw)
    assert (proc.returncode, proc.stdout.decode().strip()) == (0, "set_aside")
    assert "nothing in quarantine" in run_cli(tmp_path, "quarantine", "list").stdout
    listed = run_cli(tmp_path, "quarantine", "list", "--ignored").stdout
    assert listed.startswith("#1 ")
    assert "ignored" in listed
    assert "answers none of our messages" in listed
    assert run_cli_bytes(tmp_path, "quarantine", "show", "--raw", "1").endswith(raw)
    out = run_cli(tmp_path, "quarantine", "retry", "1").stdout
    assert out.strip() == "#1: created CAS-000001"
    assert "nothing set aside" in run_cli(tmp_path, "quarantine", "list", "--ignored").stdout


@pytest.mark.parametrize("large", [False, True], ids=["small", "large"])
def test_quarantine_retry_takes_the_message_in(tmp_path: Path, large: bool) -> None:
    """A message quarantined because storing failed goes through once retried (a large one
    parsed from its stored file)."""
    run_cli(tmp_path, "init", ".")
    db = tmp_path / "var" / "inbox-daemon.db"
    storage = tmp_path / "var" / "storage" / "quarantine"
    import hashlib

    raw = large_sample()[0] if large else SAMPLE
    sha = hashlib.sha256(raw).hexdigest()
    target = storage / sha[:2] / sha[2:4] / sha
    target.parent.mkdir(parents=True)
    target.write_bytes(raw)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO quarantine (channel, mailbox, external_id, sha256, size, reason, state,"
            " created_at, updated_at) VALUES ('email', 'support', '9:1', ?, ?, 'db was down',"
            " 'held', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            (sha, len(raw)),
        )
        conn.execute(
            "INSERT INTO receipts (channel, mailbox, external_id, outcome, created_at)"
            " VALUES ('email', 'support', '9:1', 'quarantined', '2026-01-01 00:00:00')"
        )
    shown = run_cli(tmp_path, "quarantine", "show", "1").stdout
    assert "Message-ID: <stdin-1@example.com>" in shown
    assert len(shown) < 10_000  # the header block only
    assert run_cli_bytes(tmp_path, "quarantine", "show", "--raw", "1").endswith(raw)
    out = run_cli(tmp_path, "quarantine", "retry", "1").stdout
    assert out.strip() == "#1: created CAS-000001"
    assert "nothing in quarantine" in run_cli(tmp_path, "quarantine", "list").stdout
    assert "retried" in run_cli(tmp_path, "quarantine", "list", "--all").stdout
    again = one_line_error(run_cli(tmp_path, "quarantine", "retry", "1", check=False))
    assert "already retried" in again


def test_rules_check_and_explain(home: Path, tmp_path: Path) -> None:
    ok = run_cli(home, "rules", "check")
    assert f"{home / 'rules.yaml'}: OK" in ok.stdout
    bad = tmp_path / "rules.yaml"
    bad.write_text("version: 1\nteams:\n  - {id: t, name: T, members: [ghost]}\nbogus: 1\n")
    proc = run_cli(home, "rules", "check", str(bad), check=False)
    assert proc.returncode == 1
    assert "ghost" in proc.stderr
    assert "bogus" in proc.stderr
    eml = tmp_path / "m.eml"
    eml.write_bytes(SAMPLE)
    out = run_cli(home, "rules", "explain", str(eml), "--at", "2026-03-02T10:00+01:00").stdout
    assert "decision" in out.lower()


def test_case_commands_need_no_mail_or_slack_secrets(tmp_path: Path) -> None:
    run_cli(tmp_path, "init", ".")
    config = tmp_path / "inbox-daemon.toml"
    config.write_text(
        config.read_text()
        + '\n[mailbox.smtp]\nhost = "smtp.example.com"\nusername = "support"\n'
        + 'password_env = "NOT_SET_SMTP_PASSWORD"\n'
        + '\n[slack]\nmode = "socket"\nbot_token_env = "NOT_SET_BOT"\n'
        + 'app_token_env = "NOT_SET_APP"\n'
    )
    number = run_cli(tmp_path, "cases", "new", "--title", "x", "--contact", "a@example.com")
    assert number.stdout.strip() == "CAS-000001"
    assert "CAS-000001" in run_cli(tmp_path, "cases", "list").stdout
    run_cli(tmp_path, "cases", "reply", "CAS-000001", "queued for the daemon")
    err = one_line_error(run_cli(tmp_path, "run", "--once", check=False))
    assert "NOT_SET" in err
    assert "is not set" in err
