"""The engine: every condition, every action, combinators, stop and the merge of decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from inbox_daemon.cases.directory import AssignmentStrategy
from inbox_daemon.cases.enums import AutomaticMail, Priority, Status
from inbox_daemon.messages import Address, Attachment, ChannelKind, MessageFlags
from inbox_daemon.router import RoutingDecision, ThreadFacts, evaluate, explain

from .helpers import NOW, load, message

BASE = """\
version: 1
users:
  - {id: ann}
  - {id: bob}
teams:
  - {id: tier1, members: [ann, bob], strategy: round_robin}
  - {id: tier2, members: [bob]}
queues:
  - {id: general, team: tier1}
  - {id: billing, default_priority: low}
  - {id: escalations, team: tier2, default_priority: high}
business_hours:
  default:
    timezone: Europe/Berlin
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"]}
  night:
    timezone: Europe/Berlin
    hours: {mon: ["18:00-24:00"]}
sla:
  standard: {first_response: {high: 4h}}
  gold: {first_response: {high: 1h}}
"""

#: Monday 20:00 in Berlin.
EVENING = datetime(2025, 6, 2, 18, 0, tzinfo=UTC)


def route(
    rules: str,
    msg: Any = None,
    facts: ThreadFacts | None = None,
    now: datetime = NOW,
) -> RoutingDecision:
    loaded = load(BASE + rules)
    return evaluate(loaded.rules, msg or message(), facts or ThreadFacts(), now)


def fires(
    when: str, msg: Any = None, facts: ThreadFacts | None = None, now: datetime = NOW
) -> bool:
    rules = f"rules:\n  - name: r\n    when: {when}\n    then: {{tags: [hit]}}\n"
    loaded = load(BASE + rules)
    m, f = msg or message(), facts or ThreadFacts()
    decision = evaluate(loaded.rules, m, f, now)
    # explain() must reach the same verdict as evaluate() for every condition.
    assert explain(loaded.rules, m, f, now).rules[0].matched is ("r" in decision.rules_fired)
    return decision.rules_fired == ("r",)


def att(content_type: str, *, inline: bool = False) -> Attachment:
    return Attachment("file", content_type, 10, content=b"0123456789", inline=inline)


SLACK = {"channel": ChannelKind.SLACK, "mailbox": "T01", "sender": Address(slack_user="U123")}

CASES: list[tuple[str, str, dict[str, Any], ThreadFacts, datetime, bool]] = [
    # (id, when, message fields, facts, now, fires?)
    ("channel email", "{channel: email}", {}, ThreadFacts(), NOW, True),
    ("channel slack vs email", "{channel: slack}", {}, ThreadFacts(), NOW, False),
    ("channel list", "{channel: [email, slack]}", SLACK, ThreadFacts(), NOW, True),
    ("mailbox", "{mailbox: [support, sales]}", {"mailbox": "sales"}, ThreadFacts(), NOW, True),
    ("mailbox other", "{mailbox: support}", {"mailbox": "sales"}, ThreadFacts(), NOW, False),
    (
        "from glob",
        '{from: ["*@bigcorp.example"]}',
        {"sender": Address(email="Joe@BigCorp.example")},
        ThreadFacts(),
        NOW,
        True,
    ),
    ("from glob no", '{from: ["*@bigcorp.example"]}', {}, ThreadFacts(), NOW, False),
    ("from exact", "{from: customer@example.org}", {}, ThreadFacts(), NOW, True),
    ("from slack user", "{from: [U123]}", SLACK, ThreadFacts(), NOW, True),
    (
        "from_domain",
        "{from_domain: [bigcorp.example]}",
        {"sender": Address(email="a@bigcorp.example")},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "from_domain subdomain",
        "{from_domain: [bigcorp.example]}",
        {"sender": Address(email="a@eu.bigcorp.example")},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "from_domain lookalike",
        "{from_domain: [bigcorp.example]}",
        {"sender": Address(email="a@notbigcorp.example")},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "from_domain slack sender",
        "{from_domain: [bigcorp.example]}",
        SLACK,
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "to glob",
        '{to: ["support+*@example.com"]}',
        {"to": (Address(email="x@example.com"), Address(email="Support+EU@example.com"))},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "to no",
        '{to: ["support+*@example.com"]}',
        {"to": (Address(email="support@example.com"),)},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "cc",
        "{cc: [boss@example.com]}",
        {"cc": (Address(email="boss@example.com"),)},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "cc is not to",
        "{cc: [boss@example.com]}",
        {"to": (Address(email="boss@example.com"),)},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "subject plain",
        "{subject: invoice}",
        {"subject": "Your INVOICE #3"},
        ThreadFacts(),
        NOW,
        True,
    ),
    ("subject plain no", "{subject: invoice}", {"subject": "Hello"}, ThreadFacts(), NOW, False),
    (
        "subject contains",
        "{subject: {contains: voic}}",
        {"subject": "Invoice"},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "subject word",
        "{subject: {any: [refund, chargeback]}}",
        {"subject": "Refund please"},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "subject word not part",
        "{subject: {any: [refund]}}",
        {"subject": "refunded already"},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "subject phrase",
        '{subject: {any: ["credit card"]}}',
        {"subject": "my Credit  card broke"},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "subject phrase not part",
        '{subject: {any: ["credit card"]}}',
        {"subject": "credit cards"},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "subject regex flags",
        '{subject: {regex: "^re:", flags: i}}',
        {"subject": "RE: hi"},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "subject regex case",
        '{subject: {regex: "^re:"}}',
        {"subject": "RE: hi"},
        ThreadFacts(),
        NOW,
        False,
    ),
    ("body plain", "{body: password}", {"text": "I forgot my PASSWORD"}, ThreadFacts(), NOW, True),
    ("body is not subject", "{body: password}", {"subject": "password"}, ThreadFacts(), NOW, False),
    ("body word", "{body: {any: [urgent]}}", {"text": "this is urgent!"}, ThreadFacts(), NOW, True),
    (
        "body regex multiline",
        '{body: {regex: "^order \\\\d+$", flags: m}}',
        {"text": "hello\norder 42\nbye"},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "header present",
        "{header: {name: X-Priority, present: true}}",
        {"headers": {"x-priority": ("1",)}},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "header present no",
        "{header: {name: X-Priority, present: true}}",
        {},
        ThreadFacts(),
        NOW,
        False,
    ),
    ("header absent", "{header: {name: List-Id, present: false}}", {}, ThreadFacts(), NOW, True),
    (
        "header equals",
        "{header: {name: Auto-Submitted, equals: Auto-Replied}}",
        {"headers": {"auto-submitted": ("auto-replied ",)}},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "header equals no",
        "{header: {name: Auto-Submitted, equals: manual}}",
        {"headers": {"auto-submitted": ("auto-replied",)}},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "header regex",
        '{header: {name: X-Priority, regex: "^\\\\s*[12]"}}',
        {"headers": {"x-priority": ("2 (High)",)}},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "has_attachment",
        "{has_attachment: true}",
        {"attachments": (att("image/png"),)},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "has_attachment inline only",
        "{has_attachment: true}",
        {"attachments": (att("image/png", inline=True),)},
        ThreadFacts(),
        NOW,
        False,
    ),
    ("has_attachment false", "{has_attachment: false}", {}, ThreadFacts(), NOW, True),
    (
        "attachment_type",
        '{attachment_type: ["image/*", application/pdf]}',
        {"attachments": (att("text/plain"), att("Image/PNG"))},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "attachment_type no",
        '{attachment_type: ["image/*"]}',
        {"attachments": (att("application/zip"),)},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "slack_channel",
        "{slack_channel: [C1, C2]}",
        {**SLACK, "slack_channel": "C2"},
        ThreadFacts(),
        NOW,
        True,
    ),
    (
        "slack_channel no",
        "{slack_channel: [C1]}",
        {**SLACK, "slack_channel": "C9"},
        ThreadFacts(),
        NOW,
        False,
    ),
    (
        "open cases",
        "{customer_has_open_cases: true}",
        {},
        ThreadFacts(customer_has_open_cases=True),
        NOW,
        True,
    ),
    ("open cases no", "{customer_has_open_cases: true}", {}, ThreadFacts(), NOW, False),
    ("is_reply", "{is_reply: true}", {}, ThreadFacts(is_reply=True), NOW, True),
    ("is_reply false", "{is_reply: false}", {}, ThreadFacts(is_reply=True), NOW, False),
    ("is_reopen", "{is_reopen: true}", {}, ThreadFacts(is_reopen=True), NOW, True),
    ("is_reopen no", "{is_reopen: true}", {}, ThreadFacts(), NOW, False),
    (
        "priority",
        "{priority: [high, critical]}",
        {},
        ThreadFacts(current_priority=Priority.HIGH),
        NOW,
        True,
    ),
    (
        "priority other",
        "{priority: [high]}",
        {},
        ThreadFacts(current_priority=Priority.LOW),
        NOW,
        False,
    ),
    ("priority new case", "{priority: [high]}", {}, ThreadFacts(), NOW, False),
    ("business hours open", "{business_hours: true}", {}, ThreadFacts(), NOW, True),
    ("business hours evening", "{business_hours: true}", {}, ThreadFacts(), EVENING, False),
    ("business hours closed", "{business_hours: false}", {}, ThreadFacts(), EVENING, True),
    ("named calendar", "{business_hours: {calendar: night}}", {}, ThreadFacts(), EVENING, True),
    (
        "named calendar day",
        "{business_hours: {calendar: night, open: true}}",
        {},
        ThreadFacts(),
        NOW,
        False,
    ),
    ("always", "{}", {}, ThreadFacts(), NOW, True),
    (
        "implicit and",
        "{channel: email, subject: invoice}",
        {"subject": "hello"},
        ThreadFacts(),
        NOW,
        False,
    ),
    ("implicit and both", "{channel: email, subject: hello}", {}, ThreadFacts(), NOW, True),
    ("all", "{all: [{channel: email}, {subject: hello}]}", {}, ThreadFacts(), NOW, True),
    ("all one fails", "{all: [{channel: email}, {subject: bye}]}", {}, ThreadFacts(), NOW, False),
    ("any", "{any: [{channel: slack}, {subject: hello}]}", {}, ThreadFacts(), NOW, True),
    ("any none", "{any: [{channel: slack}, {subject: bye}]}", {}, ThreadFacts(), NOW, False),
    ("not", "{not: {channel: slack}}", {}, ThreadFacts(), NOW, True),
    ("not holds", "{not: {channel: email}}", {}, ThreadFacts(), NOW, False),
    (
        "nested",
        "{any: [{not: {subject: hello}}, {all: [{is_reply: true}, {channel: email}]}]}",
        {},
        ThreadFacts(is_reply=True),
        NOW,
        True,
    ),
]


@pytest.mark.parametrize(
    ("when", "fields", "facts", "now", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_condition(
    when: str, fields: dict[str, Any], facts: ThreadFacts, now: datetime, expected: bool
) -> None:
    assert fires(when, message(**fields), facts, now) is expected


@pytest.mark.parametrize(
    ("flags", "automatic"),
    [
        (MessageFlags(), False),
        (MessageFlags(auto_reply=True), True),
        (MessageFlags(bounce=True), True),
        (MessageFlags(mailing_list=True), True),
        (MessageFlags(auto_subject=True), False),  # a subject alone is no proof
        (MessageFlags(from_us=True), False),
    ],
)
def test_automatic_condition_reads_the_headers_flags(flags: MessageFlags, automatic: bool) -> None:
    assert fires("{automatic: true}", message(flags=flags)) is automatic
    assert fires("{automatic: false}", message(flags=flags)) is not automatic


def test_every_action_reaches_the_decision() -> None:
    decision = route(
        """\
