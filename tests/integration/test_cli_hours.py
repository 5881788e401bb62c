"""Time spent and allowances of hours through the real command line, on SQLite and PostgreSQL:
recording the time activities took, charging a resolved case's time to its account, giving it
back on reactivation, `accounts` showing what is used, and a reclassified case carrying its
unit to its new account."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from test_cli_activities import Cli, activity_id, ok, shown
from test_cli_activities import cli as cli  # the fixture, re-exported

RULES = """\
version: 1
users:
  - {id: alice, name: Alice, email: alice@ours.example}
teams: [{id: tier1, members: [alice]}]
queues: [{id: general, team: tier1}]
entitlements:
  - {id: hours, terms: 24x7, allowance: {hours: 2, per: month}}
  - {id: one-case, terms: 24x7, allowance: {cases: 1, per: year}}
accounts:
  - {id: acme, name: Acme Corp, domains: [acme.example], entitlement: hours}
  - {id: globex, name: Globex, domains: [globex.example], entitlement: one-case}
  - {id: initech, name: Initech, domains: [initech.example]}
default: {queue: general}
"""


def setup(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    ok(cli("rules", "check"))


def case_of(cli: Cli, contact: str, title: str = "Printer smokes") -> str:
    return ok(cli("cases", "new", "--title", title, "--contact", contact, "--as", "alice"))


def actions(view: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(e["action"], e["detail"]) for e in view["audit"] if e["action"].startswith("ent")]


def usage(cli: Cli) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in json.loads(ok(cli("accounts", "--json")))}


def test_time_spent_is_charged_on_resolve_and_given_back_on_reactivate(
    cli: Cli, tmp_path: Path
) -> None:
    setup(cli, tmp_path)
    number = case_of(cli, "ann@acme.example")
    assert ok(cli("cases", "call", number, "--direction", "in", "Ann rang", "--spent", "45m",
                  "--as", "alice")).endswith("(incoming), 45m spent")  # fmt: skip
    task = activity_id(ok(cli("cases", "task", number, "Swap the fuser", "--spent", "15m")))
    assert ok(cli("cases", "activity", "complete", number, str(task), "--spent", "0.5h")).endswith(
        "completed, 30m spent"
    )
    ok(cli("cases", "note", number, "Read the logs", "--spent", "1h"))
    dropped = activity_id(ok(cli("cases", "task", number, "Order toner", "--spent", "20m")))
    ok(cli("cases", "activity", "cancel", number, str(dropped)))  # its time does not count

    view = shown(cli, number)
    assert view["case"]["time_spent_minutes"] == 45 + 15 + 30 + 60
    spent = {a["id"]: a["spent_minutes"] for a in view["activities"] if a["spent_minutes"]}
    assert (spent[task], spent[dropped]) == (45, 20)
    text = ok(cli("cases", "show", number))
    assert "  time spent: 2h 30m" in text
    assert re.search(rf"#{task} .* task completed .*45m spent", text), text

    before = usage(cli)["acme"]
    assert (before["used"], before["exhausted"]) == (0, False)
    assert before["allowance"] == {"amount": 2, "unit": "hours", "per": "month"}

    ok(cli("cases", "resolve", number, "--resolution", "new fuser", "--as", "alice"))
    charged = usage(cli)["acme"]
    assert (charged["used"], charged["exhausted"]) == (2.5, True)
    [(action, detail)] = [a for a in actions(shown(cli, number)) if a[0] != "entitlement_used"]
    assert action == "entitlement_hours_charged"
    assert (detail["minutes"], detail["used"], detail["unit"]) == (150, 150, "hours")
    line = next(x for x in ok(cli("accounts")).splitlines() if x.startswith("acme"))
    assert re.search(r"2\.5 of 2 hours this month \(\d{4}-\d{2}\): EXHAUSTED$", line), line

    # Past the allowance: the next case is created all the same, flagged.
    over = case_of(cli, "bob@acme.example")
    assert shown(cli, over)["case"]["entitlement_exhausted"] is True
    assert [a for a, _ in actions(shown(cli, over))] == ["entitlement_exhausted"]

    # Reactivated: its hours come back; the next case finds them again.
    ok(cli("cases", "reactivate", number, "--as", "alice"))
    assert usage(cli)["acme"]["used"] == 0
    assert actions(shown(cli, number))[-1] == (
        "entitlement_hours_returned",
        {"account": "acme", "entitlement": "hours", "period": charged["period"], "minutes": 150},
    )
    assert shown(cli, case_of(cli, "cy@acme.example"))["case"]["entitlement_exhausted"] is False

    # Resolved again: charged the new total, once.
    ok(cli("cases", "call", number, "--direction", "out", "Called back", "--spent", "10m"))
    ok(cli("cases", "resolve", number, "--resolution", "fixed for good"))
    assert usage(cli)["acme"]["used"] == 160 / 60


def test_bad_time_spent_is_refused_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    number = case_of(cli, "ann@acme.example")
    before = shown(cli, number)
    for text, expected in [
        ("5x", "is not a time like 45m, 2h, 1h30m or 1.5h"),
        ("0m", "is less than a minute"),
        ("25h", "more than 24h for one activity"),
    ]:
        result = cli("cases", "call", number, "--direction", "in", "rang", "--spent", text)
        assert expected in result.error  # exit 1, one line
    task = activity_id(ok(cli("cases", "task", number, "Swap the fuser")))
    refused = cli("cases", "activity", "cancel", number, str(task), "--spent", "5m")
    assert refused.code == 2  # argparse: cancelling records no time
    after = shown(cli, number)
    assert len(after["activities"]) == len(before["activities"]) + 1  # only the task
    assert after["case"]["time_spent_minutes"] == 0


def test_a_reclassified_case_carries_its_unit_to_its_new_account(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    first = case_of(cli, "ann@globex.example")  # takes globex's one unit
    second = case_of(cli, "bob@globex.example")  # none left: flagged
    assert shown(cli, second)["case"]["entitlement_exhausted"] is True
    assert usage(cli)["globex"]["used"] == 1

    # To an account without an entitlement: no flag, nothing to take.
    ok(cli("cases", "edit", second, "--account", "initech", "--as", "alice"))
    moved = shown(cli, second)
    assert moved["case"]["entitlement_exhausted"] is False
    assert ("entitlement_exhausted", "true", "false") in [
        (e["field"], e["old_value"], e["new_value"]) for e in moved["audit"] if e["field"]
    ]

    # The first case leaves globex: its unit goes back, the next globex case gets one.
    ok(cli("cases", "edit", first, "--account", "acme", "--as", "alice"))
    assert actions(shown(cli, first))[-1][0] == "entitlement_returned"
    assert actions(shown(cli, first))[-1][1]["moved_to"] == "acme"
    assert usage(cli)["globex"]["used"] == 0
    third = case_of(cli, "cy@globex.example")
    assert shown(cli, third)["case"]["entitlement_exhausted"] is False

    # Back to globex while the third holds the unit: flagged again; then the third is
    # cancelled and the first, moved back once more, takes the unit it gave back.
    ok(cli("cases", "edit", second, "--account", "globex"))
    assert shown(cli, second)["case"]["entitlement_exhausted"] is True
    ok(cli("cases", "cancel", third, "--as", "alice"))
    ok(cli("cases", "edit", first, "--account", "globex"))
    back = shown(cli, first)
    assert back["case"]["entitlement_exhausted"] is False
    assert actions(back)[-1][0] == "entitlement_used"
    assert actions(back)[-1][1]["from_account"] == "acme"
    assert usage(cli)["globex"]["used"] == 1


def test_accounts_lists_every_account_with_its_terms(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("version: 1\nqueues: [{id: general}]\n"
                                         "default: {queue: general}\n")  # fmt: skip
    assert ok(cli("accounts")) == "no accounts: rules.yaml declares them under 'accounts:'"
    setup(cli, tmp_path)
    case_of(cli, "ann@globex.example")
    lines = ok(cli("accounts")).splitlines()
    assert [line.split()[0] for line in lines] == ["acme", "globex", "initech"]
    assert lines[1].startswith("globex       Globex, entitlement one-case: 24x7, 1 of 1 case")
    assert lines[2] == "initech      Initech, no entitlement"
