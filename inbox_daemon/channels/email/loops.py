"""Loop and noise detection for incoming mail: auto-replies, bounces and mailing-list traffic.

Owns the rules that fill :class:`~inbox_daemon.messages.MessageFlags` (so the daemon never
answers a machine and never starts a mail loop), the extraction of the recipients a bounce
reports as failed (``X-Failed-Recipients`` and RFC 3464 ``message/delivery-status`` fields) and
:func:`is_from_us`, which tells whether a message was sent from one of our own addresses.
Everything here works on already-decoded values and parses no MIME, except the optional
fallback :func:`heuristic_failed_recipients`, which hands bounces without a machine-readable
report to the ``flufl.bounce`` detectors (Exim, qmail, Exchange ... text formats) when that
package is installed.
"""

from __future__ import annotations

import functools
import importlib
import logging
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from email.message import Message
from email.utils import getaddresses
from typing import Any

from inbox_daemon.messages import Address, InboundMessage, MessageFlags

__all__ = [
    "detect_flags",
    "failed_recipients",
    "has_auto_reply_subject",
    "heuristic_failed_recipients",
    "is_auto_reply",
    "is_bounce",
    "is_from_us",
    "is_mailing_list",
    "normalize_email",
    "sender_is_ours",
]

Headers = Mapping[str, tuple[str, ...]]

log = logging.getLogger(__name__)

# Subjects of out-of-office and other automatic answers, at the start of the subject (after an
# optional "[tag]"), in the languages our customers write in most.
_AUTO_SUBJECT = re.compile(
    r"""^\s*(?:\[[^\]]{0,80}\]\s*)?(?:
        out\ of\ (?:the\ )?office | ooo\b | away\ from\ (?:the\ )?office | on\ vacation\b
      | vacation\ (?:reply|notice|response|message|auto)
      | automatic\ (?:reply|response|answer) | auto(?:matic)?[\s_-]?(?:reply|response)
      | autorespon | autoreply | auto:\s.{0,120}\b(?:out\ of|abwesend|absent|away)
      | abwesenheitsnotiz | abwesenheitsmeldung | abwesenheit\s*:
      | automatische\ antwort | automatische\ r[üu]ckantwort
      | r[ée]ponse\ automatique | r[ée]ponse\ d'absence | absence\ du\ bureau
      | message\ d'absence | respuesta\ autom[áa]tica | fuera\ de\ la\ oficina
      | automatisch\ antwoord | afwezigheidsbericht | risposta\ automatica
      | fuori\ ufficio | resposta\ autom[áa]tica | fora\ do\ escrit[óo]rio
      | autosvar | automatiskt\ svar | automatisk\ svar | automatisch\ beantwoord
      | automaattinen\ vastaus | odpowied[źz]\ automatyczna | automatyczna\ odpowied[źz]
      | automatick[áa]\ odpov[ěe]d | automatikus\ v[áa]lasz | otomatik\ yan[ıi]t
      | автоматический\ ответ | автоответ | 自動応答 | 自動返信 | 自动回复 | 自動回覆
      | 자동\s?회신 | 부재중
    )""",
    re.IGNORECASE | re.VERBOSE,
)

# Subjects of non-delivery reports; only trusted together with a null or daemon sender.
_BOUNCE_SUBJECT = re.compile(
    r"""undeliver|undelivered|non[\s-]?deliver|delivery\ status\ notification
      | delivery\ (?:has\ )?fail|mail\ delivery\ fail|delivery\ failure|returned\ mail
      | failure\ notice|mail\ system\ error|could\ not\ be\ delivered|delivery\ problem
      | message\ not\ delivered|unzustellbar|non\ remis|no\ entregado""",
    re.IGNORECASE | re.VERBOSE,
)
_DAEMON = re.compile(
    r"^(?:mailer[-_]?daemon|mail[-_]?daemon|postmaster|post[-_]master|mail\ delivery"
    r"(?:\ sub)?system)$",
    re.IGNORECASE,
)
_LIST_HEADERS = (
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-subscribe",
    "list-help",
    "mailing-list",
    "x-mailing-list",
    "x-ml-name",
)
_SUPPRESS_TOKENS = frozenset({"all", "oof", "autoreply"})
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "auto_reply", "auto-reply"})


