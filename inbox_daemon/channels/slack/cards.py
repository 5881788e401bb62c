"""Block Kit builders: the case card and ``/case`` answers (the card's modals: :mod:`.forms`).
Pure functions.

The card shows a case's number, title, customer, priority, status, owner, due times and the
latest customer text, with the buttons Pick, Release, Resolve, Escalate, Log call, Add task and
an Assign user picker. Every interactive element carries the case number (the actions block's id is
``case_actions:<number>``, buttons have it as their value), so a click names its case without a
lookup. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from inbox_daemon.cases.enums import Priority
from inbox_daemon.cases.model import Case

from .actions import CaseDetails, CaseListing
from .forms import (
    OPTIONS_BLOCK,
    RESOLUTION_BLOCK,
    RESOLVE_VIEW,
    parse_resolve_submission,
    resolve_modal,
)

__all__ = [
    "ACTION_ADD_TASK",
    "ACTION_ASSIGN",
    "ACTION_EDIT",
    "ACTION_ESCALATE",
    "ACTION_LOG_CALL",
    "ACTION_PICK",
    "ACTION_RELEASE",
    "ACTION_RESOLVE",
    "ACTION_TAKE_OVER",
    "CARD_ACTIONS",
    "NOTE_SHORTCUT",
    "OPTIONS_BLOCK",
    "RESOLUTION_BLOCK",
    "RESOLVE_VIEW",
    "Block",
    "card_fallback",
    "case_card",
    "case_number_of",
    "date_text",
    "details_blocks",
    "escape",
    "listing_blocks",
    "mirror_text",
    "parse_resolve_submission",
    "quote",
    "resolve_modal",
]

Block = dict[str, Any]

ACTION_PICK = "case_pick"
ACTION_RELEASE = "case_release"
ACTION_RESOLVE = "case_resolve"
ACTION_ESCALATE = "case_escalate"
ACTION_ASSIGN = "case_assign"
ACTION_LOG_CALL = "case_log_call"
ACTION_ADD_TASK = "case_add_task"
ACTION_EDIT = "case_edit"
#: A forced Pick, from the offer made when another agent works the case.
ACTION_TAKE_OVER = "case_take_over"
CARD_ACTIONS = (ACTION_PICK, ACTION_RELEASE, ACTION_RESOLVE, ACTION_ESCALATE, ACTION_LOG_CALL,
                ACTION_ADD_TASK, ACTION_EDIT, ACTION_ASSIGN, ACTION_TAKE_OVER)  # fmt: skip
ACTIONS_BLOCK = "case_actions"
#: callback_id of the "Add as internal note" message shortcut.
NOTE_SHORTCUT = "case_add_note"

MAX_SECTION = 2900  # Slack allows 3000 characters in a section's text
MAX_HEADER = 150
PRIORITY_MARK = {
    Priority.LOW: ":white_circle:",
    Priority.MEDIUM: ":large_blue_circle:",
    Priority.HIGH: ":large_orange_circle:",
    Priority.CRITICAL: ":red_circle:",
}


def escape(text: str) -> str:
    """Text safe inside Slack ``mrkdwn`` (no accidental links, mentions or markup)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quote(text: str, limit: int = 1500) -> str:
    """``text`` as a Slack block quote, shortened to ``limit`` characters."""
    lines = _cut(text.strip(), limit).splitlines() or [""]
    return "\n".join(f"&gt; {escape(line)}" for line in lines)


def date_text(when: datetime) -> str:
    """A time as Slack shows it in each reader's own time zone."""
    epoch = int(when.timestamp())
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{when.isoformat(timespec='minutes')}>"


def _customer(case: Case) -> str:
    if case.contact_slack:
        return f"<@{case.contact_slack}>"
    name = escape(case.contact_name)
    email = escape(case.contact_email or "")
    if name and email:
        return f"{name} &lt;{email}&gt;"
    return name or email or "_unknown_"


def _person(user: str | None, people: Mapping[str, str]) -> str:
    if user is None:
        return "_nobody_"
    return people.get(user) or escape(user)


def due_text(when: datetime, zone: tzinfo) -> str:
    """A due date as the calendar's zone shows it, whoever reads the card:
    ``Mon 2 Mar 14:00 CET``."""
    local = when.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %H:%M} {local.tzname()}"


def _due(case: Case, zone: tzinfo) -> str:
    parts = []
    if case.first_response_due is not None and case.first_responded_at is None:
        parts.append(f"first response by {due_text(case.first_response_due, zone)}")
    if case.resolve_by_due is not None and case.status.open:
        parts.append(f"resolve by {due_text(case.resolve_by_due, zone)}")
    return "\n".join(parts) or "—"


def moved_card(case: Case, queue_name: str, channel: str) -> list[Block]:
    """What the old card says once its case moved to a queue with another channel."""
    text = (
        f"*{case.number}* {escape(case.title)} moved to queue *{escape(queue_name)}*: <#{channel}>"
    )
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def card_fallback(case: Case) -> str:
    """The card's notification text (shown where blocks are not)."""
    return f"{case.number}: {case.title} ({case.status.label}, {case.priority.value})"