rules:
  - name: everything
    when: {}
    then:
      queue: billing
      team: tier2
      user: ann
      strategy: least_open
      priority: critical
      category: billing
      reason: refund
      tags: [a, b, a]
      sla: gold
      status: escalated
      note: call back
      skip_acknowledgement: true
      automatic_mail: case
"""
    )
    assert decision == RoutingDecision(
        queue="billing",
        team="tier2",
        user="ann",
        strategy=AssignmentStrategy.LEAST_OPEN,
        priority=Priority.CRITICAL,
        category="billing",
        reason="refund",
        tags=("a", "b"),
        sla="gold",
        status=Status.ESCALATED,
        notes=("call back",),
        skip_acknowledgement=True,
        automatic_mail=AutomaticMail.CASE,
        rules_fired=("everything",),
        rules_version=decision.rules_version,
    )
    assert len(decision.rules_version) == 8
    int(decision.rules_version, 16)


STOPPING = """\
rules:
  - name: first
    when: {subject: hello}
    then: {queue: billing, tags: [one]}
  - name: second
    when: {}
    then: {queue: escalations, priority: high, tags: [two]}
"""


def test_stop_true_first_match_wins() -> None:
    decision = route(STOPPING)
    assert decision.rules_fired == ("first",)
    assert decision.queue == "billing"
    assert decision.tags == ("one",)


def test_stop_is_the_default_and_a_non_matching_rule_does_not_stop() -> None:
    decision = route(STOPPING, message(subject="bye"))
    assert decision.rules_fired == ("second",)
    assert (decision.queue, decision.priority, decision.tags) == (
        "escalations",
        Priority.HIGH,
        ("two",),
    )


def test_stop_false_accumulates_tags_and_notes_and_fills_unset_fields_only() -> None:
    decision = route(
        """\
