"""The agent verbs of the workspace through the real CLI, on SQLite and PostgreSQL:
who acts (``--as``, the login's agent), pick and take over, escalate by support level, link,
merge and close. Every refusal is one line and changes nothing."""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from inbox_daemon.cli import main
from tests.conftest import drop_postgres_database, make_postgres_database

LOGIN = getpass.getuser()

RULES = f"""\
version: 1
users:
  - {{id: alice, name: Alice Martin, email: alice@example.com, os_user: {LOGIN}}}
  - {{id: bob, name: Bob Chen, email: bob@example.com}}
  - {{id: carol, name: Carol Diaz, email: carol@example.com}}
  - {{id: dave, name: Dave Okafor, active: false}}
teams:
  - {{id: tier1, members: [alice, bob]}}
  - {{id: tier2, members: [carol]}}
  - {{id: experts, members: [carol]}}
queues:
  - {{id: general, team: tier1}}
  - {{id: escalations, team: tier2}}
support_levels:
  - L1
  - {{name: L2, team: tier2, queue: escalations}}
  - {{name: L3, team: experts}}
sla:
  standard:
    first_response: {{medium: 4h, high: 1h}}
    resolve_by: {{medium: 2d, high: 1d}}
    business_time: false
  urgent:
    first_response: {{medium: 30m, high: 15m}}
    resolve_by: {{medium: 4h, high: 2h}}
    business_time: false
accounts:
  - {{id: acme, name: Acme Corp, domains: [acme.example]}}
default: {{queue: general, sla: standard}}
"""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'inbox.db'}"
        return
    url = await make_postgres_database()
    try:
        yield url
    finally:
        await drop_postgres_database(url)


Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    logging = structlog.get_config()  # main() points the log at capsys's stream, closed after
    home = tmp_path / "home"
    monkeypatch.setenv("INBOX_DAEMON_DATABASE__URL", database_url)
    assert main(["init", str(home)]) == 0
    (home / "rules.yaml").write_text(RULES)
    capsys.readouterr()

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--config", str(home / "inbox-daemon.toml")])
        out = capsys.readouterr()
        return code, out.out, out.err

    yield run
    structlog.configure(**logging)


def ok(cli: Cli, *args: str) -> str:
    code, out, err = cli(*args)
    assert code == 0, err
    return out


def refused(cli: Cli, *args: str) -> str:
    """The one-line error of a refused command, after checking nothing changed."""
    number = next((a for a in args if a.startswith("CAS-")), None)
    before = show(cli, number) if number else None
    code, out, err = cli(*args)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("inbox-daemon: error: "), err
    if number:
        assert show(cli, number) == before
    return lines[0].removeprefix("inbox-daemon: error: ")


def show(cli: Cli, number: str) -> dict[str, Any]:
    return json.loads(ok(cli, "cases", "show", number, "--json"))  # type: ignore[no-any-return]


def new_case(cli: Cli, contact: str = "ann@example.com", title: str = "Printer smokes") -> str:
    return ok(cli, "cases", "new", "--title", title, "--contact", contact, "--queue", "general")[
        :-1
    ]


