"""sd_notify: datagrams on a real socket, path and abstract names, watchdog interval."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from inbox_daemon.notify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    try:
        yield str(path), sock
    finally:
        sock.close()


def received(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_stopping_on_a_path_socket(listener: tuple[str, socket.socket]) -> None:
    address, sock = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready("2 channels up, 0 pending")
    assert received(sock) == {
        "READY": "1",
        "STATUS": "2 channels up, 0 pending",
        "MAINPID": str(os.getpid()),
    }
    assert notifier.status("draining")
    assert received(sock) == {"STATUS": "draining"}
    assert notifier.reloading()
    got = received(sock)
    assert got["RELOADING"] == "1"
    assert int(got["MONOTONIC_USEC"]) > 0
    assert notifier.stopping()
    assert received(sock) == {"STOPPING": "1"}


def test_abstract_socket_names() -> None:
    name = f"inbox-daemon-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert Notifier(f"@{name}").ping()
        assert received(sock) == {"WATCHDOG": "1"}
    finally:
        sock.close()


def test_no_socket_is_a_no_op() -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    assert notifier.watchdog_interval is None


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    assert not Notifier(str(tmp_path / "gone.sock")).ready()


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "60000000"}
    assert Notifier.from_env(env).watchdog_interval == 30.0
    mine = Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval == 30.0
    other = Notifier.from_env({**env, "WATCHDOG_PID": str(os.getpid() + 1)})
    assert other.watchdog_interval is None  # meant for another process
    assert Notifier.from_env({**env, "WATCHDOG_USEC": "x"}).watchdog_interval is None


async def test_watchdog_pings_until_cancelled(listener: tuple[str, socket.socket]) -> None:
    address, sock = listener
    notifier = Notifier(address, watchdog_usec=100_000)  # ping every 50 ms
    task = asyncio.create_task(notifier.watchdog())
    await asyncio.sleep(0.23)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sock.settimeout(0)
    pings = 0
    while True:
        try:
            assert sock.recv(100) == b"WATCHDOG=1"
        except BlockingIOError:
            break
        pings += 1
    assert 3 <= pings <= 6


async def test_watchdog_without_interval_returns_at_once() -> None:
    await asyncio.wait_for(Notifier("/run/x").watchdog(), 1)