def case_card(
    case: Case,
    *,
    latest: str | None = None,
    people: Mapping[str, str] | None = None,
    queue_name: str | None = None,
    account_name: str | None = None,
    zone: tzinfo = UTC,
) -> list[Block]:
    """The card of a case. ``people`` maps agent ids to how to show them (``<@U…>``, names);
    ``account_name``: how its account is called; ``zone``: the calendar's time zone, which
    the due dates are shown in."""
    people = people or {}
    owner = _person(case.owner_user, people)
    if case.owner_team:
        owner = f"{owner} · team {escape(case.owner_team)}"
    fields = [
        f"*Customer*\n{_customer(case)}",
        f"*Priority*\n{PRIORITY_MARK[case.priority]} {case.priority.value.capitalize()}",
        f"*Status*\n{case.status.label}",
        f"*Owner*\n{owner}",
        f"*Queue*\n{escape(queue_name or case.queue or '—')}",
        f"*Due*\n{_due(case, zone)}",
    ]
    if case.account is not None:
        fields.insert(1, f"*Account*\n{escape(account_name or case.account)}")
    blocks: list[Block] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _cut(f"{case.number} · {case.title}", MAX_HEADER),
            },
        },
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
    ]
    if case.entitlement_exhausted:
        blocks.append(
            _section(
                ":warning: *Entitlement exhausted*: the account's allowance was used up when "
                "this case came in"
            )
        )
    if latest and latest.strip():
        blocks.append(_section(f"*Latest from the customer*\n{quote(latest)}"))
    if case.resolution and case.status.read_only:
        blocks.append(_section(f"*Resolution*\n{quote(case.resolution)}"))
    context = [f"`{case.number}`", f"level {case.support_level}"]
    if case.worked_by:
        context.append(f"worked by {_person(case.worked_by, people)}")
    if case.updated_at is not None:
        context.append(f"updated {date_text(case.updated_at)}")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    if case.status.open:
        blocks.append(_actions(case))
    return blocks


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, MAX_SECTION)}}


def _button(text: str, action_id: str, number: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": number,
    }
    if style:
        button["style"] = style
    return button


def _actions(case: Case) -> Block:
    elements = [
        _button("Pick", ACTION_PICK, case.number, "primary"),
        _button("Release", ACTION_RELEASE, case.number),
        _button("Resolve", ACTION_RESOLVE, case.number),
        _button("Escalate", ACTION_ESCALATE, case.number, "danger"),
        _button("Log call", ACTION_LOG_CALL, case.number),
        _button("Add task", ACTION_ADD_TASK, case.number),
        _button("Edit", ACTION_EDIT, case.number),
        {
            "type": "users_select",
            "action_id": ACTION_ASSIGN,
            "placeholder": {"type": "plain_text", "text": "Assign to…"},
        },
    ]
    return {"type": "actions", "block_id": f"{ACTIONS_BLOCK}:{case.number}", "elements": elements}


def case_number_of(action: Mapping[str, Any]) -> str | None:
    """The case number an interactive element of a card stands for."""
    value = action.get("value")
    if isinstance(value, str) and value.startswith("CAS-"):
        return value
    block = str(action.get("block_id") or "")
    prefix, _, number = block.partition(":")
    return number if prefix == ACTIONS_BLOCK and number else None


def mirror_text(who: str, text: str, *, subject: str = "", files: Sequence[str] = ()) -> str:
    """A customer message as posted into its card's thread."""
    parts = [f"*{escape(who)}* wrote:"]
    if subject:
        parts.append(f"*{escape(subject)}*")
    parts.append(quote(text, 2500) if text.strip() else "_(no text)_")
    if files:
        parts.append(":paperclip: " + ", ".join(escape(f) for f in files))
    return "\n".join(parts)


def _case_line(case: Case, people: Mapping[str, str]) -> str:
    owner = f" · {_person(case.owner_user, people)}" if case.owner_user else ""
    return (
        f"{PRIORITY_MARK[case.priority]} `{case.number}` {escape(_cut(case.title, 80))}"
        f" · {case.status.label}{owner}"
    )


def listing_blocks(listing: CaseListing) -> list[Block]:
    people = listing.people
    mine = "\n".join(_case_line(c, people) for c in listing.mine) or "_none_"
    queues = ", ".join(listing.queues) or "no queue"
    waiting = "\n".join(_case_line(c, people) for c in listing.waiting) or "_none_"
    return [
        _section(f"*Your open cases* ({len(listing.mine)})\n{mine}"),
        _section(f"*Waiting to be picked in {escape(queues)}* ({len(listing.waiting)})\n{waiting}"),
    ]


def details_blocks(details: CaseDetails) -> list[Block]:
    people = details.people
    blocks = [b for b in case_card(details.case, people=people) if b["type"] != "actions"]
    lines = [
        f"{date_text(a.at)} · {escape(a.direction)} {escape(a.kind)} · {escape(a.author)}\n"
        f"{quote(a.text, 300) if a.text.strip() else '_(no text)_'}"
        for a in details.activities
    ]
    if lines:
        blocks.append(_section("*Latest activities*\n" + "\n".join(lines)))
    return blocks
