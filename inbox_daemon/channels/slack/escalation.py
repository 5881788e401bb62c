"""Block Kit builders of the Escalate modal and of the "take over" offer of a refused Pick.
Pure functions, as in :mod:`.cards`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .actions import EscalationChoices
from .cards import ACTION_TAKE_OVER, Block, escape

__all__ = [
    "ESCALATE_VIEW",
    "REASON_BLOCK",
    "EscalateForm",
    "escalate_modal",
    "parse_escalate_submission",
    "take_over_blocks",
]

ESCALATE_VIEW = "case_escalate_modal"
LEVEL_BLOCK, TEAM_BLOCK, ASSIGNEE_BLOCK, REASON_BLOCK = "level", "team", "assignee", "reason"
CHOICE = "choice"


@dataclass(frozen=True, slots=True)
class EscalateForm:
    """A submitted Escalate modal."""

    number: str
    level: str | None
    team: str | None
    #: A Slack user id.
    assignee: str | None
    reason: str


def _option(value: str, text: str) -> Block:
    return {"text": {"type": "plain_text", "text": text[:75]}, "value": value}


def _select(block_id: str, label: str, options: list[Block], placeholder: str) -> Block:
    return {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "static_select",
            "action_id": CHOICE,
            "placeholder": {"type": "plain_text", "text": placeholder},
            "options": options,
        },
    }


def escalate_modal(choices: EscalationChoices) -> Block:
    """The Escalate modal: the level (default the next), a team or an assignee, a reason."""
    blocks: list[Block] = [
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"{choices.number} is at {escape(choices.current)}."}
            ],
        }
    ]
    if choices.levels:
        options = [_option(name, name) for name in choices.levels]
        blocks.append(_select(LEVEL_BLOCK, "Support level", options, f"{choices.levels[0]}"))
    if choices.teams:
        options = [_option(team_id, name) for team_id, name in choices.teams[:100]]
        blocks.append(_select(TEAM_BLOCK, "Team", options, "The level's team"))
    blocks.append(
        {
            "type": "input",
            "block_id": ASSIGNEE_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": "Assignee"},
            "element": {"type": "users_select", "action_id": CHOICE},
        }
    )
    blocks.append(
        {
            "type": "input",
            "block_id": REASON_BLOCK,
            "label": {"type": "plain_text", "text": "Reason"},
            "element": {
                "type": "plain_text_input",
                "action_id": CHOICE,
                "multiline": True,
                "max_length": 1000,
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": ESCALATE_VIEW,
        "private_metadata": choices.number,
        "title": {"type": "plain_text", "text": f"Escalate {choices.number}"[:24]},
        "submit": {"type": "plain_text", "text": "Escalate"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def parse_escalate_submission(view: Mapping[str, Any]) -> EscalateForm:
    values: Mapping[str, Any] = (view.get("state") or {}).get("values") or {}

    def chosen(block: str) -> Mapping[str, Any]:
        return (values.get(block) or {}).get(CHOICE) or {}

    level = (chosen(LEVEL_BLOCK).get("selected_option") or {}).get("value")
    team = (chosen(TEAM_BLOCK).get("selected_option") or {}).get("value")
    assignee = chosen(ASSIGNEE_BLOCK).get("selected_user")
    reason = chosen(REASON_BLOCK).get("value")
    return EscalateForm(
        str(view.get("private_metadata") or ""),
        str(level) if level else None,
        str(team) if team else None,
        str(assignee) if assignee else None,
        str(reason or ""),
    )


def take_over_blocks(number: str, message: str, worker: str) -> list[Block]:
    """A refused Pick, with a Take over button that asks before it takes the case."""
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Take over"},
        "action_id": ACTION_TAKE_OVER,
        "value": number,
        "style": "danger",
        "confirm": {
            "title": {"type": "plain_text", "text": "Take over the case?"},
            "text": {
                "type": "mrkdwn",
                "text": f"{escape(worker)} is working {number}. They are told you took it over.",
            },
            "confirm": {"type": "plain_text", "text": "Take over"},
            "deny": {"type": "plain_text", "text": "Leave it"},
        },
    }
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": f":warning: {escape(message)}"}},
        {"type": "actions", "block_id": f"case_actions:{number}", "elements": [button]},
    ]
