"""The MIME tree of one parsed mail: which parts are the body, which are attachments.

Owns :func:`extract_content`, which walks an ``email.message.Message`` (compat32, as the email
package and mail-parser build it) and returns the text and HTML bodies, the attachments with
their decoded bytes and sanitised filenames, and the per-recipient blocks of any
``message/delivery-status`` part (for bounce handling). Embedded ``message/rfc822`` mails are
attachments named ``*.eml`` and are not searched for body text. A multipart whose declared
boundary never appears is re-split on the boundary that the body really uses.

It also owns the rule of which parts may be spooled (:func:`may_spool`: decoded to a file by
:mod:`.spool` instead of being held in memory) and how a spooled part, whose body was cut out
and replaced by a :data:`SPOOL_HEADER` naming a :class:`SpooledBody`, becomes an attachment
with a ``path``.
"""

from __future__ import annotations

import binascii
import email.parser
import email.policy
import io
import mimetypes
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.generator import BytesGenerator
from email.message import Message
from email.utils import quote
from pathlib import Path

from inbox_daemon.channels.email.decode import Fallback, decode_bytes, decode_header_value
from inbox_daemon.messages import Attachment

__all__ = [
    "SPOOL_HEADER",
    "MimeContent",
    "SpooledBody",
    "extract_content",
    "header_str",
    "may_spool",
    "may_spool_message",
    "sanitize_filename",
    "transfer_encoding",
]

#: The header :mod:`.spool` adds to a part whose body it cut out (lower case, as looked up).
SPOOL_HEADER = "x-inbox-daemon-spooled"

_MAX_DEPTH = 40
_MAX_FILENAME = 200
_EXTENSIONS = {
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "message/global-delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "message/feedback-report": ".txt",
    "text/rfc822-headers": ".txt",
    "application/ms-tnef": ".dat",
    "application/octet-stream": ".bin",
    "text/plain": ".txt",
    "image/jpeg": ".jpg",
}
_REPORT_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_BOUNDARY_LINE = re.compile(r"^--([^\s]{1,200}?)[ \t]*\r?\n[A-Za-z-]{1,60}:", re.M)
_SURROGATE = re.compile("[\udc80-\udcff]")
_DSN_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]{0,60})[ \t]*:[ \t]*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class SpooledBody:
    """The decoded body of a spooled part: a file and its size in bytes."""

    path: Path
    size: int


@dataclass(slots=True)
class MimeContent:
    """What :func:`extract_content` found in a message."""

    text_parts: list[str] = field(default_factory=list)
    html_parts: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    #: One dict per recipient block of each message/delivery-status part (lower-cased keys).
    delivery_status: list[dict[str, str]] = field(default_factory=list)
    #: Named text parts without a Content-Disposition: the body when nothing else is.
    named_text: list[str] = field(default_factory=list)
    #: Message-IDs of the messages a report returns (``message/rfc822`` or
    #: ``text/rfc822-headers`` parts): what a bounce is about.
    returned_ids: list[str] = field(default_factory=list)


def header_str(part: Message, name: str) -> str:
    """The raw value of the first ``name`` header of a part ("" when absent).

    Raw means as stored by the parser: 8-bit bytes are kept as surrogates, where
    ``Message.get`` would turn them into replacement characters.
    """
    for key, value in part.raw_items():
        if key.lower() == name:
            return value if isinstance(value, str) else str(value)
    return ""


def _ext_for(content_type: str) -> str:
    ext = _EXTENSIONS.get(content_type)
    if ext is None:
        ext = mimetypes.guess_extension(content_type, strict=False) or ".bin"
    return ext


