"""Header fields of a parsed mail: decoded header map, addresses, Message-IDs and dates.

Owns the translation of raw header values (as the email package stores them, 8-bit bytes as
surrogates) into the typed fields of :class:`~inbox_daemon.messages.InboundMessage`:
the lower-cased header map, From/To/Cc/Reply-To as :class:`Address` (mail-parser's address
parser first, ``email.utils.getaddresses`` when it has nothing or mangled the name),
``<...>``-normalised Message-IDs and reference lists, and timezone-aware dates.

Each header is read on its own: one that cannot be parsed (a 135 KB ``To:`` whose group syntax
sends ``getaddresses`` into a RecursionError) is kept raw in the header map, its name noted in
the ``unparsed`` list the caller passes, and its bare addresses taken; the mail goes on. The
headers whose address we answer (From, Sender, Reply-To) are also read strictly, with
``email.headerregistry``: a value it finds defective (``test test@example.com``, or
``Eve Bcc: evil@x.example <eve@example.com>``, a group naming another address) gives no
address but its one bracketed address, if it has exactly one, and is noted as unparsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from email.headerregistry import AddressHeader, HeaderRegistry
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any, cast

from inbox_daemon.channels.email.decode import Fallback, decode_bytes, decode_header_value
from inbox_daemon.channels.email.loops import normalize_email
from inbox_daemon.messages import Address

__all__ = [
    "Headers",
    "addresses",
    "aware",
    "decode_headers",
    "fallback_charset",
    "id_list",
    "message_id",
    "raw_values",
    "received_header_date",
    "sender_address",
    "sent_at",
]

Headers = dict[str, tuple[str, ...]]

_MSG_ID = re.compile(r"<\s*([^<>\s]+?)\s*>")
_BARE_ID = re.compile(r"[^\s<>,;()\"]+@[^\s<>,;()\"]+")
_MAX_REFERENCES = 100
_SURROGATE = re.compile("[\udc80-\udcff]")


def fallback_charset(message: Message) -> tuple[str, ...]:
    """Every charset the message declares, in order (its first 20 parts): the best guesses for
    raw 8-bit headers and for a part whose own charset fails."""
    found: list[str] = []
    for count, part in enumerate(message.walk()):
        if count > 20:
            break
        try:
            charset = part.get_content_charset()
        except Exception:
            continue
        if isinstance(charset, str) and charset not in ("us-ascii", "ascii", *found):
            found.append(charset)
    return tuple(found)


def raw_values(message: Message, name: str) -> list[str]:
    """Raw values of a header (8-bit bytes as surrogates; ``get_all`` would mangle them)."""
    return [str(value) for key, value in message.raw_items() if key.lower() == name]


def decode_headers(
    message: Message, charset: Fallback, unparsed: list[str] | None = None
) -> Headers:
    """Lower-cased name -> decoded values; a value that cannot be decoded is kept raw."""
    collected: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = str(name).strip().lower()
        if key:
            try:
                text = decode_header_value(str(value), fallback=charset)
            except Exception:  # kept raw, the mail goes on
                text = _SURROGATE.sub("\ufffd", str(value))
                _note(unparsed, key)
            collected.setdefault(key, []).append(text)
    return {key: tuple(values) for key, values in collected.items()}


def _note(unparsed: list[str] | None, header: str) -> None:
    if unparsed is not None and header not in unparsed:
        unparsed.append(header)


# -- addresses -----------------------------------------------------------------------------


def _clean_name(name: str, email_address: str | None) -> str:
    if "=?" in name or "\n" in name or "\r" in name or _SURROGATE.search(name):
        name = decode_header_value(name)
    name = name.strip().strip("\"'").strip()
    if email_address and name.strip("<>").lower() == email_address.lower():
        return ""
    return name


def _to_address(name: str, address: str) -> Address | None:
    normalized = normalize_email(address)
    if not normalized or "@" not in normalized:
        return None
    return Address(email=normalized, name=_clean_name(name, normalized))


def _stdlib_pairs(message: Message, header: str, charset: Fallback) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for raw in raw_values(message, header):
        data = raw.encode("utf-8", "surrogateescape").replace(b"\r", b"").replace(b"\n", b"")
        pairs.extend(getaddresses([decode_bytes(data, None, fallback=charset)]))
    return pairs


def _pairs(message: Message, parsed: Any, header: str, charset: Fallback) -> Iterable[Any]:
    if parsed is not None:
        try:
            value = getattr(parsed, header.replace("-", "_") + "_")
        except Exception:
            value = None
        # mail-parser escapes undecodable bytes in names as "\udcXX" text: decode ourselves.
        if isinstance(value, list) and value and not any("\\udc" in str(v) for v in value):
            return value
    return _stdlib_pairs(message, header, charset)


#: What an address looks like, for a header the address parser cannot read.
_BARE_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_MAX_BARE = 1000


def _bare_addresses(message: Message, header: str) -> tuple[Address, ...]:
    seen: dict[str, Address] = {}
    for raw in raw_values(message, header):
        for found in _BARE_ADDRESS.finditer(raw):
            address = _to_address("", found.group(0))
            if address is not None and address.email is not None:
                seen.setdefault(address.email.lower(), address)
            if len(seen) >= _MAX_BARE:
                return tuple(seen.values())
    return tuple(seen.values())


def addresses(
    message: Message,
    parsed: Any,
    header: str,
    charset: Fallback,
    unparsed: list[str] | None = None,
) -> tuple[Address, ...]:
    """The addresses of one header; if it cannot be parsed, the bare addresses in it (and the
    header's name noted in ``unparsed``)."""
    try:
        found = _parsed_addresses(message, parsed, header, charset)
    except Exception:  # RecursionError on absurd group syntax, and others
        _note(unparsed, header)
        found = _bare_addresses(message, header)
    if header in _ANSWERED:
        return _answerable(message, header, charset, found, unparsed)
    return found


#: The headers whose address is answered: read strictly too (see the module's docstring).
_ANSWERED = frozenset({"from", "sender", "reply-to"})
_REGISTRY = HeaderRegistry()
#: ``Name <a@b>``, ``"Name" <a@b>`` or ``a@b``: values the strict parser need not look at.
_PLAIN_MAILBOX = re.compile(
    r'^\s*(?:[^<>:;,"@()\\]*|"[^"\\]*")\s*<[^<>\s@]+@[^<>\s@]+>\s*$'
    r'|^\s*[^\s<>:;,"@()]+@[^\s<>:;,"@()]+\s*$'
)
_BRACKETED = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def _answerable(
    message: Message,
    header: str,
    charset: Fallback,
    found: tuple[Address, ...],
    unparsed: list[str] | None,
) -> tuple[Address, ...]:
    """``found`` (the lenient reading of ``header``), checked by the strict parser."""
    values = raw_values(message, header)
    if not values or not found:
        return found
    # Checked as written (encoded words are display text, never syntax): decoded only if needed.
    if _PLAIN_MAILBOX.match(values[0].replace("\r", "").replace("\n", "")):
        return found
    text = decode_header_value(values[0], fallback=charset)
    parsed = _REGISTRY("to", text)
    strict = cast(AddressHeader, parsed)
    if parsed.defects or any(group.display_name for group in strict.groups):
        _note(unparsed, header)
        bracketed = _BRACKETED.findall(text)
        if len(bracketed) != 1:
            return ()
        address = _to_address(text[: text.index("<")], bracketed[0])
        return (address,) if address is not None else ()
    allowed = {(normalize_email(a.addr_spec) or "").lower() for a in strict.addresses}
    return tuple(a for a in found if (a.email or "").lower() in allowed)


def _parsed_addresses(
    message: Message, parsed: Any, header: str, charset: Fallback
) -> tuple[Address, ...]:
    seen: dict[str, Address] = {}
    for pair in _pairs(message, parsed, header, charset):
        if not isinstance(pair, tuple) or len(pair) != 2:
            continue
        address = _to_address(str(pair[0]), str(pair[1]))
        if address is not None and address.email is not None:
            seen.setdefault(address.email.lower(), address)
    return tuple(seen.values())


def sender_address(
    message: Message, parsed: Any, charset: Fallback, unparsed: list[str] | None = None
) -> Address:
    """From, else Sender, else Return-Path; a name-only From (``MAILER-DAEMON <>``) is kept."""
    for header in ("from", "sender", "return-path"):
        found = addresses(message, parsed if header == "from" else None, header, charset, unparsed)
        if found:
            return found[0]
    try:
        for name, address in _stdlib_pairs(message, "from", charset):
            label = _clean_name(name, None) or address.strip()
            if label:
                return Address(email=None, name=label)
        raw_from = raw_values(message, "from")
        return Address(email=None, name=decode_header_value(raw_from[0]) if raw_from else "")
    except Exception:
        _note(unparsed, "from")
        return Address(email=None, name="")


# -- ids and dates -------------------------------------------------------------------------


def message_id(message: Message) -> str | None:
    for raw in raw_values(message, "message-id"):
        ids = id_list([raw])
        if ids:
            return ids[0]
        token = decode_header_value(raw).strip().strip("<>").split()
        if token:
            return f"<{token[0]}>"
    return None


def id_list(values: Iterable[object]) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for value in values:
        text = decode_header_value(str(value))
        for mid in _MSG_ID.findall(text) or _BARE_ID.findall(text):
            found.setdefault(f"<{mid}>", None)
    ids = tuple(found)
    if len(ids) > _MAX_REFERENCES:
        return (ids[0], *ids[-(_MAX_REFERENCES - 1) :])
    return ids


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _parse_date(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return aware(parsed) if isinstance(parsed, datetime) else None


def sent_at(message: Message, parsed: Any) -> datetime | None:
    """The Date header as an aware datetime in the sender's offset; None when unparseable.

    mail-parser's strict RFC 5322 reading decides the instant; the email package supplies the
    exact offset (mail-parser keeps it only as rounded hours) and parses what mail-parser
    refuses.
    """
    raw = raw_values(message, "date")
    lenient = _parse_date(decode_header_value(raw[0])) if raw else None
    value = getattr(parsed, "date", None) if parsed is not None else None
    if not isinstance(value, datetime):
        return lenient
    value = aware(value)
    if lenient is not None and lenient == value:
        return lenient
    try:
        hours = float(getattr(parsed, "timezone", 0) or 0)
        return value.astimezone(timezone(timedelta(hours=hours)))
    except (TypeError, ValueError, OverflowError):
        return value


def received_header_date(message: Message) -> datetime | None:
    for raw in raw_values(message, "received")[:1]:
        _, semicolon, date = decode_header_value(raw).rpartition(";")
        if semicolon:
            return _parse_date(date.strip())
    return None
