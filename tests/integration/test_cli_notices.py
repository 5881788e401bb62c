"""Agents' notifications through the real command line, on SQLite and PostgreSQL: the words
come from an admin's template beside rules.yaml, ``rules check`` refuses a bad one with one
line, and a reactivated case tells its assignee."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_cli_activities import Cli, new_case, ok, shown
from test_cli_activities import cli as cli  # the fixture, re-exported


def notices(cli: Cli, number: str) -> list[dict[str, Any]]:
    return [a for a in shown(cli, number)["activities"] if a["kind"] == "notification"]


def test_an_admins_template_words_the_notification(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "notification-assigned.txt").write_text(
        "Subject: New for you: $case_number\n\n"
        "Hi, $title $told by $by.\nAccount: $account\nLevel: $level\n",
        encoding="utf-8",
    )
    number = new_case(cli)
    ok(cli("cases", "assign", number, "--user", "alice", "--as", "bob"))
    [told] = notices(cli, number)
    assert (told["recipients"], told["subject"]) == (
        ["alice@example.com"],
        f"New for you: {number}",
    )
    # no account: its line is left out; the case is at the first support level
    assert told["body_text"] == "Hi, Printer smokes was assigned to you by Bob Chen.\nLevel: L1"
    # the other reasons keep the shipped words
    ok(cli("cases", "pick", number, "--user", "bob", "--as", "bob"))
    ok(cli("cases", "pick", number, "--user", "alice", "--force", "--as", "alice"))
    taken = notices(cli, number)[-1]
    assert taken["subject"] == "Taken over: Printer smokes"
    assert taken["body_text"].startswith(f"{number} (Printer smokes) was taken over from you by")


def test_rules_check_refuses_a_bad_template_and_names_the_good_ones(
    cli: Cli, tmp_path: Path
) -> None:
    out = ok(cli("rules", "check"))
    assert "templates:" not in out  # none beside rules.yaml: the shipped ones
    (tmp_path / "notification.txt").write_text("Subject: $Reason\n\n$told by $agent\n")
    error = cli("rules", "check").error
    assert error.endswith("notification.txt:3: unknown placeholder $agent (known: $case_number, "
                          "$title, $reason, $Reason, $told, $by, $customer, $account, $priority, "
                          "$status, $queue, $team, $level)")  # fmt: skip
    (tmp_path / "notification.txt").write_text("Subject: $Reason\n\n$told by $by\n")
    assert ok(cli("rules", "check")).splitlines()[-1] == "templates: notification.txt ok"
    # a command that changes a case will not run on it broken; one that only shows does
    number = new_case(cli)
    (tmp_path / "notification.txt").write_text("no subject line\n")
    assert "starts with 'Subject: …'" in cli("cases", "assign", number, "--user", "alice").error
    assert shown(cli, number)["case"]["owner_user"] is None


def test_a_reactivated_case_tells_its_assignee(cli: Cli) -> None:
    number = new_case(cli)
    ok(cli("cases", "assign", number, "--user", "alice", "--as", "alice"))  # tells nobody
    ok(cli("cases", "resolve", number, "--resolution", "new fuser", "--as", "alice"))
    assert notices(cli, number) == []
    ok(cli("cases", "reactivate", number, "--as", "bob"))
    [told] = notices(cli, number)
    assert told["recipients"] == ["alice@example.com"]
    assert told["body_text"].startswith(f"{number} (Printer smokes) was reactivated by Bob Chen.")
