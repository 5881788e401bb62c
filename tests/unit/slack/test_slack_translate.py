"""Slack events → deliveries: classification, the InboundMessage, revisions, markup, settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inbox_daemon.channels.slack.intake import (
    EventKind,
    RecentEvents,
    classify,
    message_delivery,
    revision_of,
    slack_to_plain,
)
from inbox_daemon.channels.slack.settings import SlackSettings
from inbox_daemon.errors import ConfigError
from inbox_daemon.messages import ChannelKind

INTAKE = frozenset({"C0HELP"})
BODY = {"team_id": "T1", "event_id": "Ev1", "type": "event_callback"}


def event(**fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "type": "message",
        "channel": "C0HELP",
        "user": "U1",
        "text": "hi",
        "ts": "1710000000.000100",
    }
    values.update(fields)
    return values


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({}, EventKind.CUSTOMER),
        ({"subtype": "file_share"}, EventKind.CUSTOMER),
        ({"thread_ts": "1710000000.000001"}, EventKind.CUSTOMER),
        ({"bot_id": "B1"}, EventKind.IGNORED),
        ({"subtype": "bot_message", "user": None}, EventKind.IGNORED),
        ({"user": "U0BOT"}, EventKind.IGNORED),
        ({"subtype": "channel_join"}, EventKind.IGNORED),
        ({"channel": "C0AGENTS"}, EventKind.IGNORED),
        ({"channel": "C0AGENTS", "thread_ts": "1710000000.000001"}, EventKind.THREAD),
        (
            {
                "subtype": "message_changed",
                "message": {"user": "U1", "text": "b", "ts": "1"},
                "previous_message": {"user": "U1", "text": "a", "ts": "1"},
            },
            EventKind.EDITED,
        ),
        (
            {
                "subtype": "message_changed",
                "message": {"bot_id": "B1", "text": "b"},
                "previous_message": {"bot_id": "B1", "text": "a"},
            },
            EventKind.IGNORED,
        ),
        (
            {
                "subtype": "message_changed",
                "message": {"user": "U1", "text": "a"},
                "previous_message": {"user": "U1", "text": "a"},
            },
            EventKind.IGNORED,
        ),  # an unfurl
        (
            {
                "subtype": "message_deleted",
                "deleted_ts": "1",
                "previous_message": {"user": "U1", "text": "a"},
            },
            EventKind.DELETED,
        ),
    ],
)
def test_classify(fields: dict[str, object], kind: EventKind) -> None:
    assert classify(event(**fields), intake_channels=INTAKE, bot_user_id="U0BOT") is kind


def test_delivery_of_a_thread_reply() -> None:
    delivery = message_delivery(
        BODY,
        event(thread_ts="1710000000.000001", text="a &lt; b"),
        sender_name="Ann",
        notes=("file 'x' not taken in",),
    )
    msg = delivery.message
    assert msg is not None
    assert (delivery.channel, delivery.mailbox, delivery.external_id) == ("slack", "T1", "Ev1")
    assert msg.channel is ChannelKind.SLACK
    assert msg.message_id == "slack:C0HELP:1710000000.000100"
    assert msg.in_reply_to == ("slack:C0HELP:1710000000.000001",)
    assert (msg.slack_channel, msg.slack_ts, msg.slack_thread_ts) == (
        "C0HELP",
        "1710000000.000100",
        "1710000000.000001",
    )
    assert (msg.sender.slack_user, msg.sender.name, msg.sender.email) == ("U1", "Ann", None)
    assert msg.text == "a < b\n\n[file 'x' not taken in]"
    assert len(msg.content_hash or "") == 64
    assert msg.sent_at is not None


def test_thread_root_is_not_a_reply_and_ids_fall_back_to_channel_ts() -> None:
    root = event(thread_ts="1710000000.000100")  # a root carries its own ts as thread_ts
    delivery = message_delivery({"team_id": "T1"}, root)
    assert delivery.external_id == "C0HELP:1710000000.000100"
    assert delivery.message is not None
    assert (delivery.message.slack_thread_ts, delivery.message.in_reply_to) == (None, ())


def test_revisions() -> None:
    edit = revision_of(
        BODY,
        event(
            subtype="message_changed",
            message={"user": "U1", "text": "new", "ts": "5"},
            previous_message={"text": "old", "ts": "5"},
        ),
    )
    assert edit is not None
    assert (edit.kind, edit.ts, edit.text, edit.previous_text) == (
        EventKind.EDITED,
        "5",
        "new",
        "old",
    )
    gone = revision_of(
        BODY,
        event(
            subtype="message_deleted",
            deleted_ts="6",
            previous_message={"user": "U1", "text": "bye"},
        ),
    )
    assert gone is not None
    assert (gone.kind, gone.ts, gone.previous_text) == (EventKind.DELETED, "6", "bye")


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        ("hi <@U123>", "hi @U123"),
        ("<@U123|ann>", "@ann"),
        ("see <#C1|general>", "see #general"),
        ("<!here> <!subteam^S1|@ops>", "@here @ops"),
        ("<https://x.example/a|the page>", "the page (https://x.example/a)"),
        ("<https://x.example/a>", "https://x.example/a"),
        ("<mailto:a@b.example|a@b.example>", "a@b.example"),
        ("a &lt;b&gt; &amp; c", "a <b> & c"),
    ],
)
def test_slack_to_plain(markup: str, plain: str) -> None:
    assert slack_to_plain(markup) == plain


def test_recent_events() -> None:
    recent = RecentEvents(size=2)
    assert recent.begin("a")
    assert not recent.begin("a")  # in hand
    recent.abandon("a")
    assert recent.begin("a")  # failed: a retry is handled again
    recent.finish("a")
    assert not recent.begin("a")
    for key in ("b", "c"):
        recent.begin(key)
        recent.finish(key)
    assert recent.begin("a")  # forgotten after `size` newer ones


def test_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="bot_token"):
        SlackSettings()
    with pytest.raises(ValidationError, match="app_token"):
        SlackSettings(bot_token_env="B")
    with pytest.raises(ValidationError, match="signing_secret"):
        SlackSettings(mode="http", bot_token_env="B")
    with pytest.raises(ValidationError, match="channel ids"):
        SlackSettings(bot_token_env="B", app_token_env="A", intake_channels=["#help"])
    with pytest.raises(ValidationError, match="Extra inputs"):
        SlackSettings(bot_token_env="B", app_token_env="A", colour="red")  # type: ignore[call-arg]
    settings = SlackSettings(mode="http", bot_token_env="B", signing_secret_env="S")
    assert (settings.api_url, settings.note_marker, settings.http_port) == (
        "https://slack.com/api/",
        "!note",
        3000,
    )
    with pytest.raises(ConfigError, match="bot token"):
        settings.secrets()
    monkeypatch.setenv("B", "xoxb-1")
    monkeypatch.setenv("S", "secret")
    secrets = settings.secrets()
    assert (secrets.bot_token, secrets.signing_secret, secrets.app_token) == (
        "xoxb-1",
        "secret",
        None,
    )
    assert "xoxb" not in repr(secrets)
