"""Slack message events → :class:`Delivery` values for the sink, and what else they can be.

A message in one of the configured intake channels is a customer message: it becomes an
``InboundMessage`` (channel ``slack``, mailbox = the team id, external id = the Events API
``event_id``, Message-ID ``slack:<channel>:<ts>``, the thread it answers, the sender as a Slack
user, its files as fetched by ``files.py``). Edits and deletions of customer messages are
:class:`MessageRevision` values, reported through their own callback. Messages from bots (ours
included) are never customer messages. This module only translates: no database, no rules.
"""

from __future__ import annotations

import enum
import hashlib
import html
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbox_daemon.channels.base import Delivery
from inbox_daemon.messages import Address, Attachment, ChannelKind, InboundMessage

__all__ = [
    "EventKind",
    "MessageRevision",
    "RecentEvents",
    "RevisionSink",
    "classify",
    "event_key",
    "message_delivery",
    "message_id",
    "revision_of",
    "slack_to_plain",
]

CHANNEL = ChannelKind.SLACK.value
#: Subtypes of a message a person wrote (no subtype at all is the common case).
PERSON_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


class EventKind(enum.StrEnum):
    """What a ``message`` event means to us."""

    CUSTOMER = "customer"  # a customer wrote in an intake channel
    THREAD = "thread"  # someone wrote in a thread outside the intake channels (a card's?)
    EDITED = "edited"
    DELETED = "deleted"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class MessageRevision:
    """A customer edited or deleted a message we may have taken in."""

    kind: EventKind  # EDITED or DELETED
    team: str
    channel: str
    #: The ts of the message that changed (the one recorded on its activity).
    ts: str
    user: str | None
    text: str
    previous_text: str


RevisionSink = Callable[[MessageRevision], Awaitable[None]]


def message_id(channel: str, ts: str) -> str:
    """The Message-ID of a Slack message, as recorded on its activity."""
    return f"slack:{channel}:{ts}"


def _from_bot(message: Mapping[str, Any], bot_user_id: str | None) -> bool:
    return bool(
        message.get("bot_id")
        or message.get("subtype") == "bot_message"
        or message.get("bot_profile")
        or (bot_user_id is not None and message.get("user") == bot_user_id)
    )


def classify(
    event: Mapping[str, Any], *, intake_channels: Collection[str], bot_user_id: str | None
) -> EventKind:
    """Sort a ``message`` event: customer message, thread message, edit, deletion or noise."""
    channel = event.get("channel")
    subtype = event.get("subtype")
    if subtype == "message_changed":
        changed = event.get("message") or {}
        if channel in intake_channels and not _from_bot(changed, bot_user_id):
            before = event.get("previous_message") or {}
            if changed.get("text", "") != before.get("text", ""):  # not just an unfurl
                return EventKind.EDITED
        return EventKind.IGNORED
    if subtype == "message_deleted":
        before = event.get("previous_message") or {}
        if channel in intake_channels and not _from_bot(before, bot_user_id):
            return EventKind.DELETED
        return EventKind.IGNORED
    if subtype not in PERSON_SUBTYPES or _from_bot(event, bot_user_id) or not event.get("user"):
        return EventKind.IGNORED
    if channel in intake_channels:
        return EventKind.CUSTOMER
    thread_ts = event.get("thread_ts")
    if thread_ts and thread_ts != event.get("ts"):
        return EventKind.THREAD
    return EventKind.IGNORED


