"""Tasks and phone calls through the real command line (``inbox_daemon.cli.main``), on SQLite
and PostgreSQL: logging them, completing and cancelling them, resolving a case that still has
some, the diagnostic task, and every refusal leaving the case as it was."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog

from inbox_daemon.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one line an error printed."""
        assert self.code == 1, (self.code, self.out, self.err)
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert lines[0].startswith("inbox-daemon: error: ")
        return lines[0]


Cli = Callable[..., Result]


@pytest.fixture
def cli(
    db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Cli]:
    """`inbox-daemon` in a folder set up by `init`, its database on the backend of ``db_url``.

    ``main`` configures logging to this test's captured stderr: the configuration before it is
    put back afterwards, so later tests do not log into a closed capture."""
    logging_before = structlog.get_config()
    for name in [k for k in os.environ if k.startswith("INBOX_DAEMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("INBOX_DAEMON_DATABASE__URL", db_url)
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return Result(code, out, err)

    try:
        assert call("init", ".").code == 0
        yield call
    finally:
        structlog.configure(**logging_before)


def ok(result: Result) -> str:
    assert result.code == 0, result.err
    return result.out.strip()


def new_case(cli: Cli, title: str = "Printer smokes") -> str:
    return ok(cli("cases", "new", "--title", title, "--contact", "ann@example.com"))


def shown(cli: Cli, number: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(cli("cases", "show", number, "--json")))
    return data


def activity_id(line: str) -> int:
    """The id in "CAS-000001: task #7 open"."""
    return int(line.split("#")[1].split()[0])


def test_tasks_and_calls_are_logged_listed_and_settled(cli: Cli) -> None:
    number = new_case(cli)
    out = ok(
        cli("cases", "task", number, "Call back about the fuser", "--due",
            "2026-03-05T17:00+01:00", "--assign", "alice", "--as", "bob")
    )  # fmt: skip
    assert out.startswith(f"{number}: task #")
    assert out.endswith(" open")
    task = activity_id(out)
    out = ok(
        cli("cases", "call", number, "--direction", "in", "Customer called, printer smokes",
            "--as", "carol")
    )  # fmt: skip
    assert out.endswith("logged (incoming)")
    call = activity_id(out)
    out = ok(cli("cases", "call", number, "--direction", "out", "Told her to unplug it"))
    outgoing_call = activity_id(out)

    view = shown(cli, number)
    by_id = {a["id"]: a for a in view["activities"]}
    t = by_id[task]
    assert (t["kind"], t["direction"], t["state"], t["subject"]) == (
        "task", "internal", "open", "Call back about the fuser",
    )  # fmt: skip
    assert (t["due_at"], t["assignee"], t["actor"]) == (
        "2026-03-05T16:00:00+00:00", "alice", "user:bob",
    )  # fmt: skip
    c = by_id[call]
    assert (c["kind"], c["direction"], c["state"], c["actor"]) == (
        "phone_call", "incoming", "completed", "user:carol",
    )  # fmt: skip
    assert c["body_text"] == "Customer called, printer smokes"
    assert by_id[outgoing_call]["direction"] == "outgoing"
    assert by_id[outgoing_call]["delivery_state"] is None  # nothing for the outbox to send
    logged = [(e["action"], e["actor_name"], e["detail"]) for e in view["audit"]
              if e["action"] in ("task", "phone_call")]  # fmt: skip
    assert logged == [
        ("task", "bob", {"activity": task, "subject": "Call back about the fuser",
                         "due": "2026-03-05T16:00:00+00:00", "assignee": "alice"}),
        ("phone_call", "carol", {"activity": call, "subject": "Customer called, printer smokes",
                                 "direction": "incoming"}),
        ("phone_call", "cli", {"activity": outgoing_call, "subject": "Told her to unplug it",
                               "direction": "outgoing"}),
    ]  # fmt: skip

    text = ok(cli("cases", "show", number))
    line = next(x for x in text.splitlines() if x.strip().startswith(f"#{task} "))
    assert line.endswith(
        "internal task open due 2026-03-05T16:00+00:00 for alice user:bob:"
        " Call back about the fuser"
    )
    assert "incoming phone_call completed user:carol: Customer called, printer smokes" in text

    assert ok(cli("cases", "activity", "complete", number, str(task), "--as", "alice")) == (
        f"{number}: activity #{task} completed"
    )
    second = activity_id(ok(cli("cases", "task", number, "Order a fuser", "--due", "2d")))
    assert ok(cli("cases", "activity", "cancel", number, str(second))).endswith("cancelled")
    view = shown(cli, number)
    states = {a["id"]: a["state"] for a in view["activities"]}
    assert (states[task], states[second]) == ("completed", "cancelled")
    settled = [(e["action"], e["actor_name"], e["detail"]["activity"]) for e in view["audit"]
               if e["action"].startswith("activity_")]  # fmt: skip
    assert settled == [("activity_completed", "alice", task), ("activity_cancelled", "cli", second)]
    # With every task settled the case resolves without a flag.
    ok(cli("cases", "resolve", number, "--resolution", "new fuser"))


def counts(cli: Cli, *numbers: str) -> list[tuple[int, int, list[str]]]:
    """Per case: its activities, its audit events, and the activities' states."""
    found = []
    for number in numbers:
        view = shown(cli, number)
        found.append(
            (len(view["activities"]), len(view["audit"]), [a["state"] for a in view["activities"]])
        )
    return found


def test_refusals_are_one_line_and_change_nothing(cli: Cli) -> None:
    number, other = new_case(cli), new_case(cli, "Other")
    task = activity_id(ok(cli("cases", "task", number, "Call back")))
    elsewhere = activity_id(ok(cli("cases", "task", other, "Not this case's")))
    before = counts(cli, number, other)

    refusals = [
        (["task", number, "x", "--assign", "nobody"], "unknown user 'nobody'"),
        (["task", number, "x", "--assign", "dave"], "user 'dave' is not active"),
        (["task", number, "x", "--due", "next tuesday"], "--due 'next tuesday' is neither"),
        (["task", number, "   "], "a task needs some text"),
        (["call", number, "--direction", "in", " "], "a call needs some text"),
        (["task", "CAS-999999", "x"], "no case 'CAS-999999'"),
        (["activity", "complete", number, str(elsewhere)], f"has no activity #{elsewhere}"),
        (["activity", "cancel", number, "424242"], "has no activity #424242"),
    ]
    for args, reason in refusals:
        assert reason in cli("cases", *args).error, args
    assert counts(cli, number, other) == before

    ok(cli("cases", "activity", "complete", number, str(task)))
    before = counts(cli, number, other)
    for verb in ("complete", "cancel"):
        err = cli("cases", "activity", verb, number, str(task)).error
        assert f"activity #{task} of {number} is already completed" in err
    assert counts(cli, number, other) == before
    assert cli("cases", "call", number, "--direction", "sideways", "x").code == 2  # argparse

    ok(cli("cases", "activity", "cancel", other, str(elsewhere)))
    ok(cli("cases", "resolve", number, "--resolution", "done"))
    ok(cli("cases", "cancel", other))
    before = counts(cli, number, other)
    assert (
        f"case {number} is resolved and read-only: reactivate it before 'task'"
        in cli("cases", "task", number, "more").error
    )
    assert (
        "reactivate it before 'call'"
        in cli("cases", "call", number, "--direction", "out", "hello").error
    )
    assert (
        f"case {other} is cancelled and can no longer change ('task' refused)"
        in cli("cases", "task", other, "more").error
    )
    assert "('call' refused)" in cli("cases", "call", other, "--direction", "in", "hi").error
    assert counts(cli, number, other) == before


def test_resolve_completes_or_cancels_open_activities_or_refuses(cli: Cli) -> None:
    number = new_case(cli)
    first = activity_id(ok(cli("cases", "task", number, "Call back")))
    second = activity_id(ok(cli("cases", "task", number, "Send invoice")))
    before = counts(cli, number)
    err = cli("cases", "resolve", number, "--resolution", "ok").error
    assert "2 open activities" in err
    assert "--complete-open-activities" in err
    assert "--cancel-open-activities" in err
    both = cli(
        "cases", "resolve", number, "--resolution", "ok",
        "--complete-open-activities", "--cancel-open-activities",
    )  # fmt: skip
    assert both.code == 2
    assert "not allowed with argument" in both.err
    assert counts(cli, number) == before

    ok(cli("cases", "resolve", number, "--resolution", "ok", "--complete-open-activities",
           "--as", "alice"))  # fmt: skip
    view = shown(cli, number)
    assert view["case"]["status"] == "resolved"
    assert [a["state"] for a in view["activities"]] == ["completed", "completed"]
    [settled] = [e for e in view["audit"] if e["action"] == "activities_completed"]
    assert (settled["actor_name"], settled["detail"]) == ("alice", {"activities": [first, second]})

    other = new_case(cli)
    ok(cli("cases", "task", other, "Call back"))
    ok(cli("cases", "resolve", other, "--resolution", "ok", "--cancel-open-activities"))
    assert [a["state"] for a in shown(cli, other)["activities"]] == ["cancelled"]


def diagnostic_tasks(view: dict[str, Any]) -> list[tuple[str | None, str, str | None]]:
    """(assignee, state, result) of the case's diagnostic tasks, oldest first."""
    return [
        (a["assignee"], a["state"], a["result"])
        for a in view["activities"]
        if a["kind"] == "task" and a["flags"].get("diagnostic")
    ]


def test_the_diagnostic_task_follows_the_case(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_DAEMON_CASES__DIAGNOSTIC_TASKS", "true")
    number = new_case(cli)
    assert diagnostic_tasks(shown(cli, number)) == []  # nobody assigned yet
    ok(cli("cases", "assign", number, "--user", "alice", "--as", "bob"))
    view = shown(cli, number)
    assert diagnostic_tasks(view) == [("alice", "open", None)]
    [opened] = [e for e in view["audit"] if e["action"] == "task"]
    assert opened["actor_name"] == "bob"
    assert opened["detail"]["subject"] == "Diagnose and resolve the case"

    ok(cli("cases", "status", number, "waiting_for_response", "--as", "alice"))
    ok(cli("cases", "status", number, "in_progress", "--as", "alice"))
    ok(cli("cases", "assign", number, "--user", "bob", "--as", "alice"))
    # An agent's own task still blocks the resolve; the diagnostic task does not.
    own = activity_id(ok(cli("cases", "task", number, "Order a fuser")))
    assert "1 open activity" in cli("cases", "resolve", number, "--resolution", "x").error
    ok(cli("cases", "activity", "complete", number, str(own)))
    ok(cli("cases", "resolve", number, "--resolution", "new fuser", "--as", "bob"))
    ok(cli("cases", "reactivate", number, "--as", "bob"))
    ok(cli("cases", "cancel", number, "--as", "bob"))
    view = shown(cli, number)
    assert diagnostic_tasks(view) == [
        ("alice", "completed", "Additional information required"),
        ("alice", "completed", "Escalation required"),
        ("bob", "completed", "Solution found"),
        ("bob", "cancelled", "Cancelled"),
    ]
    closed = [(e["action"], e["actor_name"], e["detail"].get("result")) for e in view["audit"]
              if e["action"].startswith("activity_") and "result" in e["detail"]]  # fmt: skip
    assert closed == [
        ("activity_completed", "alice", "Additional information required"),
        ("activity_completed", "alice", "Escalation required"),
        ("activity_completed", "bob", "Solution found"),
        ("activity_cancelled", "bob", "Cancelled"),
    ]
    text = ok(cli("cases", "show", number))
    assert "internal task completed for bob (Solution found)" in text


def test_no_diagnostic_task_unless_configured(cli: Cli) -> None:
    number = new_case(cli)
    ok(cli("cases", "assign", number, "--user", "alice"))
    ok(cli("cases", "pick", number, "--user", "alice"))
    kinds = [a["kind"] for a in shown(cli, number)["activities"]]
    assert kinds == ["notification"]  # alice is told of the assignment; no task is opened


def test_a_mail_routed_to_an_agent_opens_the_diagnostic_task(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Intake's transaction too: the default route gives the case to tier1 by round robin."""
    import io
    import sys

    monkeypatch.setenv("INBOX_DAEMON_CASES__DIAGNOSTIC_TASKS", "true")
    raw = (
        b"From: Ann <ann@customer.example>\r\nTo: support@example.com\r\n"
        b"Subject: Printer smokes\r\nMessage-ID: <d1@customer.example>\r\n\r\nIt smokes.\r\n"
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    ok(cli("ingest"))
    [case] = json.loads(ok(cli("cases", "list", "--json")))
    assert case["owner_user"] == "alice"
    view = shown(cli, case["number"])
    assert diagnostic_tasks(view) == [("alice", "open", None)]
    [opened] = [e for e in view["audit"] if e["action"] == "task"]
    created = next(e for e in view["audit"] if e["action"] == "create")
    assert (opened["actor_kind"], opened["actor_name"]) == (
        created["actor_kind"], created["actor_name"],
    )  # fmt: skip
