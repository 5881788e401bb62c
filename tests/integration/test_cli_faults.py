"""Faults a user meets at the command line, through the real command in a subprocess: each is
one line on stderr with the exit code a shell script can act on, and leaves the database as it
was. PostgreSQL "stopped" is a closed port; a missing database one that was never created."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from test_cli import run_cli

from inbox_daemon.store.migrate import alembic_config
from tests.conftest import PG_HOST, PG_PORT, drop_postgres_database, make_postgres_database

HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
ALL_COMMANDS = (
    ("cases", "list"), ("cases", "show", "CAS-000001"), ("accounts",), ("db", "upgrade"),
    ("run", "--once"), ("cases", "new", "--title", "x", "--contact", "ann@example.com"),
)  # fmt: skip


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("faults")
    run_cli(target, "init", ".")
    return target


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def only_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize("args", ALL_COMMANDS, ids=" ".join)
def test_postgres_down_is_one_line_naming_the_url_without_its_password(
    home: Path, args: tuple[str, ...]
) -> None:
    port = closed_port()
    env = {"INBOX_DAEMON_DATABASE__URL": f"postgresql://postgres:s3cret@127.0.0.1:{port}/desk"}
    line = only_line(run_cli(home, *args, env=env, check=False), 75)
    assert line == (
        f"inbox-daemon: error: cannot reach the database postgresql://postgres:***@127.0.0.1:"
        f"{port}/desk: connection refused (is the server running, on that port?)"
    )


@pytest.mark.postgres
@pytest.mark.parametrize("args", [("cases", "list"), ("db", "upgrade"), ("run", "--once")],
                         ids=" ".join)  # fmt: skip
def test_a_missing_postgres_database_is_one_line_and_not_created(
    home: Path, args: tuple[str, ...]
) -> None:
    env = {"INBOX_DAEMON_DATABASE__URL": f"postgresql://postgres@{PG_HOST}:{PG_PORT}/no_such_desk"}
    line = only_line(run_cli(home, *args, env=env, check=False), 75)
    assert line == (
        f"inbox-daemon: error: cannot reach the database postgresql://postgres@{PG_HOST}:"
        f'{PG_PORT}/no_such_desk: database "no_such_desk" does not exist'
    )


def test_a_sqlite_file_in_a_missing_folder_is_named_and_not_made(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "typo" / "desk.db"
    env = {"INBOX_DAEMON_DATABASE__URL": f"sqlite:///{path}"}
    for args in (("cases", "list"), ("run", "--once")):
        line = only_line(run_cli(home, *args, env=env, check=False), 1)
        assert line == (
            f"inbox-daemon: error: the SQLite database {path}: its folder {path.parent} does not"
            " exist; correct [database] url, or create the folder (`inbox-daemon db upgrade`"
            " creates both)"
        )
        assert not path.parent.exists()
    run_cli(home, "db", "upgrade", env=env)  # as the message says
    assert path.is_file()


def test_an_empty_database_gets_its_schema_an_old_one_is_refused(
    home: Path, tmp_path: Path
) -> None:
    path = tmp_path / "fresh.db"
    env = {"INBOX_DAEMON_DATABASE__URL": f"sqlite:///{path}"}
    first = run_cli(home, "cases", "new", "--title", "Printer", "--contact", "a@example.com",
                    env=env)  # fmt: skip
    assert first.stdout.strip() == "CAS-000001"
    assert first.stderr.strip().startswith(f"inbox-daemon: the database sqlite:///{path} was empty")
    again = run_cli(home, "cases", "list", env=env)
    assert (again.stderr, "CAS-000001" in again.stdout) == ("", True)

    with sqlite3.connect(path) as conn:  # as if made by an older release
        conn.execute("UPDATE alembic_version SET version_num = '0012'")
    line = only_line(run_cli(home, "cases", "list", env=env, check=False), 1)
    assert line == (
        f"inbox-daemon: error: the database sqlite:///{path} is at 0012, this inbox-daemon needs"
        f" {HEAD}: run `inbox-daemon db upgrade`"
    )
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0012",)]

    other = tmp_path / "someone-elses.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    env = {"INBOX_DAEMON_DATABASE__URL": f"sqlite:///{other}"}
    line = only_line(run_cli(home, "cases", "list", env=env, check=False), 1)
    assert "has tables (invoices…) but no inbox-daemon schema" in line


@pytest.mark.postgres
def test_two_commands_on_an_empty_postgres_database_create_the_schema_once(home: Path) -> None:
    url = asyncio.run(make_postgres_database())
    try:
        env = {"INBOX_DAEMON_DATABASE__URL": url}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "inbox_daemon", "cases", "list"],
                cwd=home,
                text=True,
                env={**_env(), **env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
        assert [(code, out.strip()) for code, out, _ in results] == [(0, "no cases")] * 2
        assert sum("was empty" in err for _, _, err in results) >= 1

        async def version() -> list[str]:
            conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
            try:
                return [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
            finally:
                await conn.close()

        assert asyncio.run(version()) == [HEAD]
    finally:
        asyncio.run(drop_postgres_database(url))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}


def test_a_reader_that_goes_away_ends_the_list_quietly(home: Path) -> None:
    """`cases list | head -1` when the list is longer than the reader wants: the reader's end
    of the pipe is shut before the command writes, as `head` shuts it after its line."""
    run_cli(home, "cases", "new", "--title", "Printer", "--contact", "a@example.com")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inbox_daemon", "cases", "list"], cwd=home, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stderr is not None
    proc.stdout.close()
    assert (proc.wait(timeout=60), proc.stderr.read()) == (141, "")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("cases", "lst"), "inbox-daemon cases: error: unknown command 'lst' (did you mean"
                           " 'list'?); `inbox-daemon cases --help` lists them"),
        (("cases", "show"), "inbox-daemon cases show: error: the following arguments are"
                            " required: number; see `inbox-daemon cases show --help`"),
        (("cases", "list", "--status", "inprogress"), "inbox-daemon cases list: error: --status:"
         " unknown value 'inprogress' (did you mean 'in_progress'?); it is one of new,"
         " in_progress, waiting_for_response, on_hold, escalated, resolved, closed, cancelled,"
         " reopened"),
        (("frobnicate",), "inbox-daemon: error: unknown command 'frobnicate';"
                          " `inbox-daemon --help` lists them"),
    ],
)  # fmt: skip
def test_a_wrong_argument_is_one_line_and_a_hint(
    home: Path, args: tuple[str, ...], expected: str
) -> None:
    assert only_line(run_cli(home, *args, check=False), 2) == expected


def test_config_is_taken_before_or_after_the_command(home: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere.toml"
    moved.write_text((home / "inbox-daemon.toml").read_text().replace(
        'url = "sqlite:///var/inbox-daemon.db"', f'url = "sqlite:///{tmp_path}/elsewhere.db"'
    ))  # fmt: skip
    for args in (("--config", str(moved), "cases", "list"), ("cases", "list", "--config",
                                                              str(moved))):  # fmt: skip
        proc = run_cli(tmp_path, *args)
        assert proc.stdout.strip() == "no cases"
    assert (tmp_path / "elsewhere.db").is_file()


def test_a_bad_value_from_the_environment_is_blamed_on_the_variable(home: Path) -> None:
    env = {"INBOX_DAEMON_OUTBOX__MAX_ATTEMPTS": "lots"}
    line = only_line(run_cli(home, "cases", "list", env=env, check=False), 1)
    assert line.startswith(
        "inbox-daemon: error: $INBOX_DAEMON_OUTBOX__MAX_ATTEMPTS (outbox.max_attempts): "
    )
    assert "inbox-daemon.toml" not in line
