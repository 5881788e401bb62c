"""Composing outgoing mail: an :class:`OutboundMessage` turned into an RFC 5322 message.

Owns the headers of the mail we send (From, To, Cc, Reply-To, the ``Re: … [CAS-000123]``
subject, our fixed Message-ID, In-Reply-To and trimmed References, Date, the loop-safety headers
``Auto-Submitted``, ``X-Auto-Response-Suppress``, ``X-Loop`` and ``X-Inbox-Daemon-Case``), the
text/HTML bodies and the attachments. Pure apart from reading attachment files.

Header injection is impossible by construction: control characters and line breaks in subjects,
display names and file names are replaced by spaces; an address or our Message-ID that is not a
plain single token makes the message refused with :class:`PermanentDeliveryError`; a customer's
malformed In-Reply-To or References id is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email import headerregistry, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import Policy
from email.utils import format_datetime

from inbox_daemon.errors import PermanentDeliveryError
from inbox_daemon.messages import (
    REPLY_PREFIXES,
    Address,
    Attachment,
    OutboundMessage,
    clean_text,
)

__all__ = [
    "MAIL_POLICY",
    "clean_text",
    "compose",
    "reply_subject",
    "to_bytes",
    "trim_references",
]

CHANNEL = "email"
#: References kept: the first id (the thread's root) and the last ones.
KEEP_LAST_REFERENCES = 10
#: A msg-id longer than this cannot be folded under the 998-octet line limit: dropped.
MAX_ID_LENGTH = 900

# Reply and forward prefixes in the languages our customers write in most, each optionally
# numbered ("Re[2]:", "AW(3):"), with an ASCII or a full-width colon.
_PREFIX = REPLY_PREFIXES
_SPACES = re.compile(r"\s+")
# One msg-id: printable ASCII without spaces or angle brackets, between angle brackets.
_MSG_ID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]+>$")
# A bare addr-spec: no whitespace, controls, quotes, brackets or separators; one "@".
_ADDR_SPEC = re.compile(r'^[^\s<>()\[\],;:"\\@\x00-\x1f\x7f]+@[^\s<>()\[\],;:"\\@\x00-\x1f\x7f]+$')


class _IdListHeader(headerregistry.UnstructuredHeader, headerregistry.BaseHeader):
    """In-Reply-To and References: folded between ids, never turned into encoded words.

    The standard unstructured header would RFC 2047-encode an id longer than a line, which
    breaks threading in every mail client.
    """

    def fold(self, *, policy: Policy) -> str:
        limit = policy.max_line_length or 998
        lines: list[str] = []
        line = f"{self.name}:"
        for mid in str(self).split():
            if len(line) + 1 + len(mid) > limit and " " in line:
                lines.append(line)
                line = ""
            line += " " + mid
        lines.append(line)
        return policy.linesep.join(lines) + policy.linesep


_REGISTRY = headerregistry.HeaderRegistry()
_REGISTRY.map_to_type("in-reply-to", _IdListHeader)
_REGISTRY.map_to_type("references", _IdListHeader)

#: The policy of the messages we make: SMTP line endings, 7-bit bodies (quoted-printable or
#: base64 when needed, so no server needs 8BITMIME) and the id-list headers above.
MAIL_POLICY = policy.SMTP.clone(cte_type="7bit", header_factory=_REGISTRY)


def _refuse(what: str) -> PermanentDeliveryError:
    return PermanentDeliveryError(CHANNEL, what)


def _addr_spec(value: str | None, what: str) -> str:
    """A bare ASCII ``local@domain`` (an internationalised domain is IDNA-encoded)."""
    if not value or not _ADDR_SPEC.match(value):
        raise _refuse(f"{what} is not a plain email address: {value!r}")
    local, _, domain = value.rpartition("@")
    if not local.isascii():
        raise _refuse(f"{what} {value!r} has a non-ASCII local part (SMTPUTF8 is not supported)")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            raise _refuse(f"{what} {value!r} has an invalid domain") from None
    return f"{local}@{domain}"


def _mailbox(address: Address, what: str) -> headerregistry.Address:
    # A header object, not a formatted string: the stdlib re-parses a string and then folds a
    # non-ASCII display name holding ":" or "<…>" unquoted, which would add recipients.
    return headerregistry.Address(
        display_name=clean_text(address.name), addr_spec=_addr_spec(address.email, what)
    )


def _check_headers(message: EmailMessage, expected: dict[str, list[str]]) -> None:
    """Fold the headers as they will be sent, parse them back, and compare the addresses."""
    raw = b"".join(MAIL_POLICY.fold_binary(name, value) for name, value in message.items())
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(raw + b"\r\n")
    names = [name.lower() for name in parsed]
    if len(names) != len(set(names)) or names != [name.lower() for name in message]:
        raise _refuse(f"refusing {message['Message-ID']}: its headers do not survive folding")
    for name, addresses in expected.items():
        header = parsed[name]
        got = [a.addr_spec for a in header.addresses] if header is not None else []
        if got != addresses:
            raise _refuse(f"refusing {message['Message-ID']}: {name} does not survive folding")


def _valid_id(mid: str | None) -> bool:
    return bool(mid) and len(mid or "") <= MAX_ID_LENGTH and bool(_MSG_ID.match(mid or ""))


def trim_references(ids: Iterable[str], keep_last: int = KEEP_LAST_REFERENCES) -> list[str]:
    """Valid, distinct ids; when there are many, the first (the root) and the last ``keep_last``.

    Malformed ids (spaces, line breaks, no angle brackets, over :data:`MAX_ID_LENGTH`) are
    dropped, so every folded line stays under 998 octets.
    """
    seen: dict[str, None] = {}
    for mid in ids:
        if _valid_id(mid):
            seen.setdefault(mid, None)
    unique = list(seen)
    if len(unique) <= keep_last + 1:
        return unique
    return [unique[0], *unique[-keep_last:]]


def reply_subject(original: str, case_number: str) -> str:
    """``Re: <subject> [CAS-000123]``: one ``Re:``, the case token once.

    Reply and forward prefixes (``Re:``, ``RE:``, ``AW:``, ``Fwd:``, ``SV:``, ``Re[2]:`` …) are
    removed before our ``Re:`` is put in front; a subject already carrying the token keeps it
    where it is, except a leading token, which moves to the end.
    """
    number = case_number.strip().upper()
    token = re.compile(rf"\[?(?<![\w-]){re.escape(number)}(?![\w-])\]?", re.IGNORECASE)
    subject = _PREFIX.sub("", clean_text(original))
    leading = token.match(subject)
    if leading:
        subject = _PREFIX.sub("", subject[leading.end() :].strip())
    if not leading and token.search(subject):
        return f"Re: {subject}"
    return f"Re: {subject} [{number}]" if subject else f"Re: [{number}]"


def _attach(message: EmailMessage, attachment: Attachment, html: EmailMessage | None) -> None:
    if attachment.content is not None:
        data = attachment.content
    elif attachment.path is not None:
        try:
            data = attachment.path.read_bytes()
        except OSError as exc:
            raise _refuse(
                f"attachment {attachment.filename!r} unreadable: {exc.strerror}"
            ) from None
    else:
        raise _refuse(f"attachment {attachment.filename!r} has no content")
    maintype, _, subtype = attachment.content_type.strip().lower().partition("/")
    if not re.fullmatch(r"[a-z0-9!#$&^_.+-]+", maintype) or not re.fullmatch(
        r"[a-z0-9!#$&^_.+-]+", subtype
    ):
        maintype, subtype = "application", "octet-stream"
    if maintype == "multipart":
        maintype, subtype = "application", "octet-stream"
    filename = clean_text(attachment.filename) or "attachment"
    cid = attachment.content_id
    cid = f"<{cid.strip('<>')}>" if cid and _valid_id(f"<{cid.strip('<>')}>") else None
    if attachment.inline and cid and html is not None:
        html.add_related(data, maintype, subtype, cid=cid, filename=filename, disposition="inline")
        return
    message.add_attachment(
        data,
        maintype,
        subtype,
        filename=filename,
        cid=cid,
        disposition="inline" if attachment.inline else "attachment",
    )


def _cte(text: str) -> str | None:
    """Quoted-printable for non-ASCII text (readable, unlike base64); the stdlib picks else."""
    return None if text.isascii() else "quoted-printable"


def _addresses(addresses: Sequence[Address], what: str) -> list[headerregistry.Address]:
    return [_mailbox(a, what) for a in addresses]


def compose(
    msg: OutboundMessage,
    *,
    from_address: str,
    from_name: str = "",
    reply_to: str | None = None,
    daemon_name: str = "inbox-daemon",
    date: datetime | None = None,
) -> EmailMessage:
    """The mail for ``msg``; raises :class:`PermanentDeliveryError` for what cannot be sent."""
    if not msg.to:
        raise _refuse("the message has no recipient")
    if not msg.message_id or "@" not in msg.message_id or not _valid_id(msg.message_id):
        raise _refuse(f"invalid Message-ID {msg.message_id!r}")
    message = EmailMessage(policy=MAIL_POLICY)
    try:
        sender = _mailbox(Address(email=from_address, name=from_name), "From")
        to, cc = _addresses(msg.to, "To"), _addresses(msg.cc, "Cc")
        message["From"] = sender
        message["To"] = to
        if cc:
            message["Cc"] = cc
        answer_to = [_mailbox(Address(email=reply_to), "Reply-To")] if reply_to else []
        if answer_to:
            message["Reply-To"] = answer_to
        subject = clean_text(msg.subject)
        if msg.case_number:
            subject = reply_subject(subject, msg.case_number)
        message["Subject"] = subject
        message["Date"] = format_datetime(date or datetime.now(UTC))
        message["Message-ID"] = msg.message_id
        parent = msg.in_reply_to if _valid_id(msg.in_reply_to) else None
        references = trim_references(
            [*(r for r in msg.references if r != parent), *([parent] if parent else [])]
        )
        if parent:
            message["In-Reply-To"] = parent
        if references:
            message["References"] = " ".join(references)
        if msg.automatic:
            message["Auto-Submitted"] = "auto-replied"
            message["X-Auto-Response-Suppress"] = "All"
        message["X-Loop"] = clean_text(daemon_name) or "inbox-daemon"
        if msg.case_number:
            message["X-Inbox-Daemon-Case"] = clean_text(msg.case_number)
        message.set_content(msg.text, cte=_cte(msg.text))
        html_part: EmailMessage | None = None
        if msg.html is not None:
            message.add_alternative(msg.html, subtype="html", cte=_cte(msg.html))
            payload = message.get_payload()
            if isinstance(payload, list) and isinstance(payload[-1], EmailMessage):
                html_part = payload[-1]
        for attachment in msg.attachments:
            _attach(message, attachment, html_part)
        _check_headers(
            message,
            {
                "From": [sender.addr_spec],
                "To": [a.addr_spec for a in to],
                "Cc": [a.addr_spec for a in cc],
                "Reply-To": [a.addr_spec for a in answer_to],
            },
        )
    except ValueError as exc:  # the stdlib's own header checks, as a last line of defence
        raise _refuse(f"cannot compose {msg.message_id}: {exc}") from None
    return message


def to_bytes(message: EmailMessage) -> bytes:
    """The message as it goes over the wire (CRLF line endings)."""
    return message.as_bytes(policy=MAIL_POLICY)