def event_key(body: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    """The external id of an event: its ``event_id``, else ``channel:ts``."""
    event_id = body.get("event_id")
    if isinstance(event_id, str) and event_id:
        return event_id
    return f"{event.get('channel', '?')}:{event.get('ts', '?')}"


def _team(body: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    return str(body.get("team_id") or event.get("team") or "slack")


def _user_team(event: Mapping[str, Any]) -> str | None:
    """The sender's own workspace: ``user_team`` in a Slack Connect channel, else ``team``."""
    team = event.get("user_team") or event.get("team")
    return str(team) if team else None


def _when(ts: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(ts or ""), UTC)
    except ValueError:
        return None


def message_delivery(
    body: Mapping[str, Any],
    event: Mapping[str, Any],
    *,
    sender_name: str = "",
    attachments: Sequence[Attachment] = (),
    notes: Sequence[str] = (),
) -> Delivery:
    """The Delivery of a customer message (files already fetched, problems in ``notes``)."""
    team = _team(body, event)
    key = event_key(body, event)
    raw = json.dumps(dict(body), sort_keys=True, ensure_ascii=False).encode()
    channel = str(event.get("channel", ""))
    ts = str(event.get("ts", ""))
    thread_ts = event.get("thread_ts")
    thread_ts = str(thread_ts) if thread_ts and thread_ts != ts else None
    text = slack_to_plain(str(event.get("text", "")))
    if notes:
        text = "\n".join([text, "", *(f"[{n}]" for n in notes)]).strip()
    stable = {k: event.get(k) for k in ("channel", "ts", "thread_ts", "user", "text", "files")}
    message = InboundMessage(
        channel=ChannelKind.SLACK,
        mailbox=team,
        external_id=key,
        sender=Address(
            slack_user=str(event.get("user")), name=sender_name, slack_team=_user_team(event)
        ),
        text=text,
        message_id=message_id(channel, ts),
        in_reply_to=(message_id(channel, thread_ts),) if thread_ts else (),
        slack_channel=channel,
        slack_ts=ts,
        slack_thread_ts=thread_ts,
        attachments=tuple(attachments),
        sent_at=_when(ts),
        content_hash=hashlib.sha256(
            json.dumps(stable, sort_keys=True, default=str).encode()
        ).hexdigest(),
        raw_location=f"slack:{team}:{key}",
    )
    return Delivery(CHANNEL, team, key, raw, message)


def revision_of(body: Mapping[str, Any], event: Mapping[str, Any]) -> MessageRevision | None:
    """An edit (``message_changed``) or deletion (``message_deleted``) of a message."""
    subtype = event.get("subtype")
    before = event.get("previous_message") or {}
    team = _team(body, event)
    channel = str(event.get("channel", ""))
    if subtype == "message_changed":
        after = event.get("message") or {}
        return MessageRevision(
            kind=EventKind.EDITED,
            team=team,
            channel=channel,
            ts=str(after.get("ts") or before.get("ts") or ""),
            user=after.get("user") or before.get("user"),
            text=slack_to_plain(str(after.get("text", ""))),
            previous_text=slack_to_plain(str(before.get("text", ""))),
        )
    if subtype == "message_deleted":
        return MessageRevision(
            kind=EventKind.DELETED,
            team=team,
            channel=channel,
            ts=str(event.get("deleted_ts") or before.get("ts") or ""),
            user=before.get("user"),
            text="",
            previous_text=slack_to_plain(str(before.get("text", ""))),
        )
    return None


# --- Slack markup → plain text -----------------------------------------------------------------

_ANGLE = re.compile(r"<([^<>]*)>")


def _link(inner: str) -> str:
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        if label:
            return label
        word = target[1:].split("^", 1)[0]
        return "@" + word
    if target.startswith("mailto:"):
        return label or target.removeprefix("mailto:")
    if label and label != target:
        return f"{label} ({target})"
    return target


def slack_to_plain(text: str) -> str:
    """Slack's ``mrkdwn`` markup as plain text: links, mentions and escapes resolved."""
    return html.unescape(_ANGLE.sub(lambda m: _link(m.group(1)), text))


class RecentEvents:
    """Events being handled or handled lately: a retry of one is answered without redoing it.

    The receipt in the database is what makes intake idempotent; this only spares a retry that
    arrives while the first delivery is still being worked (or just after) the second pass.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._busy: set[str] = set()
        self._done: OrderedDict[str, None] = OrderedDict()

    def begin(self, key: str) -> bool:
        """True if the event is new here (the caller then handles it and calls finish/abandon)."""
        if key in self._busy or key in self._done:
            return False
        self._busy.add(key)
        return True

    def finish(self, key: str) -> None:
        self._busy.discard(key)
        self._done[key] = None
        while len(self._done) > self.size:
            self._done.popitem(last=False)

    def abandon(self, key: str) -> None:
        """The event failed: a retry should be handled again."""
        self._busy.discard(key)
