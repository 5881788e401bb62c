"""The modals of a case card: Resolve (which asks what becomes of open activities), Log call and
Add task, and reading their submissions. Pure functions.

Each modal carries its case number as ``private_metadata``; its input blocks have fixed ids, so
a refusal can be shown under the field it is about (``response_action: errors``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from inbox_daemon.cases.tasks import parse_spent

Block = dict[str, Any]

#: callback_ids of the modals.
RESOLVE_VIEW = "case_resolve_modal"
CALL_VIEW = "case_call_modal"
TASK_VIEW = "case_task_modal"

RESOLUTION_BLOCK, RESOLUTION_INPUT = "resolution", "text"
#: The Resolve modal's question, asked only when the case has open activities.
OPTIONS_BLOCK, OPEN_ACTIVITIES_INPUT = "options", "open_activities"
OPEN_ACTIVITY_CHOICES = (
    ("complete", "Complete them"),
    ("cancel", "Cancel them"),
    ("fail", "Leave them open (the case is not resolved)"),
)
DIRECTION_BLOCK, DIRECTION_INPUT = "direction", "way"
CALL_TEXT_BLOCK = TASK_SUBJECT_BLOCK = "text"
TEXT_INPUT = "text"
DUE_BLOCK, DUE_INPUT = "due", "when"
ASSIGNEE_BLOCK, ASSIGNEE_INPUT = "assignee", "user"
SPENT_BLOCK, SPENT_INPUT = "spent", "time"
SPENT_HINT = "How long it took, e.g. 45m, 1h30m or 1.5h (an allowance of hours counts it)."

Policy = Literal["fail", "cancel", "complete"]


def _plain(text: str) -> dict[str, str]:
    return {"type": "plain_text", "text": text}


def _option(value: str, text: str) -> Block:
    return {"text": _plain(text), "value": value}


def _modal(callback_id: str, number: str, title: str, submit: str, blocks: list[Block]) -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": number,
        "title": _plain(f"{title} {number}"[:24]),
        "submit": _plain(submit),
        "close": _plain("Cancel"),
        "blocks": blocks,
    }


def _input(
    block_id: str, label: str, element: Block, *, optional: bool = False, hint: str = ""
) -> Block:
    block: Block = {"type": "input", "block_id": block_id, "label": _plain(label),
                    "element": element, "optional": optional}  # fmt: skip
    if hint:
        block["hint"] = _plain(hint)
    return block


def _text(action_id: str, *, multiline: bool, max_length: int) -> Block:
    return {"type": "plain_text_input", "action_id": action_id, "multiline": multiline,
            "max_length": max_length}  # fmt: skip


def resolve_modal(number: str, open_activities: int = 0) -> Block:
    """The Resolve modal: a resolution, and, when the case has ``open_activities``, whether to
    complete them, cancel them, or leave them (then the resolve is refused)."""
    blocks = [
        _input(RESOLUTION_BLOCK, "Resolution",
               _text(RESOLUTION_INPUT, multiline=True, max_length=3000)),
    ]  # fmt: skip
    if open_activities:
        many = "ies" if open_activities > 1 else "y"
        element = {
            "type": "radio_buttons",
            "action_id": OPEN_ACTIVITIES_INPUT,
            "options": [_option(value, text) for value, text in OPEN_ACTIVITY_CHOICES],
        }
        blocks.append(
            _input(OPTIONS_BLOCK, f"The case has {open_activities} open activit{many}", element)
        )
    return _modal(RESOLVE_VIEW, number, "Resolve", "Resolve", blocks)


def call_modal(number: str) -> Block:
    """Log call: who called whom, and what was said."""
    direction = {
        "type": "radio_buttons",
        "action_id": DIRECTION_INPUT,
        "options": [_option("in", "The customer called us"), _option("out", "We called")],
    }
    return _modal(CALL_VIEW, number, "Call on", "Log call", [
        _input(DIRECTION_BLOCK, "Direction", direction),
        _input(CALL_TEXT_BLOCK, "What was said", _text(TEXT_INPUT, multiline=True,
                                                         max_length=3000)),
        _spent_input(),
    ])  # fmt: skip


def task_modal(number: str) -> Block:
    """Add task: what is to be done, by when, by whom."""
    return _modal(TASK_VIEW, number, "Task on", "Add task", [
        _input(TASK_SUBJECT_BLOCK, "Task", _text(TEXT_INPUT, multiline=False, max_length=500)),
        _input(DUE_BLOCK, "Due", {"type": "datetimepicker", "action_id": DUE_INPUT},
               optional=True),
        _input(ASSIGNEE_BLOCK, "Assign to",
               {"type": "users_select", "action_id": ASSIGNEE_INPUT}, optional=True),
        _spent_input(),
    ])  # fmt: skip


def _spent_input() -> Block:
    return _input(SPENT_BLOCK, "Time spent", _text(SPENT_INPUT, multiline=False, max_length=20),
                  optional=True, hint=SPENT_HINT)  # fmt: skip


def _values(view: Mapping[str, Any]) -> Mapping[str, Any]:
    values: Mapping[str, Any] = (view.get("state") or {}).get("values") or {}
    return values


def _value(view: Mapping[str, Any], block: str, action: str) -> Mapping[str, Any]:
    found: Mapping[str, Any] = (_values(view).get(block) or {}).get(action) or {}
    return found


def _selected(view: Mapping[str, Any], block: str, action: str) -> str | None:
    option = _value(view, block, action).get("selected_option") or {}
    value = option.get("value")
    return str(value) if value else None


def asks_about_activities(view: Mapping[str, Any]) -> bool:
    """Whether a submitted Resolve modal has the open-activities question."""
    return OPTIONS_BLOCK in _values(view)


def parse_resolve_submission(view: Mapping[str, Any]) -> tuple[str, str, Policy]:
    """(case number, resolution, what becomes of open activities) from a Resolve modal."""
    text = _value(view, RESOLUTION_BLOCK, RESOLUTION_INPUT).get("value")
    chosen = _selected(view, OPTIONS_BLOCK, OPEN_ACTIVITIES_INPUT)
    policy: Policy = chosen if chosen in ("cancel", "complete") else "fail"  # type: ignore[assignment]
    return str(view.get("private_metadata") or ""), str(text or ""), policy


def parse_call_submission(view: Mapping[str, Any]) -> tuple[str, str, str]:
    """(case number, direction ``in``/``out`` or "", text) from a Log call modal."""
    direction = _selected(view, DIRECTION_BLOCK, DIRECTION_INPUT) or ""
    text = _value(view, CALL_TEXT_BLOCK, TEXT_INPUT).get("value")
    return str(view.get("private_metadata") or ""), direction, str(text or "")


def spent_of(view: Mapping[str, Any]) -> int | None:
    """The minutes a Log call or Add task modal says the activity took (None: left empty);
    CaseRuleError saying how to write it, to show under the field."""
    text = _value(view, SPENT_BLOCK, SPENT_INPUT).get("value")
    return parse_spent(str(text)) if text and str(text).strip() else None


def parse_task_submission(
    view: Mapping[str, Any],
) -> tuple[str, str, datetime | None, str | None]:
    """(case number, task, due time, assignee's Slack user id) from an Add task modal."""
    subject = _value(view, TASK_SUBJECT_BLOCK, TEXT_INPUT).get("value")
    stamp = _value(view, DUE_BLOCK, DUE_INPUT).get("selected_date_time")
    due = datetime.fromtimestamp(int(stamp), UTC) if stamp else None
    user = _value(view, ASSIGNEE_BLOCK, ASSIGNEE_INPUT).get("selected_user")
    return str(view.get("private_metadata") or ""), str(subject or ""), due, user or None
