"""The acknowledgement of a new case: its templates, the decision, the queueing.

Owns the acknowledgement templates (``inbox_daemon/templates/acknowledgement.txt``, replaced for
every mailbox by an ``acknowledgement.txt`` beside rules.yaml, or for one mailbox by
``acknowledgement-<mailbox>.txt``), checked when loaded; :func:`should_acknowledge`, the pure
decision that keeps us from answering machines, mailing lists, ourselves or a sender we already
answered too often (the loop breaker); and :func:`queue_acknowledgement`, which has the case
service queue the automatic answer in the caller's transaction for the outbox to deliver. Only
channel kinds that acknowledge (:mod:`inbox_daemon.kinds`: email) get one.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases.model import Actor
from inbox_daemon.errors import ConfigError
from inbox_daemon.kinds import kind_of
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import MessageFlags, clean_text
from inbox_daemon.service import CaseService
from inbox_daemon.service.template_files import first_bad_placeholder, read_template_file
from inbox_daemon.store.tables import ActivityRow, CaseRow

__all__ = [
    "DEFAULT_TEMPLATE",
    "PLACEHOLDERS",
    "AckTemplate",
    "AckTemplates",
    "load_template",
    "load_templates",
    "queue_acknowledgement",
    "recent_automatic_count",
    "should_acknowledge",
]

log = get_logger("inbox_daemon.acknowledge")

DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / "acknowledgement.txt"
PLACEHOLDERS = ("case_number", "title", "expected_response", "customer_name", "mailbox")
#: Automatic answers to one address within this window count towards the limit.
RATE_WINDOW = timedelta(hours=1)
DEFAULT_LIMIT = 3
ACTOR = Actor.system("acknowledgement")

# Senders that are machines by name: no-reply, mailer-daemon, postmaster, bounces …
_MACHINE_SENDER = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounces?"
    r"|mail[-_.]?daemon)(?:[-+_.].*)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AckTemplate:
    """A checked template: only the known placeholders, no stray ``$``."""

    source: Path
    template: string.Template

    def render(
        self,
        *,
        case_number: str,
        title: str,
        expected_response: str,
        customer_name: str,
        mailbox: str,
    ) -> str:
        return self.template.substitute(
            case_number=case_number,
            title=clean_text(title),
            expected_response=expected_response,
            customer_name=clean_text(customer_name),
            mailbox=mailbox,
        )


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def load_template(path: Path) -> AckTemplate:
    """Read and check one template; :class:`ConfigError` names the file and the problem."""
    text = read_template_file(path)
    problem = first_bad_placeholder(text, PLACEHOLDERS)
    if problem is not None:
        line, column = _position(text, problem[0])
        raise ConfigError(f"{path}:{line}:{column}: {problem[1]}")
    template = string.Template(text)
    return AckTemplate(path, template)


@dataclass(frozen=True)
class AckTemplates:
    """The template of every mailbox: its own file, or the common one."""

    default: AckTemplate
    per_mailbox: Mapping[str, AckTemplate] = field(default_factory=dict)

    def for_mailbox(self, mailbox: str | None) -> AckTemplate:
        return self.per_mailbox.get(mailbox or "", self.default)


def load_templates(folder: Path | None = None, *, default: Path = DEFAULT_TEMPLATE) -> AckTemplates:
    """The shipped template, overridden by ``acknowledgement*.txt`` files in ``folder``.

    ``folder`` is the folder of rules.yaml: ``acknowledgement.txt`` there replaces the shipped
    template for every mailbox, ``acknowledgement-<mailbox>.txt`` for one mailbox.
    """
    common = folder / "acknowledgement.txt" if folder is not None else None
    base = load_template(common if common is not None and common.is_file() else default)
    per_mailbox: dict[str, AckTemplate] = {}
    if folder is not None and folder.is_dir():
        for path in sorted(folder.glob("acknowledgement-*.txt")):
            name = path.name.removeprefix("acknowledgement-").removesuffix(".txt")
            if name:
                per_mailbox[name] = load_template(path)
    return AckTemplates(base, per_mailbox)


def is_machine_sender(address: str) -> bool:
    """``no-reply@``, ``noreply@``, ``mailer-daemon@``, ``postmaster@``, ``bounces+…@`` …"""
    local = address.rpartition("@")[0] or address
    return bool(_MACHINE_SENDER.match(local))


def should_acknowledge(
    *,
    flags: MessageFlags,
    sender: str,
    our_addresses: Collection[str],
    recent_automatic_count: int,
    limit: int = DEFAULT_LIMIT,
    skip: bool = False,
) -> tuple[bool, str]:
    """Whether a new case's customer gets an acknowledgement, and why (not)."""
    address = sender.strip().lower()
    if skip:
        return False, "a routing rule set skip_acknowledgement"
    if not address or "@" not in address:
        return False, "no sender address to answer"
    if flags.bounce:
        return False, "the message is a bounce"
    if flags.auto_reply:
        return False, "the message is an automatic reply"
    if flags.mailing_list:
        return False, "the message came through a mailing list"
    if flags.auto_subject:
        return False, "the subject looks like an automatic reply"
    if flags.from_us:
        return False, "the sender is one of our own addresses"
    if address in {a.lower() for a in our_addresses}:
        return False, "the sender is one of our own addresses"
    if is_machine_sender(address):
        return False, "the sender is a no-reply or system address"
    if recent_automatic_count >= limit:
        return False, (
            f"rate limit: {recent_automatic_count} automatic answers to this sender "
            f"in the last hour (limit {limit})"
        )
    return True, "acknowledge"


