"""Raw RFC 822 bytes -> :class:`~inbox_daemon.messages.InboundMessage`.

This module owns :func:`parse_message`, the single entry point of the email channel's parser.
mail-parser (``mailparser``) parses the bytes once and supplies the MIME tree, the address
lists and the date; the standard ``email`` package fills the gaps (raw header access, charset
fallbacks, body and attachment extraction in :mod:`.mime`) and takes over completely when
mail-parser raises. Loop flags come from :mod:`.loops`, quote stripping from :mod:`.quotes`.

Two shortcuts keep the parse cheap without changing its result: mail-parser computes only the
header fields we read (:class:`_HeaderMailParser`, not its own body and attachment extraction),
and long runs of base64 lines are condensed into marker lines before parsing and put back into
the tree afterwards (:func:`_condense`, :func:`_restore`).

Only two outcomes exist: an :class:`InboundMessage`, or :class:`RejectedMessage` with a reason
(empty input, no headers, an Outlook ``.msg`` file, or bytes neither parser can read).
A large mail is parsed from a file by :func:`.spool.parse_file`, which hands this module a
skeleton of it (see ``content_hash`` and ``spooled``).
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import hashlib
import logging
import re
from collections.abc import Collection, Mapping
from datetime import datetime
from email.message import Message
from typing import Any

import mailparser

from inbox_daemon.channels.email.fields import (
    Headers,
    addresses,
    aware,
    decode_headers,
    fallback_charset,
    id_list,
    message_id,
    raw_values,
    received_header_date,
    sender_address,
    sent_at,
)
from inbox_daemon.channels.email.html_text import html_to_text
from inbox_daemon.channels.email.loops import (
    detect_flags,
    heuristic_failed_recipients,
    is_from_us,
    sender_is_ours,
)
from inbox_daemon.channels.email.mime import (
    SPOOL_HEADER,
    MimeContent,
    SpooledBody,
    extract_content,
)
from inbox_daemon.channels.email.quotes import strip_quoted_reply
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import ChannelKind, InboundMessage, MessageFlags

__all__ = [
    "SYNTHETIC_ID_DOMAIN",
    "is_from_us",
    "parse_message",
    "repair_header_block",
    "strip_quoted_reply",
]

log = logging.getLogger(__name__)
if logging.getLogger("mailparser").level == logging.NOTSET:
    # mail-parser logs a WARNING for every MIME part type it does not know; not our news.
    logging.getLogger("mailparser").setLevel(logging.ERROR)

#: Domain of the Message-IDs we make up for mail that has none.
SYNTHETIC_ID_DOMAIN = "inbox-daemon.invalid"

_MAX_MAILPARSER_HEADERS = 128 * 1024
_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_NEWLINES = re.compile(r"\r\n?")
#: The end of a header block: an empty line (the first match is the earliest of the three).
_BLANK_LINE = re.compile(rb"\n\r?\n|\r\r")

_MAIL_HEADERS = frozenset(
    {
        "from",
        "sender",
        "to",
        "cc",
        "bcc",
        "reply-to",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "return-path",
        "received",
        "delivered-to",
        "envelope-to",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "dkim-signature",
        "authentication-results",
        "received-spf",
        "auto-submitted",
        "precedence",
        "thread-topic",
        "thread-index",
        "importance",
        "user-agent",
    }
)
_MAIL_HEADER_PREFIXES = ("x-", "list-", "resent-", "arc-", "content-")


def _references(message: Message, content: MimeContent, flags: MessageFlags) -> tuple[str, ...]:
    """References; a bounce also answers the message it returns (most carry no In-Reply-To)."""
    refs = id_list(raw_values(message, "references"))
    if not flags.bounce:
        return refs
    returned = [mid for mid in id_list(content.returned_ids) if mid not in refs]
    return (*returned, *refs)


def parse_message(
    raw: bytes,
    *,
    channel_mailbox: str,
    external_id: str,
    our_addresses: Collection[str] = (),
    received_at: datetime | None = None,
    content_hash: str | None = None,
    spooled: Mapping[str, SpooledBody] | None = None,
) -> InboundMessage:
    """Parse one raw mail into an :class:`InboundMessage`.

    ``our_addresses`` are the daemon's own mailbox addresses (``@domain`` entries match a whole
    domain): mail sent from one of them is flagged ``auto_reply`` so it is never answered (a
    loop guard); :func:`is_from_us` tells the reason apart. ``received_at`` defaults to the date
    of the newest ``Received`` header. Raises :class:`RejectedMessage` and nothing else.

    For :func:`.spool.parse_file`: ``raw`` is then a skeleton of the real mail,
    ``content_hash`` the SHA-256 of the real bytes (by default that of ``raw``) and ``spooled``
    maps the :data:`.mime.SPOOL_HEADER` values of parts cut out of it to their decoded files.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise RejectedMessage(f"raw message must be bytes, not {type(raw).__name__}")
    raw = bytes(raw)
    if not raw.strip():
        raise RejectedMessage("empty message")
    if raw.startswith(_OLE2_MAGIC):
        raise RejectedMessage("Outlook .msg file (OLE2 compound document), not an RFC 822 message")
    spool = _Spool(content_hash or hashlib.sha256(raw).hexdigest(), spooled or {})
    raw = repair_header_block(raw.removeprefix(_UTF8_BOM))
    parsed, message = _parse_tree(raw)
    if not _has_mail_headers(message):
        raise RejectedMessage("no mail headers found: not an RFC 822 message")
    args = (raw, channel_mailbox, external_id, our_addresses, received_at, spool)
    try:
        return _build(message, parsed, *args)
    except RejectedMessage:
        raise
    except Exception as exc:  # retry without mail-parser, then reject
        if parsed is None:
            raise RejectedMessage(f"cannot parse message: {type(exc).__name__}: {exc}") from exc
        log.warning("building from mail-parser output failed, using the email package: %r", exc)
    try:
        # mail-parser's tree is the email package's own (compat32): reuse it, without parsed.
        return _build(message, None, *args)
    except RejectedMessage:
        raise
    except Exception as exc:
        raise RejectedMessage(f"cannot parse message: {type(exc).__name__}: {exc}") from exc


