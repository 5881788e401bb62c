"""The rules in force, and their hot reload.

:class:`RulesHolder` keeps the last good :class:`LoadedRules`. ``reload()`` reads the file again:
a file that fails validation (or removes a queue that still holds open cases) is rejected with
all its errors logged, and the last good rules keep routing. ``watch()`` reloads whenever the
file changes on disk (watchfiles); the daemon also calls ``reload()`` on SIGHUP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

from watchfiles import awatch

from inbox_daemon.errors import RulesError
from inbox_daemon.logging import get_logger
from inbox_daemon.router.loader import LoadedRules, check_queue_removal, load_rules

log = get_logger("inbox_daemon.router")

OpenQueues = Callable[[], Awaitable[Collection[str]]]


class RulesHolder:
    def __init__(self, path: Path, *, queues_with_open_cases: OpenQueues | None = None) -> None:
        self.path = path
        self._current: LoadedRules | None = None
        self.open_queues = queues_with_open_cases
        self.last_error: str | None = None
        self.reloads = 0
        #: Called with the new rules after every successful reload.
        self.on_change: list[Callable[[LoadedRules], None]] = []
        self._lock = asyncio.Lock()

    @property
    def current(self) -> LoadedRules | None:
        return self._current

    def __call__(self) -> LoadedRules | None:
        return self._current

    def load(self) -> LoadedRules:
        """The first load: errors are raised (the daemon does not start on bad rules)."""
        self._current = load_rules(self.path)
        return self._current

    async def reload(self) -> bool:
        """Load the file again; keep the last good rules if it is invalid. True if swapped."""
        async with self._lock:
            try:
                new = load_rules(self.path)
                if self._current is not None and self.open_queues is not None:
                    problems = check_queue_removal(
                        self._current.directory,
                        new.directory,
                        await self.open_queues(),
                        loaded=new,
                    )
                    if problems:
                        raise problems[0] if len(problems) == 1 else _joined(problems)
            except RulesError as exc:
                self.last_error = str(exc)
                log.error("rules rejected; the last good rules stay in force",
                          path=str(self.path), errors=str(exc).splitlines())  # fmt: skip
                return False
            except OSError as exc:
                self.last_error = f"{self.path}: {exc.strerror}"
                log.error("rules file unreadable; the last good rules stay in force",
                          path=str(self.path), error=exc.strerror)  # fmt: skip
                return False
            old = self._current.version if self._current else None
            if old == new.version:
                return False
            self._current = new
            self.last_error = None
            self.reloads += 1
            for callback in self.on_change:
                callback(new)
            log.info("rules reloaded", path=str(self.path), version=new.version, previous=old)
            return True

    async def watch(self) -> None:
        """Reload on every change of the file (atomic replaces by editors included)."""
        target = self.path.absolute()
        async for changes in awatch(target.parent, debounce=200, step=50):
            if any(Path(changed) == target for _, changed in changes):
                await self.reload()


def _joined(problems: list[RulesError]) -> RulesError:
    return RulesError("\n".join(str(p) for p in problems))
