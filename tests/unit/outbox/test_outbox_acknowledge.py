"""The acknowledgement decision and its templates (pure code, files in tmp_path)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from inbox_daemon.acknowledge import (
    DEFAULT_TEMPLATE,
    PLACEHOLDERS,
    expected_response,
    load_template,
    load_templates,
    should_acknowledge,
)
from inbox_daemon.errors import ConfigError
from inbox_daemon.messages import MessageFlags

OURS = frozenset({"support@example.com", "help@example.com"})
VALUES = {
    "case_number": "CAS-000042",
    "title": "Printer on fire",
    "expected_response": "by Monday 2 March 2026, 13:00 UTC",
    "customer_name": "Ann Example",
    "mailbox": "support",
}


def decide(**kw: object) -> tuple[bool, str]:
    args: dict[str, object] = {
        "flags": MessageFlags(),
        "sender": "ann@example.com",
        "our_addresses": OURS,
        "recent_automatic_count": 0,
    }
    args.update(kw)
    return should_acknowledge(**args)  # type: ignore[arg-type]


def test_a_person_writing_for_the_first_time_is_acknowledged() -> None:
    assert decide() == (True, "acknowledge")
    assert decide(recent_automatic_count=2)[0] is True


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"skip": True}, "skip_acknowledgement"),
        ({"flags": MessageFlags(auto_reply=True)}, "automatic reply"),
        ({"flags": MessageFlags(bounce=True)}, "bounce"),
        ({"flags": MessageFlags(mailing_list=True)}, "mailing list"),
        ({"flags": MessageFlags(auto_subject=True)}, "subject looks like an automatic reply"),
        ({"flags": MessageFlags(from_us=True)}, "our own addresses"),
        ({"sender": "Support@Example.com"}, "our own addresses"),
        ({"sender": "help@example.com"}, "our own addresses"),
        ({"sender": "no-reply@shop.example"}, "no-reply"),
        ({"sender": "noreply@shop.example"}, "no-reply"),
        ({"sender": "NoReply+bounce-123@shop.example"}, "no-reply"),
        ({"sender": "do-not-reply@shop.example"}, "no-reply"),
        ({"sender": "donotreply@shop.example"}, "no-reply"),
        ({"sender": "MAILER-DAEMON@mx.example"}, "no-reply"),
        ({"sender": "postmaster@mx.example"}, "no-reply"),
        ({"sender": "bounces+abc@lists.example"}, "no-reply"),
        ({"sender": ""}, "no sender"),
        ({"sender": "U0123ABCD"}, "no sender"),
        ({"recent_automatic_count": 3}, "rate limit: 3 automatic answers"),
        ({"recent_automatic_count": 7}, "rate limit"),
        ({"recent_automatic_count": 1, "limit": 1}, "limit 1"),
    ],
)
def test_no_acknowledgement(kw: dict[str, object], reason: str) -> None:
    ok, why = decide(**kw)
    assert ok is False
    assert reason in why


def test_people_whose_names_merely_look_like_machines_are_answered() -> None:
    assert decide(sender="noreen@example.com")[0] is True
    assert decide(sender="postmaster.general@example.com")[0] is False  # postmaster.*
    assert decide(sender="replies@example.com")[0] is True


def test_skip_wins_over_everything() -> None:
    ok, why = decide(skip=True, flags=MessageFlags(bounce=True), recent_automatic_count=9)
    assert (ok, why) == (False, "a routing rule set skip_acknowledgement")


def test_default_template_uses_known_placeholders_and_renders() -> None:
    template = load_template(DEFAULT_TEMPLATE)
    text = template.render(**VALUES)
    assert "CAS-000042" in text
    assert "Printer on fire" in text
    assert "Ann Example" in text
    assert "by Monday 2 March 2026, 13:00 UTC" in text
    assert "$" not in text


def test_every_placeholder_is_rendered(tmp_path: Path) -> None:
    path = tmp_path / "acknowledgement.txt"
    path.write_text("".join(f"{p}=${p} ${{{p}}};" for p in PLACEHOLDERS) + " costs $$5")
    text = load_template(path).render(**VALUES)
    for name, value in VALUES.items():
        assert f"{name}={value} {value};" in text
    assert text.endswith(" costs $5")


def test_customer_text_is_not_a_template(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("Re $title ($customer_name)")
    text = load_template(path).render(
        **{**VALUES, "title": "Costs $case_number\r\nBcc: x", "customer_name": "Ann\nB"}
    )
    assert text == "Re Costs $case_number Bcc: x (Ann B)"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("Hello $name,\n", "unknown placeholder $name"),
        ("Hello,\nyour ${ticket} is open\n", "unknown placeholder $ticket"),
        ("Hello $customer_name, $case_nmuber\n", "unknown placeholder $case_nmuber"),
    ],
)
def test_unknown_placeholder_names_file_and_placeholder(
    tmp_path: Path, content: str, needle: str
) -> None:
    path = tmp_path / "acknowledgement-support.txt"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_template(path)
    message = str(info.value)
    assert str(path) in message
    assert needle in message
    assert "known: $case_number" in message


def test_unknown_placeholder_says_where(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("line one\n  and $oops here\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:2:7: unknown placeholder $oops")):
        load_template(path)


def test_stray_dollar_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("It costs $5\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:1:10: invalid placeholder")):
        load_template(path)


def test_unreadable_or_binary_template(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_template(tmp_path / "missing.txt")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_template(binary)


def test_templates_per_mailbox_beside_rules(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text("")
    (tmp_path / "acknowledgement-sales.txt").write_text("Sales got $case_number\n")
    templates = load_templates(tmp_path)
    assert templates.for_mailbox("sales").render(**VALUES) == "Sales got CAS-000042\n"
    assert templates.for_mailbox("support").source == DEFAULT_TEMPLATE
    assert templates.for_mailbox(None).source == DEFAULT_TEMPLATE
    (tmp_path / "acknowledgement.txt").write_text("All got $case_number\n")
    templates = load_templates(tmp_path)
    assert templates.for_mailbox("support").render(**VALUES) == "All got CAS-000042\n"
    assert templates.for_mailbox("sales").render(**VALUES) == "Sales got CAS-000042\n"


def test_a_bad_mailbox_template_stops_loading(tmp_path: Path) -> None:
    bad = tmp_path / "acknowledgement-sales.txt"
    bad.write_text("Hi $who\n")
    with pytest.raises(ConfigError, match=re.escape(f"{bad}:1:4: unknown placeholder $who")):
        load_templates(tmp_path)


def test_without_folder_the_shipped_template_is_used() -> None:
    assert load_templates(None).default.source == DEFAULT_TEMPLATE


def test_expected_response_text() -> None:
    due = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    assert expected_response(due) == "by Monday 2 March 2026, 13:00 UTC"
    assert expected_response(due, ZoneInfo("Europe/Berlin")) == "by Monday 2 March 2026, 14:00 CET"
    assert (
        expected_response(due.replace(day=1, hour=23), ZoneInfo("America/New_York"))
        == "by Sunday 1 March 2026, 18:00 EST"
    )
    assert expected_response(None) == "as soon as we can"