@dataclasses.dataclass(frozen=True, slots=True)
class _Spool:
    """What :func:`parse_message` knows beyond ``raw``: the real hash and any spooled parts."""

    content_hash: str
    spooled: Mapping[str, SpooledBody]


_UTF8_BOM = b"\xef\xbb\xbf"
#: A header block is looked at for repair up to this size (the rest is left as it is).
_REPAIR_LIMIT = 256 * 1024
#: A line of a header block that is neither a header field, a continuation nor an mbox
#: ``From `` line (and is not empty).
_ODD_HEADER_LINE = re.compile(rb"^(?![ \t]|From |[!-9;-~]+[ \t]*:)(?=[^\r\n])", re.MULTILINE)
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
#: At most this many stray lines before the first header are dropped.
_MAX_STRAY = 5
#: Headers a mail's own block has and a quoted "From: … Sent: … To:" block in a body has not.
_TRANSPORT_HEADERS = frozenset(
    {"date", "message-id", "received", "return-path", "mime-version", "delivered-to"}
)


def _header_name(line: bytes) -> str | None:
    found = _FIELD_NAME.match(line)
    return found.group(1).decode("ascii").lower() if found is not None else None


def _known_header(line: bytes) -> bool:
    name = _header_name(line)
    return name is not None and (name in _MAIL_HEADERS or name.startswith(_MAIL_HEADER_PREFIXES))


def repair_header_block(raw: bytes) -> bytes:
    """The header block put right as mail clients read it; ``raw`` itself when it is fine.

    Two damages are mended, both only where known mail headers follow: stray lines before the
    first header (``---- Original message ----`` pasted above the headers) are dropped, and a
    line inside the block that is no header (a continuation whose indent was lost) joins the
    header above it. Without this the email package ends the headers at the first such line
    and the subject, the sender and the rest land in the body. A block that ends in lines that
    are no headers keeps them: that is a body without the blank line before it.
    """
    blank = _BLANK_LINE.search(raw, 0, _REPAIR_LIMIT)
    end = blank.start() + 1 if blank is not None else min(len(raw), _REPAIR_LIMIT)
    if _ODD_HEADER_LINE.search(raw, 0, end) is None:
        return raw
    lines = raw[:end].splitlines(keepends=True)
    known = [i for i, line in enumerate(lines) if _known_header(line)]
    if not known:
        return raw
    first, last = known[0], known[-1]
    transport = any(_header_name(lines[i]) in _TRANSPORT_HEADERS for i in known)
    if first > _MAX_STRAY or not transport or any(_FIELD_NAME.match(ln) for ln in lines[:first]):
        first = 0  # not a few stray lines above a mail's headers: leave the start alone
    mended = [
        b" " + line if _ODD_HEADER_LINE.match(line) and first < i < last else line
        for i, line in enumerate(lines[first:], start=first)
    ]
    return b"".join(mended) + raw[end:]


