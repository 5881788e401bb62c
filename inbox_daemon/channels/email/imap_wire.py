"""IMAP wire formats the IMAP channel needs, as pure functions.

This module owns folder names as sent (modified UTF-7, quoted when needed), UID sets
(``1:3,5``), and the reading of aioimaplib's FETCH and listing responses into
:class:`FetchedMessage` values and ``(uid, size)`` pairs. No I/O.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

_FETCH_HEAD = re.compile(rb"\d+ FETCH \(", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"', re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    """One message as fetched: its UID, its bytes and the server's arrival time."""

    uid: int
    raw: bytes
    internal_date: datetime | None = None


def encode_folder(name: str) -> str:
    """A folder name as an IMAP astring: modified UTF-7 (RFC 3501 5.1.3), quoted if needed."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    encoded = "".join(out)
    if encoded and not re.search(r'[\s"\\(){}%*\]]', encoded):
        return encoded
    return '"' + encoded.replace("\\", "\\\\").replace('"', '\\"') + '"'


def uid_set(uids: Iterable[int]) -> str:
    """``1,3:5,9`` from UIDs."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = prev = None
    for uid in ordered:
        if start is None:
            start = prev = uid
        elif prev is not None and uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


def parse_listing(lines: Iterable[Any], after: int) -> list[tuple[int, int]]:
    """``(uid, size)`` pairs above ``after`` from a ``UID FETCH n:* (UID RFC822.SIZE)``.

    ``n:*`` always matches the last message, even below ``n``: hence ``after``.
    """
    found: dict[int, int] = {}
    for line in lines:
        if isinstance(line, bytes) and _FETCH_HEAD.match(line):
            uid, size = _UID.search(line), _SIZE.search(line)
            if uid and int(uid.group(1)) > after:
                found[int(uid.group(1))] = int(size.group(1)) if size else 0
    return sorted(found.items())


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DATE = re.compile(rb"\s*(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")


def parse_internaldate(value: bytes) -> datetime | None:
    """``"06-Jan-2025 10:00:00 +0100"`` (whatever the locale), or None."""
    found = _DATE.fullmatch(value)
    month = _MONTHS.get(found.group(2).decode().upper()) if found else None
    if found is None or month is None:
        return None
    day, _, year, hour, minute, second = (int(g) if g.isdigit() else 0 for g in found.groups()[:6])
    offset = timedelta(hours=int(found.group(8)), minutes=int(found.group(9)))
    zone = timezone(-offset if found.group(7) == b"-" else offset)
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None


def parse_fetch(lines: list[Any]) -> list[FetchedMessage]:
    """FetchedMessages from aioimaplib's FETCH response lines.

    aioimaplib hands over ``b"1 FETCH (UID 5 INTERNALDATE "…" BODY[] {123}"``, then the
    literal as a ``bytearray``, then the rest of the item (``b")"``); unsolicited FETCH items
    without a body (flag updates from other sessions) are skipped.
    """
    messages: list[FetchedMessage] = []
    head: bytes | None = None
    meta = b""
    body: bytes | None = None

    def flush() -> None:
        if head is None or body is None:
            return
        uid = _UID.search(meta)
        if uid is None:
            return
        date = _INTERNALDATE.search(meta)
        internal = parse_internaldate(date.group(1)) if date else None
        messages.append(FetchedMessage(uid=int(uid.group(1)), raw=body, internal_date=internal))

    for line in lines:
        if isinstance(line, bytearray):
            if head is not None and body is None:
                body = bytes(line)
        elif isinstance(line, bytes) and _FETCH_HEAD.match(line):
            flush()
            head, meta, body = line, line, None
        elif isinstance(line, bytes) and head is not None and meta.count(b"(") > meta.count(b")"):
            meta += b" " + line
    flush()
    return messages
