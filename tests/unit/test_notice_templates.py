"""The notification templates: checked when loaded, overridden per reason, empty lines left out."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox_daemon.errors import ConfigError
from inbox_daemon.service.notice_templates import (
    PLACEHOLDERS,
    load_notice_templates,
    parse_notice_template,
)

VALUES = {name: f"<{name}>" for name in PLACEHOLDERS}


def test_the_shipped_template_says_who_did_what_and_leaves_out_what_is_empty() -> None:
    shipped = load_notice_templates().for_reason("assigned")
    values = {**VALUES, "told": "was assigned to you", "by": "Bob", "queue": "", "account": ""}
    subject, text = shipped.render(values)
    assert subject == "<Reason>: <title>"
    lines = text.splitlines()
    assert lines[0] == "<case_number> (<title>) was assigned to you by Bob."
    assert not any(line.startswith(("Queue:", "Account:")) for line in lines)
    assert "Priority: <priority>    Status: <status>" in lines


def test_a_file_beside_rules_yaml_replaces_one_reason_or_all(tmp_path: Path) -> None:
    (tmp_path / "notification-taken-over.txt").write_text("Subject: Yours no more: $title\n\nx\n")
    templates = load_notice_templates(tmp_path)
    assert templates.for_reason("taken over").render(VALUES)[0] == "Yours no more: <title>"
    assert templates.for_reason("assigned").render(VALUES)[0] == "<Reason>: <title>"
    (tmp_path / "notification.txt").write_text("Subject: [$case_number] $reason\n\n$told\n")
    templates = load_notice_templates(tmp_path)
    assert templates.for_reason("assigned").render(VALUES) == ("[<case_number>] <reason>", "<told>")
    assert templates.for_reason("taken over").render(VALUES)[0] == "Yours no more: <title>"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("Hello $title\n", "x.txt:1: a notification template starts with 'Subject: …'"),
        ("Subject:   \n\nx", "x.txt:1: a notification template starts with 'Subject: …'"),
        ("Subject: $titel\n\n", "x.txt:1: unknown placeholder $titel (known: $case_number,"),
        ("Subject: s\n\nline\n$by costs 5$\n", "x.txt:4: invalid placeholder after '$'"),
        ("Subject: s\n\n\n\n${agent}\n", "x.txt:5: unknown placeholder $agent"),
    ],
)
def test_a_bad_template_names_its_file_line_and_fix(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_notice_template(Path("x.txt"), text)
    assert str(caught.value).startswith(error)
    assert "\n" not in str(caught.value)


def test_a_file_for_a_reason_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notification-assign.txt").write_text("Subject: s\n\nx\n")
    with pytest.raises(ConfigError, match=r"no notification is sent for 'assign': .*assigned"):
        load_notice_templates(tmp_path)


def test_a_dollar_written_twice_is_a_dollar() -> None:
    template = parse_notice_template(Path("x.txt"), "Subject: $$5 off\n\nCosts $$5.\n")
    assert template.render(VALUES) == ("$5 off", "Costs $5.")
