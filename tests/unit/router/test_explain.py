"""explain(): per rule and per condition, whether it held and why; and the CLI text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from inbox_daemon.messages import Address, Attachment, ChannelKind
from inbox_daemon.router import ThreadFacts, evaluate, explain, format_explanation
from inbox_daemon.router.conditions import ConditionTrace

from .helpers import NOW, load, message

HEAD = """\
version: 1
queues:
  - {id: general}
  - {id: escalations}
business_hours:
  default:
    timezone: Europe/Berlin
    hours: {mon: ["09:00-17:00"]}
"""


def reason(when: str, **fields: object) -> tuple[bool, str]:
    """The verdict and reason of a single-condition rule."""
    rules = load(HEAD + f"rules:\n  - name: r\n    when: {when}\n    then: {{tags: [x]}}\n")
    trace = explain(rules.rules, message(**fields), ThreadFacts(), NOW).rules[0].condition
    return trace.held, trace.reason


@pytest.mark.parametrize(
    ("when", "fields", "expected"),
    [
        (
            '{subject: {regex: "(?i)\\\\b(outage|down)\\\\b"}}',
            {"subject": "Major OUTAGE today"},
            (True, "subject matched regex '(?i)\\b(outage|down)\\b' at 'OUTAGE'"),
        ),
        (
            '{subject: {regex: "^x"}}',
            {},
            (False, "subject did not match regex '^x'"),
        ),
        (
            "{from_domain: [bigcorp.example]}",
            {"sender": Address(email="a@x.example")},
            (False, "from_domain: 'x.example' not in [bigcorp.example]"),
        ),
        (
            "{from_domain: [bigcorp.example]}",
            {"sender": Address(email="a@eu.bigcorp.example")},
            (True, "from_domain: 'eu.bigcorp.example' is a subdomain of 'bigcorp.example'"),
        ),
        (
            '{from: ["*@example.org"]}',
            {},
            (True, "from 'customer@example.org' matched '*@example.org'"),
        ),
        (
            "{from: [a@b.example, c@d.example]}",
            {},
            (False, "from 'customer@example.org' matched none of [a@b.example, c@d.example]"),
        ),
        ("{channel: slack}", {}, (False, "channel 'email' not in [slack]")),
        ("{mailbox: [support]}", {}, (True, "mailbox 'support' in [support]")),
        ("{subject: hello}", {}, (True, "subject contains 'hello'")),
        ("{body: bye}", {}, (False, "body does not contain 'bye'")),
        ("{body: {any: [there, x]}}", {}, (True, "body has the word 'there'")),
        ("{body: {any: [the]}}", {}, (False, "body has none of the words [the]")),
        ("{to: [a@b.example]}", {}, (False, "to: message has no to addresses")),
        (
            "{header: {name: X-Priority, equals: '1'}}",
            {"headers": {"x-priority": ("3",)}},
            (False, "header 'x-priority' is ['3'], not '1'"),
        ),
        (
            "{header: {name: List-Id, present: true}}",
            {},
            (False, "header 'list-id' is absent, expected it present"),
        ),
        (
            "{has_attachment: true}",
            {},
            (False, "message has 0 attachment(s), expected at least one"),
        ),
        (
            '{attachment_type: ["image/*"]}',
            {"attachments": (Attachment("a.pdf", "application/pdf", 1),)},
            (False, "attachment types [application/pdf] matched none of [image/*]"),
        ),
        ("{is_reply: true}", {}, (False, "is_reply is false, expected true")),
        ("{priority: [high]}", {}, (False, "priority is not set, expected one of [high]")),
        (
            "{business_hours: true}",
            {},
            (True, "2025-06-02T08:00+00:00 is within the open hours of calendar 'default'"),
        ),
        ("{}", {}, (True, "no conditions: matches every message")),
    ],
)
def test_condition_reasons(
    when: str, fields: dict[str, object], expected: tuple[bool, str]
) -> None:
    assert reason(when, **fields) == expected


def test_combinators_are_explained_with_their_parts() -> None:
    rules = load(
        HEAD
        + """\
rules:
  - name: r
    when:
      any:
        - subject: invoice
        - all: [{channel: email}, {not: {is_reply: true}}]
    then: {queue: general}
"""
    )
    trace = explain(rules.rules, message(), ThreadFacts(), NOW).rules[0].condition
    assert trace == ConditionTrace(
        "any",
        True,
        "1 of 2 conditions held",
        (
            ConditionTrace("subject", False, "subject does not contain 'invoice'"),
            ConditionTrace(
                "all",
                True,
                "all 2 conditions held",
                (
                    ConditionTrace("channel", True, "channel 'email' in [email]"),
                    ConditionTrace(
                        "not",
                        True,
                        "the condition inside did not hold",
                        (ConditionTrace("is_reply", False, "is_reply is false, expected true"),),
                    ),
                ),
            ),
        ),
    )


RULES = (
    HEAD
    + """\
rules:
  - name: tag
    when: {channel: email}
    then: {tags: [mail], priority: low}
    stop: false
  - name: outage
    when:
      subject: {regex: "(?i)down"}
    then: {queue: escalations}
  - name: later
    when: {}
    then: {queue: general}
    enabled: false
  - name: never reached
    when: {subject: site}
    then: {queue: general}
default: {queue: general, sla: null}
"""
)


def test_rule_states_and_the_decision_match_evaluate() -> None:
    rules = load(RULES)
    msg = message(subject="Site down")
    result = explain(rules.rules, msg, ThreadFacts(), NOW)
    assert [(r.name, r.matched, r.fired, r.stopped_by) for r in result.rules] == [
        ("tag", True, True, None),
        ("outage", True, True, None),
        ("never reached", True, False, "outage"),
    ]
    assert result.decision == evaluate(rules.rules, msg, ThreadFacts(), NOW)
    assert result.disabled == ("later",)
    assert dict(result.sources) == {"priority": "tag", "queue": "outage"}


def test_format_explanation() -> None:
    rules = load(RULES)
    text = format_explanation(
        explain(rules.rules, message(subject="Site down"), ThreadFacts(), NOW)
    )
    assert text == "\n".join(
        [
            f"rules version {rules.version}",
            "* rule 'tag' (line 10): FIRED, continue",
            "    [yes] channel 'email' in [email]",
            "* rule 'outage' (line 14): FIRED, stop",
            "    [yes] subject matched regex '(?i)down' at 'down'",
            "- rule 'never reached' (line 22): matched, not reached: 'outage' stopped the search",
            "    [yes] subject contains 'site'",
            "- rule 'later': disabled",
            "decision:",
            "  queue: escalations  (from outage)",
            "  priority: low  (from tag)",
            "  tags: mail",
            "  rules_fired: tag, outage",
        ]
    )


def test_format_explanation_when_nothing_fired() -> None:
    rules = load(RULES)
    sunday = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
    slack = message(channel=ChannelKind.SLACK, subject="hello")
    text = format_explanation(explain(rules.rules, slack, ThreadFacts(), sunday))
    assert text.splitlines()[-4:] == [
        "decision:",
        "  queue: general  (from default)",
        "  priority: medium  (from queue 'general')",
        "  (no rule fired)",
    ]
    assert "    [no]  channel 'slack' not in [email]" in text.splitlines()
