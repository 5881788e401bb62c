"""Hot reload of rules.yaml: keep the last good rules, refuse to drop a busy queue, watch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from inbox_daemon.router.reload import RulesHolder

GOOD = """version: 1
users: [{id: alice, name: Alice}]
teams: [{id: tier1, name: Tier 1, members: [alice]}]
queues:
  - {id: general, name: General, team: tier1}
  - {id: billing, name: Billing, team: tier1}
rules:
  - name: invoices
    when: {subject: invoice}
    then: {queue: billing}
default: {queue: general}
"""


def write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # as editors do


async def test_bad_file_keeps_last_good_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write(path, GOOD)
    holder = RulesHolder(path)
    first = holder.load()
    seen = []
    holder.on_change.append(seen.append)
    write(path, GOOD.replace("team: tier1}", "team: tier9}", 1))
    assert await holder.reload() is False
    assert holder.current is first
    assert holder.last_error is not None
    assert "rules.yaml:5:" in holder.last_error
    assert "unknown team 'tier9'" in holder.last_error
    write(path, GOOD.replace("invoice", "bill"))
    assert await holder.reload() is True
    assert holder.current is not first
    assert holder.current is not None
    assert holder.current.version != first.version
    assert holder.last_error is None
    assert seen == [holder.current]
    assert await holder.reload() is False  # unchanged file: nothing to swap


async def test_queue_with_open_cases_cannot_be_removed(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write(path, GOOD)

    async def open_queues() -> set[str]:
        return {"billing"}

    holder = RulesHolder(path, queues_with_open_cases=open_queues)
    first = holder.load()
    without_billing = GOOD.replace("  - {id: billing, name: Billing, team: tier1}\n", "").replace(
        "then: {queue: billing}", "then: {queue: general}"
    )
    write(path, without_billing)
    assert await holder.reload() is False
    assert holder.current is first
    assert holder.last_error is not None
    assert "billing" in holder.last_error
    assert "open cases" in holder.last_error


async def test_watch_reloads_on_change(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    write(path, GOOD)
    holder = RulesHolder(path)
    first = holder.load()
    task = asyncio.create_task(holder.watch())
    try:
        await asyncio.sleep(0.3)
        write(path, GOOD.replace("invoice", "receipt"))
        for _ in range(100):
            if holder.current is not first:
                break
            await asyncio.sleep(0.05)
        assert holder.current is not first
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
