"""The database schema (SQLAlchemy 2 declarative). Alembic migrations are made from it.

Enumerations are stored as their string values (portable between SQLite and PostgreSQL);
times are timezone-aware UTC.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnDefault,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored as UTC; SQLite gives naive values back, made UTC here."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


@event.listens_for(Base, "init", propagate=True)
def _defaults_when_made(target: Base, _args: Any, kwargs: dict[str, Any]) -> None:
    """Give a new row object its columns' Python defaults at once, not at the INSERT.

    The session writes the new rows of a table in one statement only while consecutive rows set
    the same columns (the ORM groups them so); a default left to the INSERT makes a row that
    omits it a group of its own. An intake batch alternates customer mails and
    acknowledgements, which set different columns: one INSERT per row without this.
    """
    for key, callable_, arg in _python_defaults(type(target)):
        if key not in kwargs:
            setattr(target, key, arg(None) if callable_ else arg)


@functools.cache
def _python_defaults(model: type[Base]) -> tuple[tuple[str, bool, Any], ...]:
    """(attribute, whether the default is a function, the value or function) per column of
    ``model`` that has a Python default (the version counter left to the ORM)."""
    mapper = inspect(model)
    found = []
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        default = column.default
        if isinstance(default, ColumnDefault) and column is not mapper.version_id_col:
            found.append((prop.key, default.is_callable, default.arg))
    return tuple(found)


Id = BigInteger().with_variant(Integer(), "sqlite")


class Counter(Base):
    """Named sequences (the case number) incremented inside the writing transaction."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class CaseRow(Base):
    __tablename__ = "cases"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    priority: Mapped[str] = mapped_column(String(16), nullable=False)
    origin: Mapped[str] = mapped_column(String(16), nullable=False)
    contact_email: Mapped[str | None] = mapped_column(String(320), index=True)
    contact_slack: Mapped[str | None] = mapped_column(String(64), index=True)
    contact_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    category: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(100))
    sla_policy: Mapped[str | None] = mapped_column(String(100))
    first_response_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolve_by_due: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    owner_user: Mapped[str | None] = mapped_column(String(100), index=True)
    owner_team: Mapped[str | None] = mapped_column(String(100))
    queue: Mapped[str | None] = mapped_column(String(100), index=True)
    worked_by: Mapped[str | None] = mapped_column(String(100))
    support_level: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    resolution: Mapped[str | None] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    #: The number of the case this one was merged into.
    merged_into: Mapped[str | None] = mapped_column(String(32))
    #: Other customers' email addresses (of cases merged into this one), answered in Cc.
    cc_contacts: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The customer's account id from rules.yaml (None: an implicit contact).
    account: Mapped[str | None] = mapped_column(String(100), index=True)
    #: Created when the account's allowance was used up (it consumed no unit).
    entitlement_exhausted: Mapped[bool] = mapped_column(
        nullable=False, default=False, server_default=text("false")
    )
    #: Optimistic lock: a concurrent writer of the same case fails instead of overwriting.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    parent: Mapped[CaseRow | None] = relationship(remote_side=[id], lazy="raise")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ActivityRow(Base):
    __tablename__ = "activities"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), nullable=False, index=True)
    #: Never loaded (``case_id`` is what code reads); it tells the session to write new cases
    #: before new activities when both wait for the same flush (ids given in advance,
    #: :mod:`inbox_daemon.store.ids`).
    case: Mapped[CaseRow] = relationship(lazy="raise")
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    direction: Mapped[str] = mapped_column(String(16), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    channel: Mapped[str | None] = mapped_column(String(16))
    mailbox: Mapped[str | None] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(Text, nullable=False, default="")
    body_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    #: The new text of a reply, without the quoted history below it (the full body is kept too).
    body_new: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(String(400))
    recipients: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    cc: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    slack_channel: Mapped[str | None] = mapped_column(String(64))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    slack_thread_ts: Mapped[str | None] = mapped_column(String(32))
    automatic: Mapped[bool] = mapped_column(nullable=False, default=False)
    #: An automatic outgoing message's recipient, lower-cased: what the hourly limit of
    #: automatic answers per address counts (indexed; ``recipients`` is JSON).
    automatic_to: Mapped[str | None] = mapped_column(String(400))
    flags: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    #: A task's due time and the agent it is assigned to.
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    assignee: Mapped[str | None] = mapped_column(String(100))
    #: What a settled task was closed with (the diagnostic task's "Solution found" …).
    result: Mapped[str | None] = mapped_column(String(200))
    #: The time the activity took, as the agent recorded it (an allowance of hours counts it).
    spent_minutes: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    delivery_state: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        Index("ix_activities_outbox", "delivery_state", "next_attempt_at"),
        Index("ix_activities_slack", "slack_channel", "slack_ts"),
        Index("ix_activities_automatic", "automatic", "created_at"),
        Index("ix_activities_automatic_to", "automatic_to", "created_at"),
    )


