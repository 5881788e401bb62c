"""The neutral message types that channels produce and consume and the router reads.

A channel turns a mailbox or a Slack workspace into :class:`InboundMessage` values and turns
:class:`OutboundMessage` values back into mail or Slack posts. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

#: Reply and forward prefixes in many languages and mail clients (``Re:``, ``AW:``, ``Fwd:``,
#: ``WG:``, ``SV:``, ``Re[2]:`` …), repeated.
REPLY_PREFIXES = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|antwort|ref|rif|res|odp|fw|fwd|wg|tr|rv|enc|vb|ynt|doorst"
    r"|回复|回覆|答复|转发|轉寄)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]\s*)+",
    re.IGNORECASE,
)


_SPACES = re.compile(r"\s+")


def bare_subject(subject: str) -> str:
    """A subject without its reply and forward prefixes, white space folded."""
    return REPLY_PREFIXES.sub("", " ".join(subject.split()))


def clean_text(value: str) -> str:
    """One line of text: control characters and line or paragraph breaks become spaces."""
    chars = (" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in value)
    return _SPACES.sub(" ", "".join(chars)).strip()


def new_message_id(case_number: str, domain: str) -> str:
    """A fresh Message-ID for a message we send on a case: ``<random.cas-000123@domain>``.

    The case number in it lets a reply that lost its References still be told apart; the
    random part makes it unique. The one place that spells our Message-IDs.
    """
    return f"<{secrets.token_hex(12)}.{case_number.lower()}@{domain}>"


class ChannelKind(enum.StrEnum):
    """Where a message came from or goes to."""

    EMAIL = "email"
    SLACK = "slack"


@dataclass(frozen=True, slots=True)
class Address:
    """A sender or recipient: an email address and/or a Slack user, with a display name."""

    email: str | None = None
    name: str = ""
    slack_user: str | None = None
    #: The Slack workspace (team id) the user belongs to: another organisation's in a Slack
    #: Connect channel, which is what matches the user to an account.
    slack_team: str | None = None

    def __str__(self) -> str:
        who = self.email or self.slack_user or "?"
        return f"{self.name} <{who}>" if self.name else who


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file carried by a message. ``content`` or ``path`` holds the bytes."""

    filename: str
    content_type: str
    size: int
    content: bytes | None = None
    path: Path | None = None
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True, slots=True)
class MessageFlags:
    """What the channel recognised about the message (loop and noise safety)."""

    #: An automatic answer by its headers (``Auto-Submitted``, ``X-Autoreply``,
    #: ``Precedence: bulk`` …) or a read receipt.
    auto_reply: bool = False
    bounce: bool = False
    mailing_list: bool = False
    #: Recipients a bounce says could not be reached.
    failed_recipients: tuple[str, ...] = ()
    #: Sent from one of our own addresses (by a person or by us): never answered, never
    #: a customer's message.
    from_us: bool = False
    #: The subject looks like an out-of-office answer while the headers say nothing: a person
    #: may have written it ("Out of office printer will not print"), so it is taken in as
    #: usual, only never answered automatically.
    auto_subject: bool = False

    @property
    def automatic(self) -> bool:
        """True when no person wrote it (by its headers): never answer it automatically."""
        return self.auto_reply or self.bounce or self.mailing_list

    @property
    def no_automatic_answer(self) -> bool:
        """True when nothing may answer it automatically (acknowledgements, notices)."""
        return self.automatic or self.from_us or self.auto_subject


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from a customer (or a machine pretending to be one)."""

    #: The name of its channel kind (:mod:`inbox_daemon.kinds`), e.g. ``email``.
    channel: str
    #: The mailbox name from the config, or the Slack workspace/team id.
    mailbox: str
    #: Identifies the message at its source: ``uidvalidity:uid``, a Maildir key, a Slack ts.
    external_id: str
    sender: Address
    subject: str = ""
    text: str = ""
    html: str | None = None
    #: ``text`` without the quoted history below a reply, when the channel separated it (the
    #: email parser does); None: not separated.
    new_text: str | None = None
    #: RFC 5322 Message-ID (with angle brackets) or ``slack:<channel>:<ts>``.
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    #: Slack: the channel and the thread this message belongs to.
    slack_channel: str | None = None
    slack_ts: str | None = None
    slack_thread_ts: str | None = None
    attachments: tuple[Attachment, ...] = ()
    flags: MessageFlags = field(default_factory=MessageFlags)
    #: Lower-cased header name -> values, for routing conditions.
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sent_at: datetime | None = None
    received_at: datetime | None = None
    #: SHA-256 of the raw bytes (email) or of the event payload (Slack).
    content_hash: str | None = None
    #: Where the raw message can be found again, for quarantine.
    raw_location: str | None = None
    #: Headers the channel could not parse: kept raw in ``headers``, the message taken in all the
    #: same (shown to the agent with the activity).
    unparsed_headers: tuple[str, ...] = ()

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Every id this message answers, nearest first."""
        seen: dict[str, None] = {}
        for mid in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(mid, None)
        return tuple(seen)


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message we send: an agent's reply, an acknowledgement, a Slack post.

    Channel-neutral: the channel's sender renders it (subject prefix and case token, threading
    headers, References trimmed, Slack blocks).
    """

    #: The name of its channel kind (:mod:`inbox_daemon.kinds`).
    channel: str
    mailbox: str
    message_id: str
    to: tuple[Address, ...]
    subject: str
    text: str
    html: str | None = None
    cc: tuple[Address, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    automatic: bool = False
    attachments: tuple[Attachment, ...] = ()
    slack_channel: str | None = None
    slack_thread_ts: str | None = None
    case_number: str | None = None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """How far a mailbox has been read: the last UID committed under a UIDVALIDITY.

    ``group_start`` is the first UID of the group of messages committed together with ``uid``
    (0 when unknown, or ``uid`` alone): after a crash, those may not be acknowledged yet. It
    takes no part in comparisons.
    """

    uidvalidity: int
    uid: int
    group_start: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What a channel says after sending: its id for the message and when it went."""

    external_id: str
    sent_at: datetime
