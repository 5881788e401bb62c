"""The ``[http]`` endpoint: ``/healthz`` (JSON, 200 when every channel is up, else 503) and
``/metrics`` (Prometheus text format, from :class:`inbox_daemon.metrics.Metrics`).

What a channel's state is comes from the daemon (:class:`ChannelStatus`); this module only
reports it. Bind it to 127.0.0.1 (the default) or put it behind something that restricts access:
it has no authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from inbox_daemon.logging import get_logger
from inbox_daemon.metrics import CONTENT_TYPE, Metrics

__all__ = ["ChannelStatus", "OpsServer", "health_report"]

log = get_logger("inbox_daemon.health")


@dataclass(frozen=True)
class ChannelStatus:
    name: str
    #: running (task alive, connected), standby (another instance holds its lease), down
    state: str
    connected: bool
    last_delivery: datetime | None = None
    #: IMAP: when the mailbox was last listed successfully.
    last_poll: datetime | None = None

    @property
    def up(self) -> bool:
        return self.state in ("running", "standby")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def health_report(
    channels: Sequence[ChannelStatus],
    *,
    pending: int,
    rules_version: str | None,
    rules_error: str | None,
    stopping: bool = False,
) -> tuple[int, dict[str, Any]]:
    """The status code and the JSON body of ``/healthz``."""
    healthy = all(c.up for c in channels) and not stopping
    body = {
        "status": "ok" if healthy else ("stopping" if stopping else "degraded"),
        "channels": {
            c.name: {
                "state": c.state,
                "up": c.up,
                "connected": c.connected,
                "last_delivery": _iso(c.last_delivery),
                "last_poll": _iso(c.last_poll),
            }
            for c in channels
        },
        "outbox": {"pending": pending},
        "rules": {"version": rules_version, "last_reload_error": rules_error},
    }
    return (200 if healthy else 503), body


class OpsServer:
    """The aiohttp server for ``/healthz`` and ``/metrics``."""

    def __init__(
        self,
        metrics: Metrics,
        report: Callable[[], tuple[int, dict[str, Any]]],
        *,
        host: str = "127.0.0.1",
        port: int = 9465,
    ) -> None:
        self.metrics = metrics
        self.report = report
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self.app = app

    async def start(self) -> None:
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if runner.addresses:
            self.port = int(runner.addresses[0][1])
        log.info("http endpoint listening", url=f"http://{self.host}:{self.port}/healthz")

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _refresh(self) -> None:
        try:
            await self.metrics.refresh()
        except Exception as exc:  # a scrape answers with what it has
            log.warning("metrics refresh failed", error=f"{type(exc).__name__}: {exc}")

    async def _healthz(self, _request: web.Request) -> web.Response:
        await self._refresh()
        status, body = self.report()
        return web.json_response(body, status=status)

    async def _metrics(self, _request: web.Request) -> web.Response:
        await self._refresh()
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    async def serve(self) -> None:
        """Start, and stay up until cancelled."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                await self.stop()