def _has_mail_headers(message: Message) -> bool:
    """At least one header that mail carries (a text whose first line has a colon is not mail)."""
    for key, _ in message.raw_items():
        name = str(key).strip().lower()
        if name in _MAIL_HEADERS or name.startswith(_MAIL_HEADER_PREFIXES):
            return True
    return False


def _headers_too_large(raw: bytes) -> bool:
    """Whether the header block (up to the first blank line) exceeds what mail-parser may take.

    The search stops at the first blank line, or after the limit: scanning a 1 MB attachment for
    a line ending that the headers ended long before cost more than the rest of our work.
    """
    if len(raw) <= _MAX_MAILPARSER_HEADERS:
        return False
    blank = _BLANK_LINE.search(raw, 0, _MAX_MAILPARSER_HEADERS + 3)
    return blank is None or blank.start() > _MAX_MAILPARSER_HEADERS


class _HeaderMailParser(mailparser.MailParser):  # type: ignore[misc]
    """mail-parser without the body and attachment extraction that :func:`_build` never reads.

    ``MailParser.parse`` first resets its state (``_reset``: the header index, the address
    headers, the Date and the Received chain), then walks every MIME part to extract the bodies
    and the attachments (base64-encoding each one again) and decodes every header into two
    dicts. We read only what ``_reset`` computes (the address lists, ``date`` and ``timezone``);
    the rest took a third of mail-parser's time.
    """

    def parse(self) -> _HeaderMailParser:
        self._reset()
        return self


#: Runs of base64 lines shorter than this are left to the parser (they cost it little).
_CONDENSE_MIN = 2048
#: The marker line that stands for a condensed run: base64 characters, like the run itself.
_CONDENSED = "InboxDaemonCondensedRun"
_CONDENSED_MARKER = re.compile(_CONDENSED + r"(\d+)Z")
#: A blank line followed by a base64 character: where a base64 body usually starts.
#: (The atomic group keeps a single CRLF from passing for two line endings.)
_BODY_START = re.compile(rb"(?>\r\n|\r|\n)(?:\r\n|\r|\n)(?=[A-Za-z0-9+/=])")
#: Non-empty lines of base64 characters only, each with its line ending.
_BASE64_LINES = re.compile(rb"(?:[A-Za-z0-9+/=]++(?:\r\n|\r|\n))+")


def _condense(raw: bytes) -> tuple[bytes, list[str]]:
    """``raw`` with each long run of base64 lines after a blank line replaced by a marker line.

    The email package parses a body line by line (a readline and a boundary match in Python
    for each), so the base64 lines of attachments took most of the parse. Such a run is opaque
    to the parser: a non-empty line of base64 characters is never a header, a boundary or a
    blank line, so the run lands verbatim in one payload, preamble or epilogue, of which the
    parser may only cut the final line ending (the one before a boundary). A run starts after
    a line ending and ends with one, so its lines are the parser's lines too (the parser also
    splits at VT, FF and FS-RS, which base64 lacks). A single marker line of base64
    characters, ending like the run, is parsed into the same tree, in which :func:`_restore`
    then puts the run back.

    Returns the bytes to parse and the runs without their final line endings (marker ``n`` is
    ``runs[n]``); ``(raw, [])`` when there is no run to condense or the mail contains the
    marker text itself.
    """
    pieces: list[bytes] = []
    runs: list[str] = []
    kept = 0  # raw[:kept] is in pieces
    search = 0
    while (blank := _BODY_START.search(raw, search)) is not None:
        start = search = blank.end()
        lines = _BASE64_LINES.match(raw, start)
        if lines is None or lines.end() - start < _CONDENSE_MIN:
            continue
        end = lines.end()
        eol = 2 if raw.endswith(b"\r\n", start, end) else 1
        search = end - eol  # a blank line may follow the run
        pieces.append(raw[kept:start])
        pieces.append(f"{_CONDENSED}{len(runs)}Z".encode("ascii") + raw[end - eol : end])
        runs.append(raw[start : end - eol].decode("ascii"))
        kept = end
    if not runs:
        return raw, []
    pieces.append(raw[kept:])
    marker = _CONDENSED.encode("ascii")
    if any(marker in piece for piece in pieces[::2]):  # the mail's own text, not our markers
        return raw, []
    return b"".join(pieces), runs