def sanitize_filename(name: str | None, content_type: str, index: int) -> str:
    """A safe base name: no directories, no control or bidi characters, never empty.

    Falls back to ``attachment-<index><ext>`` with an extension derived from the content type.
    """
    if name:
        name = unicodedata.normalize("NFC", name)
        name = re.split(r"[/\\]", name)[-1]
        name = "".join(" " if unicodedata.category(ch) in _UNSAFE_CATEGORIES else ch for ch in name)
        name = re.sub(r"\s+", " ", name).strip(" .")
        if len(name) > _MAX_FILENAME:
            stem, dot, ext = name.rpartition(".")
            if dot and 0 < len(ext) <= 16:
                name = stem[: _MAX_FILENAME - len(ext) - 1].rstrip(" .") + "." + ext
            else:
                name = name[:_MAX_FILENAME].rstrip(" .")
    if not name:
        name = f"attachment-{index}{_ext_for(content_type)}"
    return name


def _raw_filename(part: Message) -> str | None:
    source = part
    raw_values = [header_str(part, "content-disposition"), header_str(part, "content-type")]
    if any(_SURROGATE.search(value) for value in raw_values):
        # 8-bit parameter values: decode the bytes first so get_filename sees real text.
        source = Message()
        for key, value in zip(("Content-Disposition", "Content-Type"), raw_values, strict=True):
            if value:
                source[key] = decode_bytes(value.encode("utf-8", "surrogateescape"))
    try:
        name = source.get_filename()
    except Exception:  # malformed parameters must not stop the parse
        return None
    if not name:
        return None
    if isinstance(name, tuple):  # pragma: no cover - get_filename collapses RFC 2231 values
        name = str(name[2])
    return decode_header_value(name) or None


#: A Content-Description longer than this is a sentence, not a name.
_MAX_DESCRIPTION_NAME = 80


def _described(part: Message, ctype: str) -> str | None:
    """A name for a nameless part from its Content-Description ("Delivery report" →
    ``Delivery report.txt``), with the extension of its type unless it has one."""
    description = decode_header_value(header_str(part, "content-description"))
    if not description or len(description) > _MAX_DESCRIPTION_NAME:
        return None
    stem, dot, ext = description.rpartition(".")
    if dot and stem and 0 < len(ext) <= 5 and ext.isalnum():
        return description
    return description + _ext_for(ctype)


def _disposition(part: Message) -> str | None:
    value = header_str(part, "content-disposition")
    if not value:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def _content_id(part: Message) -> str | None:
    value = decode_header_value(header_str(part, "content-id")).strip("<> \t")
    return value or None


def _clean_base64(part: Message) -> bytes | None:
    """The decoded body of a well-formed base64 part; None to let the email package decode it.

    ``get_payload(decode=True)`` splits a base64 body into lines and joins them again before
    it decodes strictly, which for attachments cost as much as the decoding. For ASCII whole
    quanta, deleting the line breaks and decoding strictly is the same computation (bytes
    ``splitlines`` splits only at CR and LF). Any other body (8-bit bytes, stray characters,
    missing padding) takes the email package's lenient path and its defect reports.
    """
    # The payload as stored (get_payload() would decode 8-bit bytes with the part's charset).
    payload = getattr(part, "_payload", None)
    if not isinstance(payload, str) or not payload.isascii():
        return None
    try:
        if str(part.get("content-transfer-encoding", "")).lower() != "base64":  # as get_payload
            return None
    except Exception:
        return None
    data = payload.encode("ascii").translate(None, b"\r\n")
    if len(data) % 4:
        return None
    try:
        return binascii.a2b_base64(data, strict_mode=True)
    except binascii.Error:
        return None


def _payload_bytes(part: Message) -> bytes:
    clean = _clean_base64(part)
    if clean is not None:
        return clean
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _message_bytes(msg: Message) -> bytes:
    buffer = io.BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, maxheaderlen=0).flatten(msg)
        return buffer.getvalue()
    except Exception:
        try:
            return msg.as_string().encode("utf-8", "surrogateescape")
        except Exception:
            return b""


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except Exception:
        return None
    return charset if isinstance(charset, str) else None