rules:
  - name: tagger
    when: {}
    then: {tags: [seen, vip], priority: high, note: first note}
    stop: false
  - name: also
    when: {channel: email}
    then: {tags: [vip, email], priority: low, category: sales, note: second note}
    stop: false
  - name: router
    when: {channel: email}
    then: {queue: billing, category: other, tags: [routed]}
  - name: never
    when: {}
    then: {queue: general, tags: [never]}
"""
    )
    assert decision.rules_fired == ("tagger", "also", "router")
    assert decision.tags == ("seen", "vip", "email", "routed")
    assert decision.notes == ("first note", "second note")
    assert decision.priority is Priority.HIGH  # the first rule that set it
    assert decision.category == "sales"  # "router" came later
    assert decision.queue == "billing"


def test_priority_condition_sees_the_priority_an_earlier_rule_set() -> None:
    rules = """\
rules:
  - name: vip
    when: {from_domain: [bigcorp.example]}
    then: {priority: critical}
    stop: false
  - name: page
    when: {priority: [critical]}
    then: {queue: escalations}
"""
    vip = route(rules, message(sender=Address(email="a@bigcorp.example")))
    assert vip.rules_fired == ("vip", "page")
    assert vip.queue == "escalations"
    assert route(rules).rules_fired == ()


def test_default_applies_when_nothing_matched() -> None:
    decision = route(
        """\