def _first(headers: Headers, name: str) -> str | None:
    values = headers.get(name)
    return values[0] if values else None


def _token(value: str) -> str:
    """The first word of a structured value, without comments or parameters, lower-cased."""
    value = re.sub(r"\([^)]*\)", " ", value)
    return value.split(";", 1)[0].strip().strip('"').lower()


def normalize_email(value: str | None) -> str | None:
    """``Local@Example.COM`` -> ``Local@example.com``; strips ``<>``; None when empty."""
    if not value:
        return None
    value = value.strip().strip("<>").strip()
    if not value:
        return None
    local, at, domain = value.rpartition("@")
    if not at:
        return value
    return f"{local}@{domain.lower()}"


def is_auto_reply(headers: Headers, *, report_type: str = "") -> bool:
    """RFC 3834 ``Auto-Submitted``, the vendor headers, ``Precedence`` and read receipts.

    The subject takes no part: people write "Out of office printer will not print" too (see
    :func:`has_auto_reply_subject`).
    """
    auto_submitted = _first(headers, "auto-submitted")
    if auto_submitted is not None and _token(auto_submitted) not in ("", "no"):
        return True
    for name in ("x-autoreply", "x-autorespond", "x-autogenerated"):
        value = _first(headers, name)
        if value is not None and _token(value) not in ("no", "false", "0"):
            return True
    for value in headers.get("x-auto-response-suppress", ()):
        tokens = {tok.strip().lower() for tok in re.split(r"[,;\s]+", value)}
        if tokens & _SUPPRESS_TOKENS:
            return True
    precedence = _first(headers, "precedence")
    if precedence is not None and _token(precedence) in _AUTO_PRECEDENCE:
        return True
    apple = _first(headers, "x-apple-action")  # iCloud's vacation responder
    if apple is not None and _token(apple) == "vacation":
        return True
    message_class = _first(headers, "x-post-messageclass")  # "9; Autoresponder"
    if message_class is not None and "autorespond" in message_class.lower():
        return True
    return report_type == "disposition-notification"


def has_auto_reply_subject(subject: str) -> bool:
    """Whether the subject starts like an out-of-office or other automatic answer.

    Only a hint: it keeps the daemon from answering the mail, it never decides that no person
    wrote it.
    """
    return _AUTO_SUBJECT.match(subject) is not None


def _is_daemon(sender: Address) -> bool:
    if sender.email:
        local = sender.email.rpartition("@")[0] or sender.email
        if _DAEMON.match(local.strip()) is not None:
            return True
    return _DAEMON.match(sender.name.strip().strip('"')) is not None


def is_bounce(
    headers: Headers, subject: str, sender: Address, *, content_type: str, report_type: str
) -> bool:
    """A delivery report: multipart/report, a daemon sender, or ``X-Failed-Recipients``.

    A bounce-like subject also counts when the envelope sender is null (``Return-Path: <>``)
    or the message has no sender address at all.
    """
    if content_type == "multipart/report" and report_type != "disposition-notification":
        return True
    if "x-failed-recipients" in headers:
        return True
    if _is_daemon(sender):
        return True
    if _BOUNCE_SUBJECT.search(subject) is None:
        return False
    return_path = _first(headers, "return-path")
    null_sender = return_path is not None and return_path.strip() in ("<>", "")
    return null_sender or not sender.email


def is_mailing_list(headers: Headers) -> bool:
    """``List-Id`` / ``List-Unsubscribe`` (or another list header) present, or ``Precedence: list``.

    The other list headers are ``List-Post``, ``List-Subscribe``, ``List-Help``, ezmlm's
    ``Mailing-List`` and fml's ``X-ML-Name``.
    """
    if any(name in headers for name in _LIST_HEADERS):
        return True
    precedence = _first(headers, "precedence")
    return precedence is not None and _token(precedence) == "list"