def audit(view: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [e for e in view["audit"] if e["action"] == action]


def test_the_actor_is_a_configured_agent_or_the_logins_agent(cli: Cli) -> None:
    number = new_case(cli)
    assert audit(show(cli, number), "create")[0]["actor_name"] == "alice"  # os_user: LOGIN
    assert "'mallory' is not an agent in rules.yaml" in refused(
        cli, "cases", "note", number, "hi", "--as", "mallory"
    )
    assert "not an active agent" in refused(cli, "cases", "note", number, "hi", "--as", "dave")
    ok(cli, "cases", "note", number, "hi", "--as", "bob")
    assert show(cli, number)["activities"][-1]["actor"] == "user:bob"


def test_pick_takes_over_only_with_force(cli: Cli) -> None:
    number = new_case(cli)
    assert "worked by bob" in ok(cli, "cases", "pick", number, "--as", "bob")
    message = refused(cli, "cases", "pick", number)  # alice, by her login
    assert message == (
        f"{number} is being worked by bob: pick it with --force to take it over (bob is told)"
    )
    assert "worked by alice" in ok(cli, "cases", "pick", number, "--force")
    picks = audit(show(cli, number), "pick")
    assert picks[-1]["actor_name"] == "alice"
    assert picks[-1]["detail"] == {"taken_over_from": "bob"}


def test_escalate_walks_the_support_levels(cli: Cli) -> None:
    number = new_case(cli)
    out = ok(cli, "cases", "escalate", number, "--reason", "needs a technician")
    assert "escalated to L2 (team tier2, queue escalations)" in out
    case = show(cli, number)
    assert case["case"]["support_level"] == 2
    assert case["case"]["status"] == "escalated"
    assert audit(case, "escalate")[-1]["detail"] == {"level": "L2", "reason": "needs a technician"}
    assert "is at L2 already" in refused(cli, "cases", "escalate", number, "--level", "L1")
    assert "unknown support level 'L9' (levels: L1, L2, L3)" in refused(
        cli, "cases", "escalate", number, "--level", "L9"
    )
    assert "unknown team 'nope'" in refused(cli, "cases", "escalate", number, "--team", "nope")
    assert "unknown queue 'nope'" in refused(cli, "cases", "escalate", number, "--queue", "nope")
    assert "unknown user 'nope'" in refused(cli, "cases", "escalate", number, "--user", "nope")
    assert "escalated to L3 (team experts, queue escalations, owner carol)" in ok(
        cli, "cases", "escalate", number, "--user", "carol", "--team", "experts"
    )
    assert "last support level (L3)" in refused(cli, "cases", "escalate", number)


def test_link_is_shown_both_ways_and_never_loops(cli: Cli) -> None:
    parent, child, grandchild = new_case(cli), new_case(cli), new_case(cli)
    assert f"parent case {parent}" in ok(cli, "cases", "link", child, "--parent", parent)
    ok(cli, "cases", "link", grandchild, "--parent", child)
    assert show(cli, child)["case"]["parent_number"] == parent
    assert show(cli, parent)["children"] == [child]
    assert f"child cases: {child}" in ok(cli, "cases", "show", parent)
    assert "would make a loop" in refused(cli, "cases", "link", parent, "--parent", grandchild)
    assert "its own parent" in refused(cli, "cases", "link", parent, "--parent", parent)
    assert "no case 'CAS-999999'" in refused(cli, "cases", "link", parent, "--parent", "CAS-999999")
    ok(cli, "cases", "unlink", child)
    assert show(cli, parent)["children"] == []
    assert "has no parent case" in refused(cli, "cases", "unlink", child)


def test_merge_moves_activities_and_customer_and_closes_the_duplicate(cli: Cli) -> None:
    keep = new_case(cli, "ann@example.com")
    dup = new_case(cli, "Ben <ben@example.com>")
    ok(cli, "cases", "note", dup, "same printer, other floor")
    assert f"merged into {keep}, status closed" in ok(cli, "cases", "merge", dup, "--into", keep)
    gone, kept = show(cli, dup), show(cli, keep)
    assert gone["case"]["status"] == "closed"
    assert gone["case"]["merged_into"] == keep
    assert gone["activities"] == []
    assert [a["body_text"] for a in kept["activities"]] == ["same printer, other floor"]
    assert kept["case"]["cc_contacts"] == ["ben@example.com"]
    assert kept["merged"] == [dup]
    assert audit(gone, "merge")
    assert audit(kept, "merged_in")[0]["detail"]["from"] == dup
    reply = ok(cli, "cases", "reply", keep, "A technician is on the way")
    activity = show(cli, keep)["activities"][-1]
    assert "queued" in reply
    assert activity["recipients"] == ["ann@example.com"]
    assert activity["cc"] == ["ben@example.com"]
    assert "into itself" in refused(cli, "cases", "merge", keep, "--into", keep)
    other = new_case(cli)
    assert "is closed and can no longer change" in refused(
        cli, "cases", "merge", other, "--into", dup
    )


def test_close_by_hand_only_when_resolved(cli: Cli) -> None:
    number = new_case(cli)
    message = refused(cli, "cases", "close", number)
    assert re.search(r"cannot change status from New to Closed", message)
    ok(cli, "cases", "resolve", number, "--resolution", "new fuser")
    assert "closed, status closed" in ok(cli, "cases", "close", number)
    assert show(cli, number)["case"]["closed_at"]


def test_a_broken_rules_file_still_lets_a_case_be_shown(cli: Cli, tmp_path: Path) -> None:
    number = new_case(cli)
    (tmp_path / "home" / "rules.yaml").write_text("version: 1\nusers: [{id: alice, nmae: A}]\n")
    code, out, err = cli("cases", "show", number)
    assert code == 0
    assert out.startswith(f"{number}  Printer smokes")
    [warning] = err.strip().splitlines()
    assert warning.startswith("inbox-daemon: warning: rules.yaml not read, so no account names")
    assert "unknown key 'nmae'" in warning
    assert "unknown key 'nmae'" in refused(cli, "cases", "note", number, "hi")  # a change: refused


def test_edit_reclassifies_and_recounts_the_due_dates(cli: Cli) -> None:
    number = new_case(cli)
    case = show(cli, number)["case"]
    assert case["sla_policy"] is None  # logged by hand: no rule ran
    out = ok(cli, "cases", "edit", number, "--sla", "standard", "--category", "hardware")
    assert "edited: category hardware, sla_policy standard" in out
    created = datetime.fromisoformat(show(cli, number)["case"]["created_at"])
    due = show(cli, number)["case"]
    assert datetime.fromisoformat(due["first_response_due"]) == created + timedelta(hours=4)
    ok(cli, "cases", "edit", number, "--priority", "high", "--account", "acme", "--as", "bob")
    view = show(cli, number)
    assert (view["case"]["priority"], view["case"]["account"]) == ("high", "acme")
    first_due = datetime.fromisoformat(view["case"]["first_response_due"])
    assert first_due == created + timedelta(hours=1)
    edits = audit(view, "edit")
    assert {e["actor_name"] for e in edits[-3:]} == {"bob"}
    assert {e["field"] for e in edits} >= {"priority", "account", "first_response_due", "category"}
    ok(cli, "cases", "edit", number, "--sla", "none", "--category", "none")
    cleared = show(cli, number)["case"]
    assert (cleared["sla_policy"], cleared["first_response_due"], cleared["category"]) == (
        None, None, None,
    )  # fmt: skip
    assert "unknown account 'nope' (accounts: acme)" in refused(
        cli, "cases", "edit", number, "--account", "nope"
    )
    assert "unknown SLA policy 'gold'" in refused(cli, "cases", "edit", number, "--sla", "gold")
    assert "nothing to change" in refused(cli, "cases", "edit", number)
    assert "has those values already" in refused(cli, "cases", "edit", number, "--priority", "high")
    assert "a case needs a title" in refused(cli, "cases", "edit", number, "--title", " ")
    ok(cli, "cases", "resolve", number, "--resolution", "fixed")
    assert "read-only" in refused(cli, "cases", "edit", number, "--priority", "low")
