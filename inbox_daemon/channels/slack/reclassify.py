"""Block Kit builders of the Edit (reclassify) modal: title, priority, category, reason and,
where rules.yaml has them, account and SLA policy, filled in with the case's values. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inbox_daemon.cases.enums import Priority

from .actions import EditChoices
from .cards import Block

__all__ = ["EDIT_VIEW", "FIELDS", "edit_modal", "parse_edit_submission"]

EDIT_VIEW = "case_edit_modal"
VALUE = "value"
#: The form's blocks: the case field each stands for.
FIELDS = ("title", "priority", "category", "reason", "account", "sla_policy")
#: The option that clears an optional choice.
NO_CHOICE = "none"


def _text(text: str) -> Block:
    return {"type": "plain_text", "text": text[:75]}


def _input(block: str, label: str, initial: str | None, *, optional: bool = True) -> Block:
    element: Block = {"type": "plain_text_input", "action_id": VALUE, "max_length": 500}
    if initial:
        element["initial_value"] = initial
    return {"type": "input", "block_id": block, "optional": optional, "label": _text(label),
            "element": element}  # fmt: skip


def _select(block: str, label: str, options: list[tuple[str, str]], initial: str | None) -> Block:
    choices = [{"text": _text(text), "value": value} for value, text in options[:100]]
    element: Block = {"type": "static_select", "action_id": VALUE, "options": choices}
    chosen = next((c for c in choices if c["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return {"type": "input", "block_id": block, "optional": True, "label": _text(label),
            "element": element}  # fmt: skip


def edit_modal(choices: EditChoices) -> Block:
    case = choices.case
    blocks = [
        _input("title", "Title", case.title, optional=False),
        _select("priority", "Priority", [(p.value, p.value.capitalize()) for p in Priority],
                case.priority.value),
        _input("category", "Category", case.category),
        _input("reason", "Reason", case.reason),
    ]  # fmt: skip
    if choices.accounts:
        options = [(NO_CHOICE, "No account"), *choices.accounts]
        blocks.append(_select("account", "Account", options, case.account or NO_CHOICE))
    if choices.sla_policies:
        options = [(NO_CHOICE, "No SLA"), *((p, p) for p in choices.sla_policies)]
        blocks.append(_select("sla_policy", "SLA policy", options, case.sla_policy or NO_CHOICE))
    return {
        "type": "modal",
        "callback_id": EDIT_VIEW,
        "private_metadata": case.number,
        "title": _text(f"Edit {case.number}"[:24]),
        "submit": _text("Save"),
        "close": _text("Cancel"),
        "blocks": blocks,
    }


def parse_edit_submission(view: Mapping[str, Any]) -> tuple[str, dict[str, str | None]]:
    """(case number, field -> value) of the blocks the form had; None: left empty."""
    state: Mapping[str, Any] = (view.get("state") or {}).get("values") or {}
    values: dict[str, str | None] = {}
    for name in FIELDS:
        if name not in state:
            continue
        element = (state[name] or {}).get(VALUE) or {}
        if element.get("type") == "static_select":
            chosen = (element.get("selected_option") or {}).get("value")
            values[name] = None if chosen in (None, NO_CHOICE) else str(chosen)
        else:
            text = element.get("value")
            values[name] = str(text).strip() or None if text is not None else None
    return str(view.get("private_metadata") or ""), values