def _recipient(value: str) -> str | None:
    """``rfc822; <user@example.com>`` -> ``user@example.com``."""
    _, _, address = value.rpartition(";")
    address = address.strip().strip("<>").strip()
    return normalize_email(address) if "@" in address else None


def failed_recipients(
    headers: Headers, delivery_status: Sequence[Mapping[str, str]]
) -> tuple[str, ...]:
    """Recipients a bounce reports as permanently failed, in order, without duplicates."""
    found: dict[str, None] = {}
    for value in headers.get("x-failed-recipients", ()):
        for _, address in getaddresses([value]):
            normalized = normalize_email(address)
            if normalized and "@" in normalized:
                found.setdefault(normalized, None)
    for block in delivery_status:
        action = _token(block.get("action", ""))
        status = block.get("status", "").strip()
        if action:
            if not action.startswith("failed"):
                continue
        elif not status.startswith("5"):
            continue
        for key in ("final-recipient", "original-recipient", "x-actual-recipient"):
            field = block.get(key)
            recipient = _recipient(field) if field else None
            if recipient:
                found.setdefault(recipient, None)
                break
    return tuple(found)


@functools.cache
def _flufl_bounce() -> Any:
    try:
        return importlib.import_module("flufl.bounce")
    except ImportError:
        return None


def heuristic_failed_recipients(
    message: Message, raw: bytes, *, exclude: Collection[str] = ()
) -> tuple[str, ...]:
    """Failed recipients of a bounce without a DSN part, found by ``flufl.bounce``; () without it.

    The detectors are heuristic, so daemon addresses, the ``exclude`` addresses (the bounce's own
    recipients, that is us) and strings that are really Message-IDs are dropped.
    """
    module = _flufl_bounce()
    if module is None:
        return ()
    try:
        found = module.scan_message(message)
    except Exception as exc:  # a detector choking on odd input is no reason to reject mail
        log.debug("flufl.bounce failed: %r", exc)
        return ()
    skip = {value.lower() for value in exclude}
    result: dict[str, None] = {}
    for item in sorted(found):
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        address = normalize_email(text)
        if not address or "@" not in address or address.lower() in skip:
            continue
        local = address.rpartition("@")[0]
        if _DAEMON.match(local) is not None:
            continue
        pattern = rb"(?i)message-id:\s*<" + re.escape(address.encode("utf-8", "replace")) + rb">"
        if re.search(pattern, raw) is not None:
            continue
        result.setdefault(address, None)
    return tuple(result)


def detect_flags(
    headers: Headers,
    *,
    subject: str,
    sender: Address,
    content_type: str,
    report_type: str = "",
    delivery_status: Sequence[Mapping[str, str]] = (),
    from_us: bool = False,
) -> MessageFlags:
    """All flags of one message; ``from_us``: its sender is one of our own addresses."""
    bounce = is_bounce(headers, subject, sender, content_type=content_type, report_type=report_type)
    auto_reply = is_auto_reply(headers, report_type=report_type)
    return MessageFlags(
        auto_reply=auto_reply,
        bounce=bounce,
        mailing_list=is_mailing_list(headers),
        failed_recipients=failed_recipients(headers, delivery_status) if bounce else (),
        from_us=from_us,
        auto_subject=not (auto_reply or bounce) and has_auto_reply_subject(subject),
    )


def _matches(address: str, ours: Iterable[str]) -> bool:
    domain = address.rpartition("@")[2]
    for entry in ours:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry.startswith("@"):
            if domain == entry[1:]:
                return True
        elif entry == address:
            return True
    return False


def sender_is_ours(sender: Address, our_addresses: Collection[str]) -> bool:
    """True when ``sender`` is one of ``our_addresses`` (entries ``@domain`` match a domain)."""
    if not sender.email or not our_addresses:
        return False
    return _matches(sender.email.strip().lower(), our_addresses)


def is_from_us(msg: InboundMessage, our_addresses: Collection[str]) -> bool:
    """True when the message's From is one of ``our_addresses`` (case-insensitive).

    An entry starting with ``@`` stands for every address of that domain.
    """
    return sender_is_ours(msg.sender, our_addresses)
