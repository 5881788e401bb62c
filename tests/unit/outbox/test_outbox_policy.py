"""The outbox's pure parts: the back-off schedule and the message built from a row."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from inbox_daemon.channels.email.compose import compose
from inbox_daemon.errors import PermanentDeliveryError
from inbox_daemon.messages import Address, ChannelKind
from inbox_daemon.outbox import OutboxPolicy, build_message
from inbox_daemon.store.tables import ActivityRow, CaseRow

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_backoff_doubles_from_30_seconds_up_to_an_hour() -> None:
    policy = OutboxPolicy(jitter=0)
    rng = random.Random(1)
    delays = [policy.backoff(n, rng).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_backoff_jitter_stays_within_twenty_percent() -> None:
    policy = OutboxPolicy()
    rng = random.Random(7)
    for attempts in (1, 3, 12):
        base = min(30 * 2 ** (attempts - 1), 3600)
        seen = {policy.backoff(attempts, rng).total_seconds() for _ in range(200)}
        assert min(seen) >= base * 0.8
        assert max(seen) <= base * 1.2
        assert len(seen) > 100  # really jittered


def test_policy_defaults() -> None:
    policy = OutboxPolicy()
    assert policy.max_attempts == 8
    assert policy.lease == timedelta(minutes=10)
    assert policy.max_backoff == timedelta(hours=1)


def rows(**kw: object) -> tuple[ActivityRow, CaseRow]:
    case = CaseRow(
        id=1, number="CAS-000007", title="Printer on fire", contact_email="ann@example.com",
        contact_name="Ann Example",
    )  # fmt: skip
    args: dict[str, object] = {
        "id": 11, "case_id": 1, "channel": "email", "mailbox": "support",
        "subject": "RE: Printer", "body_text": "Restart it.", "body_html": None,
        "recipients": ["ann@example.com", "bob@example.com"], "cc": ["carl@example.com"],
        "message_id": "<abc.cas-000007@support.example.com>", "in_reply_to": "<c@x>",
        "references": ["<r@x>", "<c@x>"], "automatic": False,
        "slack_channel": None, "slack_thread_ts": None,
    }  # fmt: skip
    args.update(kw)
    return ActivityRow(**args), case


def test_email_message_from_rows() -> None:
    msg = build_message(*rows())
    assert msg.channel == ChannelKind.EMAIL
    assert msg.message_id == "<abc.cas-000007@support.example.com>"
    assert msg.subject == "RE: Printer"  # neutral: the email channel renders it
    assert compose(msg, from_address="support@example.com")["Subject"] == (
        "Re: Printer [CAS-000007]"
    )
    assert msg.to == (Address("ann@example.com", "Ann Example"), Address("bob@example.com"))
    assert msg.cc == (Address("carl@example.com"),)
    assert (msg.in_reply_to, msg.references) == ("<c@x>", ("<r@x>", "<c@x>"))
    assert (msg.mailbox, msg.case_number, msg.automatic) == ("support", "CAS-000007", False)


def test_subject_falls_back_to_the_case_title() -> None:
    msg = build_message(*rows(subject="", mailbox=None))
    assert msg.subject == "Printer on fire"
    assert compose(msg, from_address="support@example.com")["Subject"] == (
        "Re: Printer on fire [CAS-000007]"
    )
    assert msg.mailbox == ""


def test_slack_message_from_rows() -> None:
    msg = build_message(
        *rows(channel="slack", recipients=["UANN"], cc=[], slack_channel="C1",
              slack_thread_ts="1700000000.000100")
    )  # fmt: skip
    assert msg.channel == ChannelKind.SLACK
    assert msg.to == (Address(slack_user="UANN"),)
    assert (msg.slack_channel, msg.slack_thread_ts) == ("C1", "1700000000.000100")


def test_a_row_of_an_unknown_channel_kind_is_refused_for_good() -> None:
    with pytest.raises(PermanentDeliveryError, match="unknown channel kind 'fax'"):
        build_message(*rows(channel="fax"))


def test_a_row_without_message_id_is_never_given_a_new_one() -> None:
    with pytest.raises(PermanentDeliveryError, match="has no id"):
        build_message(*rows(message_id=None))
