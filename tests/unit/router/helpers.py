"""Helpers for the router tests: messages built in code, rules loaded from text."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from inbox_daemon.messages import Address, ChannelKind, InboundMessage
from inbox_daemon.router import LoadedRules, RulesErrors, load_rules_text

#: A Monday, 10:00 in Berlin (summer time).
NOW = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)


def message(**fields: Any) -> InboundMessage:
    """An email from a customer unless ``fields`` say otherwise."""
    values: dict[str, Any] = {
        "channel": ChannelKind.EMAIL,
        "mailbox": "support",
        "external_id": "1:1",
        "sender": Address(email="customer@example.org", name="Customer"),
        "subject": "Hello",
        "text": "Hi there",
    }
    values.update(fields)
    return InboundMessage(**values)


def rules_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def load(text: str) -> LoadedRules:
    return load_rules_text(rules_text(text), "rules.yaml")


def errors(text: str) -> str:
    """The full error text of loading ``text``; fails the test if it loads."""
    with pytest.raises(RulesErrors) as info:
        load_rules_text(rules_text(text), "rules.yaml")
    return str(info.value)
