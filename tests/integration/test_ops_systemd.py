"""The systemd unit: ``systemd-analyze verify`` accepts it, and the settings we rely on are set."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inbox_daemon.config import DaemonSettings
from tests.conftest import IN_CI, REPO

UNIT = REPO / "systemd" / "inbox-daemon.service"
BINARY = Path(sys.executable).with_name("inbox-daemon")

#: What systemd-analyze may say outside a booted systemd, about things other than our unit.
NOISE = ("not running as pid 1", "failed to connect to bus", "system has not been booted")


def unit_text() -> str:
    """The unit with ExecStart pointing at a binary that exists here (the venv's)."""
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/inbox-daemon " in text
    return text.replace("ExecStart=/usr/local/bin/inbox-daemon ", f"ExecStart={BINARY} ")


def verify(tmp_path: Path, text: str) -> list[str]:
    """systemd-analyze verify's complaints about the unit (an empty list: none)."""
    if shutil.which("systemd-analyze") is None:
        message = "systemd-analyze is missing (Debian package systemd)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    path = tmp_path / "inbox-daemon.service"
    path.write_text(text)
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not any(n in line.lower() for n in NOISE)
    ]
    if proc.returncode != 0 and not lines:
        lines = [f"exit status {proc.returncode}"]
    return lines


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert BINARY.exists()
    assert verify(tmp_path, unit_text()) == []


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("Type=notify\n", "Type=notifyy\n"),
        ("ProtectSystem=strict\n", "ProtectSystem=stricter\n"),
        ("WatchdogSec=60\n", "WatchdogSecs=60\n"),
        ("[Service]\n", "[Servce]\n"),
    ],
)
def test_the_check_catches_a_broken_key(tmp_path: Path, good: str, bad: str) -> None:
    text = unit_text()
    assert good in text
    complaints = verify(tmp_path, text.replace(good, bad, 1))
    assert complaints, f"{bad.strip()} went unnoticed"


def test_a_missing_binary_is_caught(tmp_path: Path) -> None:
    text = unit_text().replace(f"ExecStart={BINARY} ", f"ExecStart={tmp_path}/nowhere ")
    assert verify(tmp_path, text)


def test_the_unit_says_what_the_daemon_needs() -> None:
    s = settings()
    one = {k: v[-1] for k, v in s.items()}
    assert (one["Type"], one["NotifyAccess"], one["WatchdogSec"]) == ("notify", "main", "60")
    assert one["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["Restart"] == "on-failure"
    assert one["DynamicUser"] == "yes"
    assert one["StateDirectory"] == one["ConfigurationDirectory"] == "inbox-daemon"
    assert one["ExecStart"].endswith("run --config /etc/inbox-daemon/inbox-daemon.toml")
    env = dict(e.split("=", 1) for e in s["Environment"])
    assert env["INBOX_DAEMON_DATABASE__URL"] == "sqlite:////var/lib/inbox-daemon/inbox-daemon.db"
    assert env["INBOX_DAEMON_STORAGE__PATH"].startswith("/var/lib/inbox-daemon/")
    assert one["CapabilityBoundingSet"] == ""
    assert one["UMask"] == "0077"
    assert one["ProtectSystem"] == "strict"
    assert one["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    assert int(one["TimeoutStopSec"]) > DaemonSettings().drain_seconds + 10
    assert "#LoadCredential=imap-support" in UNIT.read_text()