rules:
  - name: slack only
    when: {channel: slack}
    then: {queue: escalations}
default: {queue: general, sla: standard, tags: [unrouted], note: nobody matched}
"""
    )
    assert decision.rules_fired == ()
    assert (decision.queue, decision.team, decision.sla) == ("general", "tier1", "standard")
    assert decision.tags == ("unrouted",)
    assert decision.notes == ("nobody matched",)


def test_default_fills_only_what_no_rule_set() -> None:
    decision = route(
        """\
rules:
  - name: billing
    when: {}
    then: {queue: billing, tags: [billing]}
default: {queue: general, sla: standard, priority: medium, tags: [default]}
"""
    )
    assert decision.queue == "billing"
    assert decision.sla == "standard"
    assert decision.priority is Priority.MEDIUM
    assert decision.tags == ("billing", "default")


def test_without_rules_or_default_nothing_is_decided() -> None:
    decision = route("")
    assert decision == RoutingDecision(rules_version=decision.rules_version)


def test_team_and_priority_come_from_the_queue_when_unset() -> None:
    rules = """\
rules:
  - name: esc
    when: {}
    then: {queue: escalations}
"""
    new_case = route(rules)
    assert (new_case.team, new_case.priority) == ("tier2", Priority.HIGH)
    existing = route(rules, facts=ThreadFacts(current_priority=Priority.LOW))
    assert (existing.team, existing.priority) == ("tier2", None)


def test_a_rule_team_beats_the_queue_team() -> None:
    decision = route(
        """\
rules:
  - name: esc
    when: {}
    then: {queue: escalations, team: tier1, priority: low}
"""
    )
    assert (decision.team, decision.priority) == ("tier1", Priority.LOW)


def test_queue_without_team_leaves_team_unset() -> None:
    decision = route("rules:\n  - {name: b, when: {}, then: {queue: billing}}\n")
    assert (decision.team, decision.priority) == (None, Priority.LOW)


def test_disabled_rules_never_fire() -> None:
    decision = route(
        """\
rules:
  - name: off
    enabled: false
    when: {}
    then: {queue: escalations}
  - name: on
    when: {}
    then: {queue: billing}
"""
    )
    assert decision.rules_fired == ("on",)


def test_decision_carries_the_version_of_the_file() -> None:
    one = load(BASE + "rules: []\n")
    two = load(BASE + "rules: []\n# a comment changes the version\n")
    assert one.version != two.version
    decision = evaluate(two.rules, message(), ThreadFacts(), NOW)
    assert decision.rules_version == two.version


def test_evaluation_needs_an_aware_now_only_for_business_hours() -> None:
    naive = datetime(2025, 6, 2, 10, 0)
    assert route("rules:\n  - {name: r, when: {}, then: {queue: billing}}\n", now=naive).queue == (
        "billing"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        route(
            "rules:\n  - {name: r, when: {business_hours: true}, then: {queue: billing}}\n",
            now=naive,
        )