class AttachmentRow(Base):
    """A file of an activity; the bytes live on disk under their SHA-256."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    activity_id: Mapped[int] = mapped_column(
        ForeignKey("activities.id"), nullable=False, index=True
    )
    #: Never loaded: new activities are written before their attachments (as ``case`` above).
    activity: Mapped[ActivityRow] = relationship(lazy="raise")
    sha256: Mapped[str] = mapped_column(String(64), nullable=False, index=True)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    filename: Mapped[str] = mapped_column(String(255), nullable=False)
    content_type: Mapped[str] = mapped_column(String(255), nullable=False)
    content_id: Mapped[str | None] = mapped_column(String(255))
    inline: Mapped[bool] = mapped_column(nullable=False, default=False)


class ReceiptRow(Base):
    """One row per message taken in: what makes ingestion idempotent."""

    __tablename__ = "receipts"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    mailbox: Mapped[str] = mapped_column(String(100), nullable=False)
    external_id: Mapped[str] = mapped_column(String(300), nullable=False)
    message_id: Mapped[str | None] = mapped_column(String(998))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    activity_id: Mapped[int | None] = mapped_column(ForeignKey("activities.id"))
    #: Never loaded: orders the INSERTs of one flush (see ``ActivityRow.case``).
    activity: Mapped[ActivityRow | None] = relationship(lazy="raise")
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("channel", "mailbox", "external_id", name="uq_receipts_source"),
        UniqueConstraint("message_id", "content_hash", name="uq_receipts_message"),
    )


class AuditRow(Base):
    """Every change to a case: what changed, from what to what, who or what did it, when."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), nullable=False, index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    actor_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    actor_name: Mapped[str] = mapped_column(String(200), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    field: Mapped[str | None] = mapped_column(String(64))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)


class MailboxStateRow(Base):
    """How far each IMAP mailbox has been read, committed with the messages it covers."""

    __tablename__ = "mailbox_state"
    mailbox: Mapped[str] = mapped_column(String(100), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_uid: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: The first UID of the group committed with ``last_uid`` (None: ``last_uid`` alone).
    group_first_uid: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class QuarantineRow(Base):
    """A message set aside for a person: the raw bytes are kept on disk under their SHA-256."""

    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16), nullable=False)
    mailbox: Mapped[str] = mapped_column(String(100), nullable=False)
    external_id: Mapped[str] = mapped_column(String(300), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    #: held (waiting for a person), retried (went through on retry), dropped
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="held")
    #: How many times these bytes came from this mailbox (under any source id).
    deliveries: Mapped[int] = mapped_column(
        Integer, nullable=False, default=1, server_default=text("1")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("channel", "mailbox", "external_id", name="uq_quarantine_source"),
        Index("ix_quarantine_bytes", "channel", "mailbox", "sha256"),
    )


class TeamRotationRow(Base):
    """Round-robin position per team, so a restart does not reset the rotation."""

    __tablename__ = "team_rotation"
    team: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_user: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class EntitlementUseRow(Base):
    """One unit of an account's allowance taken by a new case: one row per case at most (the
    key), so a case counts once; ``returned_at`` set when the case was cancelled.

    ``seq`` numbers the units of one (account, entitlement, period) from 1, returned ones
    included: two writers that counted the same units cannot both take the next one.
    """

    __tablename__ = "entitlement_uses"
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"), primary_key=True)
    #: Never loaded: orders the INSERTs of one flush (see ``ActivityRow.case``).
    case: Mapped[CaseRow] = relationship(lazy="raise")
    account: Mapped[str] = mapped_column(String(100), nullable=False)
    entitlement: Mapped[str] = mapped_column(String(100), nullable=False)
    #: ``2026-03`` (a month) or ``2026`` (a year), in the entitlement's time zone.
    period: Mapped[str] = mapped_column(String(10), nullable=False)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint(
            "account", "entitlement", "period", "seq", name="uq_entitlement_uses_unit"
        ),
    )


class EntitlementHoursRow(Base):
    """The time spent on a resolved case, charged to its account's allowance of hours: one
    row per case (the key), in the period the case was resolved in; ``returned_at`` set when
    the case was reactivated (a second resolve charges it again, with the new total)."""

    __tablename__ = "entitlement_hours"
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"), primary_key=True)
    #: Never loaded: orders the INSERTs of one flush (see ``ActivityRow.case``).
    case: Mapped[CaseRow] = relationship(lazy="raise")
    account: Mapped[str] = mapped_column(String(100), nullable=False)
    entitlement: Mapped[str] = mapped_column(String(100), nullable=False)
    period: Mapped[str] = mapped_column(String(10), nullable=False)
    minutes: Mapped[int] = mapped_column(Integer, nullable=False)
    charged_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_entitlement_hours_period", "account", "entitlement", "period"),)


class SlackCardRow(Base):
    """The Slack message that is a case's card in its queue's channel."""

    __tablename__ = "case_cards"
    case_id: Mapped[int] = mapped_column(Id, ForeignKey("cases.id"), primary_key=True)
    #: Never loaded: orders the INSERTs of one flush (see ``ActivityRow.case``).
    case: Mapped[CaseRow] = relationship(lazy="raise")
    channel: Mapped[str] = mapped_column(String(64), nullable=False)
    ts: Mapped[str] = mapped_column(String(32), nullable=False)
    #: ``cases.version`` when the card was last drawn.
    case_version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)

    __table_args__ = (UniqueConstraint("channel", "ts", name="uq_case_cards_message"),)


class LeaseRow(Base):
    """A named lease (``mailbox:<name>``): who holds it, and until when, unless renewed."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
