"""The card's modals: what they ask, and reading back what Slack submits for them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from inbox_daemon.channels.slack import forms
from inbox_daemon.errors import CaseRuleError


def submitted(modal: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A modal as Slack submits it: its metadata, and ``values`` by block and action id."""
    ids = {b["block_id"]: b["element"]["action_id"] for b in modal["blocks"]}
    state = {block: {ids[block]: value} for block, value in values.items()}
    return {"private_metadata": modal["private_metadata"], "state": {"values": state}}


def test_resolve_asks_about_open_activities_only_when_there_are_some() -> None:
    plain = forms.resolve_modal("CAS-000042")
    assert plain["callback_id"] == forms.RESOLVE_VIEW
    assert len(plain["title"]["text"]) <= 24
    assert [b["block_id"] for b in plain["blocks"]] == ["resolution"]
    view = submitted(plain, {"resolution": {"value": "Done"}})
    assert not forms.asks_about_activities(view)
    assert forms.parse_resolve_submission(view) == ("CAS-000042", "Done", "fail")

    asking = forms.resolve_modal("CAS-000042", open_activities=1)
    question = asking["blocks"][1]
    assert question["label"]["text"] == "The case has 1 open activity"
    assert question["optional"] is False
    options = {o["value"]: o for o in question["element"]["options"]}
    assert list(options) == ["complete", "cancel", "fail"]
    for value in options:
        view = submitted(asking, {"resolution": {"value": "Done"},
                                  "options": {"selected_option": options[value]}})  # fmt: skip
        assert forms.asks_about_activities(view)
        assert forms.parse_resolve_submission(view) == ("CAS-000042", "Done", value)
    unanswered = submitted(asking, {"resolution": {"value": "x"}, "options": {}})
    assert forms.parse_resolve_submission(unanswered)[2] == "fail"


def test_log_call_round_trip() -> None:
    modal = forms.call_modal("CAS-000042")
    assert (modal["callback_id"], modal["private_metadata"]) == (forms.CALL_VIEW, "CAS-000042")
    [way, _text, spent] = modal["blocks"]
    assert (spent["block_id"], spent["optional"]) == (forms.SPENT_BLOCK, True)
    incoming = way["element"]["options"][0]
    assert incoming["value"] == "in"
    view = submitted(modal, {"direction": {"selected_option": incoming},
                             "text": {"value": "She called"},
                             "spent": {"value": "1h30m"}})  # fmt: skip
    assert forms.parse_call_submission(view) == ("CAS-000042", "in", "She called")
    assert forms.spent_of(view) == 90
    empty = submitted(modal, {})
    assert forms.parse_call_submission(empty) == ("CAS-000042", "", "")
    assert forms.spent_of(empty) is None
    assert forms.spent_of(submitted(modal, {"spent": {"value": "  "}})) is None
    with pytest.raises(CaseRuleError, match="not a time like 45m"):
        forms.spent_of(submitted(modal, {"spent": {"value": "soon"}}))


def test_add_task_round_trip() -> None:
    modal = forms.task_modal("CAS-000042")
    assert modal["callback_id"] == forms.TASK_VIEW
    assert [b["element"]["type"] for b in modal["blocks"]] == [
        "plain_text_input", "datetimepicker", "users_select", "plain_text_input",
    ]  # fmt: skip
    due = datetime(2026, 3, 5, 16, 0, tzinfo=UTC)
    view = submitted(modal, {
        "text": {"value": "Call back"},
        "due": {"selected_date_time": int(due.timestamp())},
        "assignee": {"selected_user": "U0CAROL"},
    })  # fmt: skip
    assert forms.parse_task_submission(view) == ("CAS-000042", "Call back", due, "U0CAROL")
    bare = submitted(modal, {"text": {"value": "Call back"}, "due": {}, "assignee": {}})
    assert forms.parse_task_submission(bare) == ("CAS-000042", "Call back", None, None)