def _recover_multipart(part: Message, body: str) -> Message | None:
    """Re-split ``body`` (a multipart body whose declared boundary is missing, or an epilogue
    holding more parts) on the boundary it really uses; None when it has none."""
    match = _BOUNDARY_LINE.search(body)
    if match is None:
        return None
    boundary = match.group(1)
    parser = email.parser.Parser(policy=email.policy.compat32)
    head = f'Content-Type: {part.get_content_type()}; boundary="{quote(boundary)}"\n\n'
    recovered = parser.parsestr(head + body)
    payload = recovered.get_payload()
    if not isinstance(payload, list) or not payload:
        return None
    return recovered


def _is_body(ctype: str, disposition: str | None, filename: str | None) -> bool:
    """A text/plain or text/html part that is body text, not an attachment."""
    is_body_type = ctype in ("text/plain", "text/html")
    return (
        is_body_type and disposition != "attachment" and (not filename or disposition == "inline")
    )


def may_spool(part: Message) -> bool:
    """Whether a part's body may be decoded to a file instead of memory.

    Only a leaf in base64, quoted-printable or an identity encoding (7bit, 8bit, binary)
    that :func:`extract_content` turns into nothing but an attachment: not a multipart or
    ``message/*`` part, not body text, not a text/plain part without a disposition (the body
    when nothing else is) and not ``text/rfc822-headers`` (read for the Message-ID a bounce
    returns).
    """
    ctype = part.get_content_type()
    if part.get_content_maintype() in ("multipart", "message"):
        return False
    if transfer_encoding(part) not in ("base64", "quoted-printable", *IDENTITY_ENCODINGS):
        return False
    disposition = _disposition(part)
    if ctype == "text/rfc822-headers" or (ctype == "text/plain" and disposition is None):
        return False
    return not _is_body(ctype, disposition, _raw_filename(part))


def may_spool_message(part: Message) -> bool:
    """Whether an attached mail (``message/rfc822``, ``message/global``) may be kept in a file
    instead of memory: only in an identity transfer encoding (its bytes are the mail's), never
    the machine-readable part of a report."""
    return part.get_content_type() in _ATTACHED_MAIL and transfer_encoding(part) in (
        IDENTITY_ENCODINGS
    )


#: Transfer encodings that leave the bytes as they are ("": none given, 7bit by default).
IDENTITY_ENCODINGS = ("", "7bit", "8bit", "binary")


def transfer_encoding(part: Message) -> str:
    """A part's Content-Transfer-Encoding, lower case, "" when it has none."""
    return str(part.get("content-transfer-encoding", "")).strip().lower()


_ATTACHED_MAIL = frozenset({"message/rfc822", "message/global"})


def extract_content(
    message: Message,
    *,
    fallback_charset: Fallback = None,
    spooled: Mapping[str, SpooledBody] | None = None,
) -> MimeContent:
    """Walk ``message`` and sort its parts into body text, HTML and attachments.

    ``spooled`` maps :data:`SPOOL_HEADER` values to the files holding those parts' bodies.
    """
    content = MimeContent()
    _walk(message, content, 0, fallback_charset, recovered=False, spooled=spooled or {})
    if not content.text_parts and not content.html_parts and content.named_text:
        content.text_parts.append(content.named_text[0])
    return content


