"""Enumerations of the case domain."""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    """A case's status. Paused statuses stop the SLA clock; final ones never change again."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_RESPONSE = "waiting_for_response"
    ON_HOLD = "on_hold"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    REOPENED = "reopened"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def paused(self) -> bool:
        return self in PAUSED

    @property
    def final(self) -> bool:
        return self in FINAL

    @property
    def read_only(self) -> bool:
        return self in READ_ONLY

    @property
    def open(self) -> bool:
        """True while agents are expected to work on the case."""
        return self not in READ_ONLY


PAUSED = frozenset({Status.WAITING_FOR_RESPONSE, Status.ON_HOLD})
FINAL = frozenset({Status.CLOSED, Status.CANCELLED})
READ_ONLY = frozenset({Status.RESOLVED, Status.CLOSED, Status.CANCELLED})


class Priority(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Priority).index(self)


class AutomaticMail(enum.StrEnum):
    """What becomes of automatic mail (an auto-reply or bounce by its headers) that answers
    none of our messages."""

    #: A case, as for a person's mail (never acknowledged).
    CASE = "case"
    #: No case; the mail is kept, set aside where an admin can list it and open a case of it.
    RECORD = "record"
    #: No case, nothing kept but the receipt and a log line.
    IGNORE = "ignore"


class Origin(enum.StrEnum):
    """How the case reached us."""

    EMAIL = "email"
    SLACK = "slack"
    PHONE = "phone"
    WEB = "web"
    CHAT = "chat"


class ActivityKind(enum.StrEnum):
    EMAIL = "email"
    SLACK_MESSAGE = "slack_message"
    #: A message through another channel kind (a web form, a chat, an API).
    MESSAGE = "message"
    NOTE = "note"
    #: A message to an agent about the case (assigned, escalated, taken over): never the
    #: customer's, sent through the outbox like an answer.
    NOTIFICATION = "notification"
    TASK = "task"
    PHONE_CALL = "phone_call"


class Direction(enum.StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    INTERNAL = "internal"


class ActivityState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DeliveryState(enum.StrEnum):
    """Where an outgoing activity is on its way to the customer."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class ActorKind(enum.StrEnum):
    """Who or what made a change: an agent, a routing rule, a channel, a system job."""

    USER = "user"
    RULE = "rule"
    CHANNEL = "channel"
    SYSTEM = "system"
    CUSTOMER = "customer"