async def recent_automatic_count(session: AsyncSession, address: str, since: datetime) -> int:
    """Automatic outgoing messages to ``address`` queued since ``since`` (any delivery state)."""
    wanted = address.strip().lower()
    return (await recent_automatic_counts(session, [wanted], since)).get(wanted, 0)


async def recent_automatic_counts(
    session: AsyncSession, addresses: Collection[str], since: datetime
) -> dict[str, int]:
    """:func:`recent_automatic_count` of several (lower-cased) addresses in one query."""
    wanted = sorted({a.strip().lower() for a in addresses if a.strip()})
    if not wanted:
        return {}
    stmt = (
        select(ActivityRow.automatic_to, func.count())
        .where(ActivityRow.automatic_to.in_(wanted), ActivityRow.created_at >= since)
        .group_by(ActivityRow.automatic_to)
    )
    return {address: count for address, count in (await session.execute(stmt)).all() if address}


def expected_response(due: datetime | None, zone: tzinfo = UTC) -> str:
    """``by Monday 2 March 2026, 14:00 CET`` in the time zone of the case's calendar, or
    ``as soon as we can`` without a target."""
    if due is None:
        return "as soon as we can"
    local = due.astimezone(zone)
    return f"by {local:%A} {local.day} {local:%B %Y, %H:%M} {local.tzname()}"


def _flags(activity: ActivityRow) -> MessageFlags:
    stored = activity.flags or {}
    return MessageFlags(
        auto_reply=bool(stored.get("auto_reply")),
        bounce=bool(stored.get("bounce")),
        mailing_list=bool(stored.get("mailing_list")),
        from_us=bool(stored.get("from_us")),
        auto_subject=bool(stored.get("auto_subject")),
    )


async def queue_acknowledgement(
    session: AsyncSession,
    case_row: CaseRow,
    incoming_activity_row: ActivityRow,
    *,
    template: AckTemplate,
    our_address: str | Collection[str],
    now: datetime,
    service: CaseService,
    limit: int = DEFAULT_LIMIT,
    skip: bool = False,
    recent_count: int | None = None,
) -> ActivityRow | None:
    """Queue the acknowledgement of a case just created from ``incoming_activity_row``.

    Writes the automatic outgoing activity (pending, its Message-ID fixed now, answering the
    customer's Message-ID) in the caller's transaction, or returns None, logging why not.
    ``recent_count``: the sender's automatic answers of the last hour, if the caller knows
    them (else they are counted here).
    """
    incoming = incoming_activity_row
    ours = {our_address} if isinstance(our_address, str) else set(our_address)
    sender = (incoming.sender or "").strip().lower()
    spec = kind_of(incoming.channel)  # the activity was made of it: a registered kind
    if not spec.acknowledges:
        ok, reason = False, f"acknowledgements are not sent for {spec.name} messages"
    else:
        count = recent_count
        if count is None:
            count = (
                await recent_automatic_count(session, sender, now - RATE_WINDOW) if sender else 0
            )
        ok, reason = should_acknowledge(
            flags=_flags(incoming), sender=sender, our_addresses=ours,
            recent_automatic_count=count, limit=limit, skip=skip,
        )  # fmt: skip
    if not ok:
        log.info("no acknowledgement", case=case_row.number, reason=reason,
                 message_id=incoming.message_id)  # fmt: skip
        return None
    body = template.render(
        case_number=case_row.number,
        title=case_row.title,
        expected_response=expected_response(
            case_row.first_response_due, service.zone_lookup(case_row.sla_policy, case_row.account)
        ),
        customer_name=case_row.contact_name or sender,
        mailbox=incoming.mailbox or "",
    )
    activity = await service.queue_outgoing_in(
        session, case_row, incoming, body, ACTOR, kind=spec.activity_kind, channel=spec.name,
        recipients=[sender], automatic=True, automatic_to=sender, now=now,
    )  # fmt: skip
    detail = {"activity": activity.id, "message_id": activity.message_id}
    service.audit_in(session, case_row, ACTOR, "acknowledgement", at=now, detail=detail)
    # debug: intake logs every message taken in, the outbox every message it sends
    log.debug("acknowledgement queued", case=case_row.number, message_id=activity.message_id)
    return activity
