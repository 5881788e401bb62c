"""Accounts and entitlements through the real `inbox-daemon` command, on both backends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.test_cli import one_line_error

RULES = """\
version: 1
users: [{id: alice, name: Alice, email: alice@ours.example}]
teams: [{id: tier1, members: [alice]}]
queues: [{id: general, team: tier1}, {id: overdrawn, team: tier1}]
business_hours:
  office:
    timezone: Europe/Berlin
    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00", thu: "09:00-17:00",
            fri: "09:00-17:00"}
sla:
  standard: {first_response: {medium: 4h}, resolve_by: {medium: 2d}, business_time: true}
entitlements:
  - {id: basic, terms: office, sla_policy: standard, allowance: {cases: 1, per: year}}
accounts:
  - {id: acme, name: Acme Corp, domains: ["*.acme.example", acme.example], tier: gold,
     entitlement: basic}
rules:
  - name: over the allowance
    when: {entitlement: exhausted}
    then: {queue: overdrawn}
default: {queue: general}
"""


def mail(n: int, sender: str) -> bytes:
    return (
        f"From: Ann <{sender}>\r\nTo: support@ours.example\r\nSubject: Printer {n}\r\n"
        f"Message-ID: <acc-{n}@customer.example>\r\nDate: Mon, 02 Mar 2026 09:00:00 +0100\r\n"
        f"\r\nIt smokes.\r\n"
    ).encode()


class Cli:
    def __init__(self, home: Path, db_url: str) -> None:
        self.home = home
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("INBOX_DAEMON_")}
        self.env["INBOX_DAEMON_DATABASE__URL"] = db_url

    def __call__(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inbox_daemon", *args], cwd=self.home, env=self.env,
            input=stdin.decode() if stdin is not None else None, capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip


def test_accounts_and_entitlements_through_the_cli(tmp_path: Path, db_url: str) -> None:
    cli = Cli(tmp_path, db_url)
    assert cli("init", ".").returncode == 0
    (tmp_path / "rules.yaml").write_text(RULES)
    assert cli("db", "upgrade").returncode == 0, cli("db", "upgrade").stderr
    check = cli("rules", "check")
    assert "1 account, 1 entitlement" in check.stdout, check.stderr

    first = cli("ingest", stdin=mail(1, "ann@eu.acme.example"))
    assert first.stdout.strip() == "created CAS-000001", first.stderr
    assert cli("ingest", stdin=mail(1, "ann@eu.acme.example")).stdout.strip() == "duplicate"
    second = cli("ingest", stdin=mail(2, "bob@acme.example"))
    assert second.stdout.strip() == "created CAS-000002", second.stderr
    stranger = cli("ingest", stdin=mail(3, "eve@example.org"))
    assert stranger.stdout.strip() == "created CAS-000003"

    listed = json.loads(cli("cases", "list", "--account", "acme", "--json").stdout)
    assert [
        (c["number"], c["account"], c["entitlement_exhausted"], c["queue"]) for c in listed
    ] == [
        ("CAS-000002", "acme", True, "overdrawn"),  # routed by `entitlement: exhausted`
        ("CAS-000001", "acme", False, "general"),
    ]
    assert "unknown account 'nope'; configured are: acme" in one_line_error(
        cli("cases", "list", "--account", "nope")
    )

    shown = cli("cases", "show", "CAS-000002")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "  account: acme (Acme Corp), tier gold, entitlement basic" in text
    assert "  entitlement: EXHAUSTED" in text
    due = next(line for line in text.splitlines() if "first response due" in line)
    assert due.endswith("(Europe/Berlin)")
    assert "entitlement_exhausted" in text  # the audit trail names the event
    data = json.loads(cli("cases", "show", "CAS-000002", "--json").stdout)["case"]
    assert (data["account"], data["account_name"], data["tier"]) == ("acme", "Acme Corp", "gold")
    assert data["time_zone"] == "Europe/Berlin"
    assert data["first_response_due"].endswith(("+01:00", "+02:00"))
    none = json.loads(cli("cases", "show", "CAS-000003", "--json").stdout)["case"]
    assert (none["account"], none["account_name"], none["entitlement_exhausted"]) == (
        None, None, False,
    )  # fmt: skip

    # Cancelling the first case gives its unit back; the next mail has one.
    cancel = cli("cases", "cancel", "CAS-000001", "--as", "alice")
    assert cancel.returncode == 0, cancel.stderr
    fourth = cli("ingest", stdin=mail(4, "ann@acme.example"))
    assert fourth.stdout.strip() == "created CAS-000004"
    again = json.loads(cli("cases", "show", "CAS-000004", "--json").stdout)["case"]
    assert (again["entitlement_exhausted"], again["queue"]) == (False, "general")


def test_rules_check_reports_each_bad_account_on_one_line(tmp_path: Path) -> None:
    bad = RULES.replace("entitlement: basic}", "entitlement: basik}\n"
                        "  - {id: globex, domains: [ACME.example]}")  # fmt: skip
    (tmp_path / "rules.yaml").write_text(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "inbox_daemon", "rules", "check", "rules.yaml"], cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "inbox-daemon: error: rules.yaml:16:19: unknown entitlement 'basik' (did you mean "
        "'basic'?)",
        "rules.yaml:17:28: domain 'acme.example' is claimed by account 'globex' and by account "
        "'acme' at line 15; give it to one of them",
    ]
