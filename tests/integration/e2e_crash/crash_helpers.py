"""What both crash tests do to Dovecot and to the database from outside the daemon."""

from __future__ import annotations

import re
from typing import Any

from servers.dovecot import MailAccount


def append_all(account: MailAccount, raws: list[bytes]) -> list[int]:
    """Append every mail over one connection; returns their UIDs in order."""
    uids = []
    with account.connect() as conn:
        for raw in raws:
            typ, data = conn.append("INBOX", None, None, raw)
            assert typ == "OK", data
            found = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0] or b"")
            assert found, data
            uids.append(int(found.group(1)))
    return uids


def server_flags(account: MailAccount) -> dict[int, set[str]]:
    """UID -> flags of every message in INBOX, in one FETCH."""
    flags: dict[int, set[str]] = {}
    with account.connect() as conn:
        typ, data = conn.select("INBOX", readonly=True)
        assert typ == "OK", data
        typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS)")
        assert typ == "OK", data
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            uid = re.search(rb"UID (\d+)", line)
            found = re.search(rb"FLAGS \(([^)]*)\)", line)
            if uid and found:
                flags[int(uid.group(1))] = set(found.group(1).decode().split())
    return flags


def unseen_uids(account: MailAccount) -> list[int]:
    """The UIDs in INBOX not flagged \\Seen, ascending."""
    return sorted(uid for uid, flags in server_flags(account).items() if "\\Seen" not in flags)


async def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    """The rows of one query on PostgreSQL (the daemon's URL, asyncpg directly)."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()
