"""Work done after Slack has been answered: kept by reference, crashes logged, drained on stop.

Slack wants an answer within three seconds, so posting cards, mirroring messages into threads
and ephemeral notices run here, after the acknowledgement. Each task is held in a set until it
ends (asyncio keeps only weak references), a failure is logged with the task's name, and
:meth:`Background.close` waits a little for the rest before cancelling them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from inbox_daemon.logging import get_logger

__all__ = ["Background"]

log = get_logger("inbox_daemon.channels.slack")


class Background:
    """A set of fire-and-forget tasks that are not forgotten."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, object], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("slack background task failed", task=task.get_name(), exc_info=exc)

    async def drain(self, within: float | None = None) -> bool:
        """Wait until no task is left (tasks may start more); False if ``within`` s passed."""
        loop = asyncio.get_running_loop()
        deadline = None if within is None else loop.time() + within
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=left)
        return True

    async def close(self, grace: float = 5.0) -> None:
        """Let running work finish for up to ``grace`` seconds, then cancel what is left."""
        if await self.drain(grace):
            return
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
