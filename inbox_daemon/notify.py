"""systemd's readiness protocol (sd_notify): READY, STATUS, WATCHDOG, RELOADING, STOPPING.

A notification is one datagram of ``KEY=value`` lines sent to the socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract name written ``@name``). Without that variable every
call is a no-op, so the daemon runs the same in a terminal. ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``, if set, naming us) asks for ``WATCHDOG=1`` pings: :meth:`Notifier.watchdog`
sends them at half that interval for as long as the event loop runs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

from inbox_daemon.logging import get_logger

__all__ = ["Notifier"]

log = get_logger("inbox_daemon.notify")


class Notifier:
    """Sends notifications to systemd; every method is a no-op when not run by systemd."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        #: The watchdog interval systemd asked for, in microseconds (None: no watchdog).
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._failed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if environ is None else environ
        usec: int | None = None
        pid = env.get("WATCHDOG_PID", "")
        if not pid or pid == str(os.getpid()):
            try:
                usec = int(env.get("WATCHDOG_USEC", ""))
            except ValueError:
                usec = None
        return cls(env.get("NOTIFY_SOCKET"), watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings: half the interval systemd asked for."""
        return self.watchdog_usec / 2_000_000 if self.watchdog_usec else None

    def _socket_address(self) -> str | bytes:
        assert self.address is not None
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()
        return self.address

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (keys given in lower or upper case); True if sent."""
        if self.address is None:
            return False
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._socket_address())
                sock.sendall(payload)
        except OSError as exc:
            if not self._failed:  # say it once, not on every watchdog ping
                log.warning("sd_notify failed", socket=self.address, error=str(exc))
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str = "") -> bool:
        if status:
            return self.send(ready=1, status=status, mainpid=os.getpid())
        return self.send(ready=1, mainpid=os.getpid())

    def status(self, text: str) -> bool:
        return self.send(status=text)

    def reloading(self) -> bool:
        """Before a reload; follow it with :meth:`ready`."""
        return self.send(
            reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )

    def stopping(self, status: str = "") -> bool:
        if status:
            return self.send(stopping=1, status=status)
        return self.send(stopping=1)

    def ping(self) -> bool:
        return self.send(watchdog=1)

    async def watchdog(self) -> None:
        """Ping at half the watchdog interval until cancelled (returns at once without one)."""
        interval = self.watchdog_interval
        if interval is None or not self.enabled:
            return
        while True:
            self.ping()
            await asyncio.sleep(interval)