def _restore(message: Message, runs: list[str]) -> None:
    """Put the runs that :func:`_condense` took out back in place of their marker lines."""
    if not runs:
        return

    def run(marker: re.Match[str]) -> str:
        return runs[int(marker.group(1))]

    for part in message.walk():
        # The stored payload: get_payload() would decode one with 8-bit bytes in it.
        payload = getattr(part, "_payload", None)
        if isinstance(payload, str) and _CONDENSED in payload:
            part.set_payload(_CONDENSED_MARKER.sub(run, payload))
        if part.preamble is not None and _CONDENSED in part.preamble:
            part.preamble = _CONDENSED_MARKER.sub(run, part.preamble)
        if part.epilogue is not None and _CONDENSED in part.epilogue:
            part.epilogue = _CONDENSED_MARKER.sub(run, part.epilogue)


def _stdlib_parse(raw: bytes) -> Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def _parse_tree(raw: bytes) -> tuple[Any, Message]:
    """mail-parser's result and its MIME tree; the email package alone if mail-parser fails.

    Huge header blocks skip mail-parser: its header decoding (``email.header.decode_header``,
    run twice per header) is quadratic in the number of encoded words.
    """
    try:
        if _headers_too_large(raw):
            raise ValueError("header block too large for mail-parser")
        condensed, runs = _condense(raw)
        parsed = _HeaderMailParser.from_bytes(condensed)
        message = parsed.message
        if isinstance(message, Message):
            _restore(message, runs)
            return parsed, message
    except Exception as exc:  # mail-parser raises many kinds on bad input
        log.debug("mail-parser failed (%r), falling back to the email package", exc)
    try:
        return None, _stdlib_parse(raw)
    except Exception as exc:  # RecursionError on absurd nesting, and others
        raise RejectedMessage(f"cannot parse message: {type(exc).__name__}: {exc}") from exc


def _build(
    message: Message,
    parsed: Any,
    raw: bytes,
    mailbox: str,
    external_id: str,
    our_addresses: Collection[str],
    received_at: datetime | None,
    spool: _Spool,
) -> InboundMessage:
    charset = fallback_charset(message)
    unparsed: list[str] = []  # headers that could not be parsed, kept raw
    headers = decode_headers(message, charset, unparsed)
    if spool.spooled:
        headers.pop(SPOOL_HEADER, None)  # ours, when the whole body was spooled
    subject = _first(headers, "subject")
    content = extract_content(message, fallback_charset=charset, spooled=spool.spooled)
    text = "\n".join(part for part in content.text_parts if part.strip())
    html = "\n".join(part for part in content.html_parts if part.strip()) or None
    if not text.strip() and html is not None:
        text = html_to_text(html)
    text = _NEWLINES.sub("\n", text)
    sender = sender_address(message, parsed, charset, unparsed)
    content_hash = spool.content_hash
    content_type = message.get_content_type()
    report_type = _param(message, "report-type") if content_type == "multipart/report" else ""
    flags = detect_flags(
        headers,
        subject=subject,
        sender=sender,
        content_type=content_type,
        report_type=report_type,
        delivery_status=content.delivery_status,
        from_us=sender_is_ours(sender, our_addresses),
    )
    to = addresses(message, parsed, "to", charset, unparsed)
    cc = addresses(message, parsed, "cc", charset, unparsed)
    if flags.bounce and not flags.failed_recipients:
        ours = [a.email for a in (*to, *cc) if a.email]
        ours.extend(headers.get("delivered-to", ()))
        found = heuristic_failed_recipients(message, raw, exclude=ours)
        if found:
            flags = dataclasses.replace(flags, failed_recipients=found)
    return InboundMessage(
        channel=ChannelKind.EMAIL,
        mailbox=mailbox,
        external_id=external_id,
        sender=sender,
        subject=subject,
        text=text,
        new_text=strip_quoted_reply(text),
        html=_NEWLINES.sub("\n", html) if html is not None else None,
        message_id=message_id(message) or f"<{content_hash[:32]}@{SYNTHETIC_ID_DOMAIN}>",
        in_reply_to=id_list(raw_values(message, "in-reply-to")),
        references=_references(message, content, flags),
        to=to,
        cc=cc,
        reply_to=addresses(message, parsed, "reply-to", charset, unparsed),
        attachments=tuple(content.attachments),
        flags=flags,
        headers=headers,
        sent_at=sent_at(message, parsed),
        received_at=aware(received_at) if received_at else received_header_date(message),
        content_hash=content_hash,
        unparsed_headers=tuple(unparsed),
    )


def _first(headers: Headers, name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


def _param(message: Message, name: str) -> str:
    try:
        value = message.get_param(name)
    except Exception:
        return ""
    return value.strip().lower() if isinstance(value, str) else ""
