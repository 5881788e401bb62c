"""The real ``inbox-daemon run``: sd_notify to systemd, one daemon per SQLite file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli import run_cli


def start(home: Path, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "inbox_daemon", "run"],
        cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    seen = ""
    deadline = time.monotonic() + 30
    while "daemon ready" not in seen and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen += line
    assert "daemon ready" in seen, seen
    return proc


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise


@pytest.fixture
def home(tmp_path: Path) -> Path:
    run_cli(tmp_path, "init", ".")
    return tmp_path


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    try:
        yield str(path), sock
    finally:
        sock.close()


def next_message(sock: socket.socket, *, skip_watchdog: bool = True) -> dict[str, str]:
    while True:
        data = sock.recv(4096).decode()
        fields = dict(line.split("=", 1) for line in data.splitlines())
        if not (skip_watchdog and fields == {"WATCHDOG": "1"}):
            return fields


def test_the_daemon_speaks_sd_notify(home: Path, notify_socket: tuple[str, socket.socket]) -> None:
    address, sock = notify_socket
    proc = start(home, {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"})
    try:
        ready = next_message(sock)
        assert ready["READY"] == "1"
        assert ready["MAINPID"] == str(proc.pid)
        assert ready["STATUS"] == "1 of 1 channels up, 0 pending"
        pings = 0
        deadline = time.monotonic() + 5
        while pings < 2 and time.monotonic() < deadline:
            if next_message(sock, skip_watchdog=False) == {"WATCHDOG": "1"}:
                pings += 1
        assert pings == 2

        proc.send_signal(signal.SIGHUP)
        assert next_message(sock)["RELOADING"] == "1"
        again = next_message(sock)
        while "READY" not in again:  # a STATUS refresh may come in between
            again = next_message(sock)
        assert again["READY"] == "1"

        proc.send_signal(signal.SIGTERM)
        stopping = next_message(sock)
        while "STOPPING" not in stopping:
            stopping = next_message(sock)
        assert stopping["STOPPING"] == "1"
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)


def test_a_second_daemon_on_the_same_sqlite_file_is_refused(home: Path) -> None:
    first = start(home)
    try:
        second = run_cli(home, "run", check=False)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert "another inbox-daemon" in lines[0]
        assert f"pid {first.pid}" in lines[0]
        assert "inbox-daemon.db.lock" in lines[0]
        assert first.poll() is None  # the first one runs on
        assert (home / "var" / "inbox-daemon.db.lock").read_text().strip() == str(first.pid)
    finally:
        assert stop(first) == 0
    # The lock went with the first daemon.
    assert run_cli(home, "run", "--once").returncode == 0
