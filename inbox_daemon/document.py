"""The case document: a customer-facing page of one case (QCRM's "print preview").

Owns the template ``case_document.html`` (the packaged one in ``inbox_daemon/templates/``,
replaced by a file of that name beside rules.yaml), what the template is given, and the PDF.
:func:`render_html` is pure — a :class:`~inbox_daemon.service.CaseView`, a read template and
the time it is made at in, HTML out; :func:`read_template` is its one file read and
:func:`to_pdf` hands the HTML to WeasyPrint. The callers (the CLI, the Slack agents) read the
case through the case service and write the result where it goes.

Only the public conversation reaches the template: the messages the customer sent and the
answers sent to them (:func:`public_conversation`); notes, tasks, calls, automatic mail that
came in and answers that failed for good never do, whatever a template asks for. Customer text
is hostile: the template is rendered with autoescaping on, in Jinja's sandbox.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from zoneinfo import ZoneInfo

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from inbox_daemon.cases.enums import ActivityKind, DeliveryState, Direction
from inbox_daemon.errors import ConfigError
from inbox_daemon.service import CaseView
from inbox_daemon.service.template_files import read_template_file
from inbox_daemon.store.tables import ActivityRow

__all__ = [
    "DEFAULT_TEMPLATE",
    "TEMPLATE_NAME",
    "DocumentTemplate",
    "public_conversation",
    "read_template",
    "render_html",
    "template_path",
    "to_pdf",
]

TEMPLATE_NAME = "case_document.html"
DEFAULT_TEMPLATE = Path(__file__).parent / "templates" / TEMPLATE_NAME
#: The activity kinds that carry messages between the customer and us.
MESSAGE_KINDS = frozenset({ActivityKind.EMAIL, ActivityKind.SLACK_MESSAGE, ActivityKind.MESSAGE})


# --- what the template is given ------------------------------------------------------------


@dataclass(frozen=True)
class CaseFacts:
    """The case's own fields a customer may read (no queue, owner, team or SLA policy)."""

    number: str
    title: str
    status: str
    status_label: str
    priority: str
    origin: str
    category: str | None
    reason: str | None
    description: str
    resolution: str | None


@dataclass(frozen=True)
class Customer:
    """Who the case is for: the contact's name and how we reach them."""

    name: str
    email: str | None
    slack: str | None
    #: Other customers of the case (from cases merged into it).
    cc: tuple[str, ...]


@dataclass(frozen=True)
class AccountFacts:
    """The customer's organisation (rules.yaml ``accounts``): the template's ``account``."""

    id: str
    name: str
    tier: str | None


@dataclass(frozen=True)
class Dates:
    """The case's dates, written in :attr:`DocumentContext.time_zone` (None: not yet)."""

    created: str | None
    resolved: str | None
    closed: str | None


@dataclass(frozen=True)
class Message:
    """One message of the public conversation."""

    #: ``incoming`` (the customer wrote) or ``outgoing`` (we answered).
    direction: str
    from_customer: bool
    at: str
    subject: str
    text: str


@dataclass(frozen=True)
class DocumentContext:
    """Everything a template sees (each field a name in it)."""

    case: CaseFacts
    customer: Customer
    #: The account hook: the case's account as configured, None for a customer with none
    #: (or an account no longer in rules.yaml; then ``account_id`` still names it).
    account: AccountFacts | None
    account_id: str | None
    dates: Dates
    #: The zone every time is written in: the case's calendar's, else UTC.
    time_zone: str
    conversation: tuple[Message, ...]
    generated_at: str

    def as_dict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def local(value: datetime | None, zone: ZoneInfo) -> str | None:
    """``2026-03-03 17:00 CET``: a time as the case's zone shows it."""
    if value is None:
        return None
    shown = value.astimezone(zone)
    return f"{shown:%Y-%m-%d %H:%M} {shown.tzname()}"