def _walk(
    part: Message,
    out: MimeContent,
    depth: int,
    fallback: Fallback,
    *,
    recovered: bool,
    spooled: Mapping[str, SpooledBody],
) -> None:
    if depth > _MAX_DEPTH:
        return
    ctype = part.get_content_type()
    maintype = part.get_content_maintype()
    payload = part.get_payload()
    if maintype == "message" and isinstance(payload, list):
        spool = spooled.get(header_str(part, SPOOL_HEADER).strip()) if spooled else None
        _add_message_attachment(part, ctype, payload, out, spool)
        return
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                _walk(sub, out, depth + 1, fallback, recovered=recovered, spooled=spooled)
        epilogue = part.epilogue
        if not recovered and isinstance(epilogue, str) and "--" in epilogue:
            # Parts after the closing boundary (a nested multipart reused the outer boundary).
            fixed = _recover_multipart(part, epilogue)
            if fixed is not None:
                _walk(fixed, out, depth + 1, fallback, recovered=True, spooled=spooled)
        return
    if maintype == "multipart":
        body = payload if isinstance(payload, str) else ""
        fixed = None if recovered else _recover_multipart(part, body)
        if fixed is not None:
            _walk(fixed, out, depth + 1, fallback, recovered=True, spooled=spooled)
        elif body.strip():
            text = decode_bytes(_payload_bytes(part), _charset(part), fallback=fallback)
            out.text_parts.append(text)
        return
    disposition = _disposition(part)
    filename = _raw_filename(part)
    if _is_body(ctype, disposition, filename):
        text = decode_bytes(_payload_bytes(part), _charset(part), fallback=fallback)
        (out.html_parts if ctype == "text/html" else out.text_parts).append(text)
        return
    spool = spooled.get(header_str(part, SPOOL_HEADER).strip()) if spooled else None
    data = b"" if spool is not None else _payload_bytes(part)
    if ctype == "text/rfc822-headers":
        returned = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(data)
        out.returned_ids.append(header_str(returned, "message-id"))
    if ctype == "text/plain" and disposition is None and not out.named_text:
        out.named_text.append(decode_bytes(data, _charset(part), fallback=fallback))
    content_id = _content_id(part)
    index = len(out.attachments) + 1
    out.attachments.append(
        Attachment(
            filename=sanitize_filename(filename or _described(part, ctype), ctype, index),
            content_type=ctype,
            size=len(data) if spool is None else spool.size,
            content=data if spool is None else None,
            path=None if spool is None else spool.path,
            content_id=content_id,
            inline=disposition == "inline" or (content_id is not None and disposition is None),
        )
    )


def _add_message_attachment(
    part: Message,
    ctype: str,
    payload: list[Message | str],
    out: MimeContent,
    spool: SpooledBody | None = None,
) -> None:
    """An attached mail or report part as an attachment; ``spool``: the mail's bytes are in a
    file (:func:`may_spool_message`), the part here holds only its header block."""
    messages = [sub for sub in payload if isinstance(sub, Message)]
    if ctype in _REPORT_TYPES:
        data = b"\n".join(_message_bytes(block) for block in messages)
        out.delivery_status.extend(_dsn_blocks(decode_bytes(data)))
    else:
        data = b"" if spool is not None else b"".join(_message_bytes(sub) for sub in messages)
        out.returned_ids.extend(header_str(sub, "message-id") for sub in messages[:1])
    if spool is None and not data.strip():
        return
    filename = _raw_filename(part)
    index = len(out.attachments) + 1
    ext = _ext_for(ctype)
    if not filename and ext == ".eml" and messages:
        filename = decode_header_value(header_str(messages[0], "subject"))
    filename = filename or _described(part, ctype)
    if filename and ext == ".eml" and not filename.lower().endswith(".eml"):
        filename = f"{filename}.eml"
    disposition = _disposition(part)
    out.attachments.append(
        Attachment(
            filename=sanitize_filename(filename, ctype, index),
            content_type=ctype,
            size=len(data) if spool is None else spool.size,
            content=data if spool is None else None,
            path=None if spool is None else spool.path,
            content_id=_content_id(part),
            inline=disposition == "inline",
        )
    )


def _dsn_blocks(text: str) -> list[dict[str, str]]:
    """RFC 3464 fields, one dict per blank-line separated block; tolerant of broken folding."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            last = None
            continue
        if line[0] in " \t" and last is not None:
            current[last] = f"{current[last]} {line.strip()}".strip()
            continue
        match = _DSN_FIELD.match(line)
        last = None
        if match is not None and match.group(1).lower() not in current:
            last = match.group(1).lower()
            current[last] = match.group(2)
    if current:
        blocks.append(current)
    return blocks