def public_conversation(activities: list[ActivityRow]) -> list[ActivityRow]:
    """The messages the customer sent (not automatic mail) and the answers sent to them (not
    those that failed for good), oldest first: all a case document shows of its activities."""

    def public(a: ActivityRow) -> bool:
        if a.kind not in MESSAGE_KINDS:
            return False
        if a.direction == Direction.INCOMING.value:
            return not a.automatic
        return (
            a.direction == Direction.OUTGOING.value
            and a.delivery_state != DeliveryState.FAILED.value
        )

    found = [a for a in activities if public(a)]
    return sorted(found, key=lambda a: (a.created_at, a.id))


def _message(activity: ActivityRow, zone: ZoneInfo) -> Message:
    incoming = activity.direction == Direction.INCOMING.value
    # A customer's mail without the quoted history under it; an answer as it was sent.
    text = (activity.body_new or activity.body_text) if incoming else activity.body_text
    return Message(
        direction=activity.direction,
        from_customer=incoming,
        at=local(activity.sent_at or activity.created_at, zone) or "",
        subject=activity.subject,
        text=text.strip(),
    )


def context_of(view: CaseView, now: datetime) -> DocumentContext:
    """What the template is given for ``view``, its times in the case's zone."""
    c, zone = view.case, view.zone
    account = view.account
    return DocumentContext(
        case=CaseFacts(
            number=c.number,
            title=c.title,
            status=c.status.value,
            status_label=c.status.label,
            priority=c.priority.value,
            origin=c.origin.value,
            category=c.category,
            reason=c.reason,
            description=c.description.strip(),
            resolution=c.resolution,
        ),
        customer=Customer(c.contact_name, c.contact_email, c.contact_slack, c.cc_contacts),
        account=AccountFacts(account.id, account.name, account.tier) if account else None,
        account_id=c.account,
        dates=Dates(
            local(c.created_at, zone), local(c.resolved_at, zone), local(c.closed_at, zone)
        ),
        time_zone=zone.key,
        conversation=tuple(_message(a, zone) for a in public_conversation(view.activities)),
        generated_at=local(now, zone) or "",
    )


# --- the template ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentTemplate:
    """A template as read: its file (for errors) and its text."""

    path: Path
    source: str


def template_path(folder: Path | None) -> Path:
    """The template in force: ``case_document.html`` in ``folder`` (rules.yaml's), else the
    packaged one."""
    mine = folder / TEMPLATE_NAME if folder is not None else None
    return mine if mine is not None and mine.is_file() else DEFAULT_TEMPLATE


def read_template(folder: Path | None) -> DocumentTemplate:
    """Read the template in force for ``folder``; a :class:`ConfigError` names the file."""
    path = template_path(folder)
    return DocumentTemplate(path, read_template_file(path, "the case document template"))


_ENV = SandboxedEnvironment(
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)


def _template_line(tb: TracebackType | None, path: Path) -> int | None:
    """The template line a rendering error happened at (Jinja's frames carry it)."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _one_line(message: str) -> str:
    return " ".join(message.split())


def render_html(view: CaseView, template: DocumentTemplate, *, now: datetime) -> str:
    """The document of ``view`` as HTML; a broken template is a one-line :class:`ConfigError`
    naming its file and line."""
    try:
        code = _ENV.compile(template.source, name=template.path.name, filename=str(template.path))
        compiled = _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None))
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"{template.path}:{exc.lineno}: case document template: {_one_line(exc.message or '')}"
        ) from None
    try:
        return compiled.render(context_of(view, now).as_dict())
    except Exception as exc:  # a template's mistake, whatever it is, is the admin's to mend
        line = _template_line(sys.exc_info()[2], template.path)
        where = f"{template.path}:{line}" if line else str(template.path)
        raise ConfigError(f"{where}: case document template: {_one_line(str(exc))}") from None


def to_pdf(html: str, base: Path) -> bytes:
    """The HTML as a PDF; files it names are read only from beside the template (``base``) or
    ``data:`` URLs — never the network."""
    import weasyprint  # heavy (Pango, fonts): loaded when a PDF is asked for

    fetcher = weasyprint.URLFetcher(allowed_protocols={"file", "data"}, timeout=5)
    pdf: bytes = weasyprint.HTML(
        string=html, base_url=f"{base.resolve().as_uri()}/", url_fetcher=fetcher
    ).write_pdf()
    return pdf
