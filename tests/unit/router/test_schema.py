"""Loading rules.yaml: the example file, and every error with its file, line and column."""

from __future__ import annotations

from pathlib import Path

import holidays
import pytest

from inbox_daemon.cases.directory import AssignmentStrategy, Directory, Queue
from inbox_daemon.cases.enums import Priority
from inbox_daemon.errors import RulesError
from inbox_daemon.router import (
    RulesErrors,
    check_queue_removal,
    load_rules,
    load_rules_text,
    summary,
)

from .helpers import errors, load

EXAMPLE = Path(__file__).resolve().parents[3] / "rules.yaml"


def test_the_example_rules_file_loads() -> None:
    loaded = load_rules(EXAMPLE)
    assert set(loaded.directory.queues) == {"general", "billing", "escalations"}
    assert loaded.directory.teams["tier1"].strategy is AssignmentStrategy.ROUND_ROBIN
    assert [r.name for r in loaded.rules.rules] == [
        "over the allowance",
        "outage reports",
        "newsletters and auto-replies",
        "tag attachments",
        "urgent header",
        "after-hours from Slack",
        "reopened cases",
        "billing questions",
    ]
    outage = loaded.rules.rules[1]
    assert (outage.actions.queue, outage.actions.team, outage.actions.priority) == (
        "escalations",
        "tier2",
        Priority.CRITICAL,
    )
    assert outage.stop is True
    assert loaded.default.queue == "general"
    assert set(loaded.sla) == {"standard", "urgent"}
    assert loaded.default_calendar == "default"
    assert summary(loaded) == (
        f"{EXAMPLE}: OK — 4 users, 3 teams, 3 queues, 8 rules, 2 SLA policies, 1 calendar, "
        f"2 accounts, 2 entitlements, version {loaded.version}"
    )


def test_a_minimal_file_builds_the_directory() -> None:
    loaded = load(
        """
        version: 1
        users:
          - {id: ann, name: Ann, email: ann@example.com, slack_id: U1}
          - {id: bob, active: false}
        teams:
          - {id: t, members: [ann, bob], strategy: least_open}
        queues:
          - {id: q, name: Queue, team: t, slack_channel: C1, default_priority: high}
        """
    )
    d = loaded.directory
    assert (d.users["ann"].name, d.users["ann"].email, d.users["ann"].slack_id) == (
        "Ann",
        "ann@example.com",
        "U1",
    )
    assert (d.users["bob"].name, d.users["bob"].active) == ("bob", False)
    assert d.teams["t"].members == ("ann", "bob")
    assert d.queues["q"] == Queue("q", "Queue", "t", "C1", Priority.HIGH)
    assert summary(loaded) == (
        f"rules.yaml: OK — 2 users, 1 team, 1 queue, 0 rules, 0 SLA policies, "
        f"version {loaded.version}"
    )


def test_sla_policies_and_their_calendars() -> None:
    loaded = load(
        """
        version: 1
        business_hours:
          office:
            timezone: Europe/Berlin
            hours: {mon: "09:00-17:00"}
        sla:
          std:
            first_response: {high: 1h30m, low: 2d}
            resolve_by: {high: 1w 2d}
            business_time: true
          fast:
            first_response: {critical: 30m}
        """
    )
    from datetime import timedelta

    from inbox_daemon.cases.sla import SlaTarget

    std = loaded.sla["std"]
    assert dict(std.first_response) == {  # days kept apart: business days, not 24 open hours
        Priority.HIGH: SlaTarget(time=timedelta(hours=1, minutes=30)),
        Priority.LOW: SlaTarget(days=2),
    }
    assert dict(std.resolve_by) == {Priority.HIGH: SlaTarget(weeks=1, days=2)}
    assert std.business_time is True
    assert loaded.sla["fast"].business_time is False
    assert loaded.sla_calendars == {"std": "office", "fast": None}
    assert loaded.calendar_for("std") is loaded.calendars["office"]
    # calendar-time policies count around the clock
    from datetime import UTC, datetime

    sunday_night = datetime(2025, 6, 1, 23, 0, tzinfo=UTC)
    assert loaded.calendar_for("fast").is_open(sunday_night)
    assert not loaded.calendar_for("std").is_open(sunday_night)


def test_holidays_reach_the_calendars() -> None:
    loaded = load(
        """
        version: 1
        business_hours:
          default:
            timezone: UTC
            hours: {mon: "00:00-24:00", tue: "00:00-24:00"}
            holidays: [{name: Own, date: 2025-06-03}]
        holidays:
          - {name: Shared, date: 2025-06-02}
          - {name: Range, from: 2025-06-09, to: 2025-06-10}
        """
    )
    from datetime import date

    cal = loaded.calendars["default"]
    assert cal.is_holiday(date(2025, 6, 2))
    assert cal.is_holiday(date(2025, 6, 3))
    assert cal.is_holiday(date(2025, 6, 10))
    assert not cal.is_holiday(date(2025, 6, 16))


# -- errors --------------------------------------------------------------------------------------


def test_unknown_team_in_a_rule_says_did_you_mean() -> None:
    text = """
        version: 1
        teams:
          - {id: billing, name: Billing}
        rules:
          - name: outage reports
            when:
              subject: outage
            then: {queue: general, team: billng}
        queues:
          - {id: general}
        """
    assert errors(text) == "rules.yaml:8:34: unknown team 'billng' (did you mean 'billing'?)"


def test_yaml_syntax_error_has_its_position() -> None:
    text = """
        version: 1
        rules:
          - name: x
            when: {subject: [unclosed}
        """
    assert errors(text) == (
        "rules.yaml:4:30: YAML syntax error: expected ',' or ']', but got '}' "
        "(while parsing a flow sequence)"
    )


def test_errors_are_raised_as_rules_errors_with_every_error() -> None:
    text = """
        version: 1
        users:
          - {id: ann, nmae: Ann}
          - {id: bob, active: 3}
        """
    with pytest.raises(RulesErrors) as info:
        load_rules_text(text.replace("\n        ", "\n").lstrip(), "x/rules.yaml")
    exc = info.value
    assert isinstance(exc, RulesError)
    assert [(e.file, e.line, e.column) for e in exc.errors] == [
        ("x/rules.yaml", 3, 15),
        ("x/rules.yaml", 4, 23),
    ]
    assert (exc.file, exc.line, exc.column) == ("x/rules.yaml", 3, 15)
    assert str(exc) == "\n".join(str(e) for e in exc.errors)


def test_unknown_keys_name_the_allowed_keys() -> None:
    text = """
        version: 1
        userz: []
        users:
          - {id: ann, nmae: Ann}
        rules:
          - name: r
            when: {all: [{sujbect: x}]}
            then: {queue: q}
            stopp: false
        queues: [{id: q}]
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:2:1: unknown key 'userz' (did you mean 'users'?); expected one of: "
            "version, users, teams, queues, support_levels, business_hours, holidays, sla, "
            "accounts, entitlements, rules, default",
            "rules.yaml:4:15: unknown key 'nmae' (did you mean 'name'?); expected one of: "
            "id, name, email, slack_id, os_user, active",
            "rules.yaml:7:19: unknown key 'sujbect' (did you mean 'subject'?); expected one of: "
            "channel, mailbox, from, from_domain, to, cc, subject, body, header, has_attachment, "
            "automatic, "
            "attachment_type, slack_channel, customer_has_open_cases, is_reply, is_reopen, "
            "priority, account, tier, entitlement, business_hours, all, any, not",
            "rules.yaml:9:5: unknown key 'stopp' (did you mean 'stop'?); expected one of: "
            "name, description, enabled, when, then, stop",
        ]
    )


def test_wrong_types() -> None:
    text = """
        version: 1
        users: {id: ann}
        teams:
          - {id: [t], members: ann}
          - {id: u, name: 42}
        queues:
          - {id: q, team: true}
        rules:
          - {name: r, when: {has_attachment: maybe, subject: [x]}, then: {tags: [1, {a: b}]}}
        default: [queue]
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:2:8: expected a list, got a mapping",
            "rules.yaml:4:10: expected a string, got a list",
            "rules.yaml:7:19: expected a string, got true (put it in quotes to mean the text)",
            "rules.yaml:9:38: expected true or false, got 'maybe'",
            "rules.yaml:9:54: expected a string or a mapping with one of contains, any, regex; "
            "got a list",
            "rules.yaml:9:77: expected a string, got a mapping",
            "rules.yaml:10:10: expected a mapping, got a list",
        ]
    )


def test_numbers_are_accepted_as_names() -> None:
    loaded = load("version: 1\nusers: [{id: 1001, name: 42}]\n")
    assert loaded.directory.users["1001"].name == "42"


def test_missing_required_keys() -> None:
    text = """
        version: 1
        users:
          - name: Ann
        rules:
          - name: r
            when: {}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:3:5: missing required key 'id'",
            "rules.yaml:5:5: missing required key 'then'",
        ]
    )


def test_unknown_references_everywhere() -> None:
    text = """
        version: 1
        users: [{id: alice}]
        teams:
          - {id: support, members: [alice, alcie]}
        queues:
          - {id: general, team: suport}
        sla:
          gold: {first_response: {high: 1h}}
        rules:
          - name: r
            when: {subject: x}
            then: {queue: genral, user: alicia, sla: golden}
        default: {queue: nowhere, team: support}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:4:36: team 'support' member 'alcie' is not a user (did you mean 'alice'?)",
            "rules.yaml:6:25: unknown team 'suport' (did you mean 'support'?)",
            "rules.yaml:12:19: unknown queue 'genral' (did you mean 'general'?)",
            "rules.yaml:12:33: unknown user 'alicia' (did you mean 'alice'?)",
            "rules.yaml:12:46: unknown SLA policy 'golden' (did you mean 'gold'?)",
            "rules.yaml:13:18: unknown queue 'nowhere'",
        ]
    )


def test_a_broken_item_is_not_reported_again_as_unknown() -> None:
    text = """
        version: 1
        teams:
          - {id: billing, strategy: fastest}
        rules:
          - {name: r, when: {}, then: {team: billing}}
        """
    assert errors(text) == (
        "rules.yaml:3:29: unknown strategy 'fastest'; expected one of: round_robin, "
        "least_open, none"
    )


def test_bad_regexes_give_the_regex_error() -> None:
    text = """
        version: 1
        rules:
          - name: r
            when:
              any:
                - subject: {regex: "(?i)(outage"}
                - header: {name: X-Spam, regex: "*high", flags: i}
                - body: {regex: "a", flags: z}
            then: {tags: [x]}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:6:28: bad regex '(?i)(outage': missing ), unterminated subpattern "
            "at position 4",
            "rules.yaml:7:41: bad regex '*high': nothing to repeat at position 0",
            "rules.yaml:8:37: unknown regex flag 'z'; expected letters from 'imsxa'",
        ]
    )


def test_text_conditions_take_exactly_one_test() -> None:
    text = """
        version: 1
        rules:
          - name: r
            when:
              subject: {contains: a, any: [b]}
              body: {contains: a, flags: i}
              header: {name: X}
            then: {tags: [x]}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:5:7: expected exactly one of contains, any, regex; got contains, any",
            "rules.yaml:6:7: 'flags' only applies to 'regex'",
            "rules.yaml:7:7: header 'X': expected exactly one of present, equals, regex",
        ]
    )


def test_duplicates() -> None:
    text = """
        version: 1
        users:
          - {id: ann}
          - {id: ann}
        queues: [{id: q}, {id: q}]
        rules:
          - {name: same, when: {subject: a}, then: {queue: q}}
          - {name: same, when: {subject: b}, then: {queue: q}}
        sla:
          gold: {}
          gold: {}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:4:10: duplicate user id 'ann' (first defined at line 3)",
            "rules.yaml:5:24: duplicate queue id 'q' (first defined at line 5)",
            "rules.yaml:8:12: duplicate rule name 'same' (first defined at line 7)",
            "rules.yaml:11:3: duplicate key 'gold' (first given at line 10, column 3)",
        ]
    )


def test_overlapping_holidays() -> None:
    text = """
        version: 1
        business_hours:
          default:
            timezone: UTC
            hours: {mon: "09:00-17:00"}
            holidays:
              - {name: Christmas, date: 2025-12-25}
        holidays:
          - {name: Winter break, from: 2025-12-22, to: 2025-12-31}
          - {name: New year, date: 2026-01-01}
          - {name: Hogmanay, date: 2025-12-31}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:7:9: holiday 'Christmas' (2025-12-25) overlaps 'Winter break' "
            "(2025-12-22 to 2025-12-31) at line 9",
            "rules.yaml:11:5: holiday 'Hogmanay' (2025-12-31) overlaps 'Winter break' "
            "(2025-12-22 to 2025-12-31) at line 9",
        ]
    )


def test_bad_holidays() -> None:
    text = """
        version: 1
        holidays:
          - {name: A, date: 2025-13-01}
          - {name: B, from: 2025-12-24}
          - {name: C, from: 2025-12-24, to: 2025-12-20}
          - {name: D, date: 2025-01-01, to: 2025-01-02}
          - {name: E, date: tomorrow}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:3:21: bad value '2025-13-01': month must be in 1..12",
            "rules.yaml:4:5: holiday 'B' needs 'date', or both 'from' and 'to'",
            "rules.yaml:5:5: holiday 'C' ends (2025-12-20) before it starts (2025-12-24)",
            "rules.yaml:6:5: holiday 'D': give either 'date' or 'from' and 'to'",
            "rules.yaml:7:21: expected a date (YYYY-MM-DD), got 'tomorrow'",
        ]
    )


def test_bad_durations() -> None:
    text = """
        version: 1
        sla:
          gold:
            first_response: {high: 4 hours, low: 0m, medium: 30, urgent: 1h}
            resolve_by: {critical: 1h, high: "1d"}
          silver:
            first_response: {high: 2h}
            resolve_by: {high: 1h}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:4:28: bad duration '4 hours': expected a duration such as '4h', '30m', "
            "'2d' or '1h30m'",
            "rules.yaml:4:42: bad duration '0m': must be longer than zero",
            "rules.yaml:4:54: expected a duration such as '4h', '30m', '2d' or '1h30m', got 30",
            "rules.yaml:4:58: unknown priority 'urgent'; expected one of: low, medium, high, "
            "critical",
            "rules.yaml:6:3: first_response for high (2h) is longer than resolve_by (1h)",
        ]
    )


def test_bad_time_ranges() -> None:
    text = """
        version: 1
        business_hours:
          default:
            timezone: Europe/Berln
            hours:
              mon: ["9-17"]
              tue: ["17:00-09:00"]
              wed: ["09:00-13:00", "12:00-18:00"]
              thu: ["25:00-26:00"]
              fri: ["09:00-24:00"]
              sunday: ["10:00-12:00"]
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:4:15: unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)",
            "rules.yaml:6:13: bad time range '9-17': expected 'HH:MM-HH:MM' with the start "
            "before the end (an end of 24:00 is midnight)",
            "rules.yaml:7:13: bad time range '17:00-09:00': the start must be before the end",
            "rules.yaml:8:12: time ranges '09:00-13:00' and '12:00-18:00' overlap",
            "rules.yaml:9:13: bad time range '25:00-26:00': hours go to 23 and minutes to 59",
            "rules.yaml:11:7: unknown weekday 'sunday' (did you mean 'sun'?); expected one of: "
            "mon, tue, wed, thu, fri, sat, sun",
        ]
    )


def test_unknown_country_and_subdivision() -> None:
    text = """
        version: 1
        business_hours:
          a: {timezone: UTC, hours: {}, country: XX}
          b: {timezone: UTC, hours: {}, country: DE, subdiv: BER}
          c: {timezone: UTC, hours: {}, subdiv: BE}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:3:42: unknown country 'XX'; expected an ISO 3166 code such as 'DE'",
            "rules.yaml:4:54: unknown subdiv 'BER' of country 'DE' (did you mean 'BE'?); expected "
            f"one of: {', '.join(holidays.list_supported_countries()['DE'])}",
            "rules.yaml:5:41: subdiv 'BE' needs a country",
        ]
    )


def test_country_no_is_norway_not_false() -> None:
    loaded = load(
        "version: 1\nbusiness_hours:\n  d: {timezone: Europe/Oslo, hours: {}, country: NO}\n"
    )
    assert loaded.calendars["d"].country == "NO"


def test_calendars_that_cannot_be_chosen() -> None:
    text = """
        version: 1
        business_hours:
          berlin: {timezone: Europe/Berlin, hours: {mon: "09:00-17:00"}}
          tokyo: {timezone: Asia/Tokyo, hours: {mon: "09:00-17:00"}}
        sla:
          std: {business_time: true}
          named: {business_time: true, calendar: paris}
        rules:
          - {name: r, when: {business_hours: true}, then: {tags: [x]}}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:6:24: SLA 'std' with business_time needs a calendar: there are several "
            "under business_hours and none is called 'default'; name one with 'calendar:'",
            "rules.yaml:7:42: unknown calendar 'paris'",
            "rules.yaml:9:38: business_hours needs a calendar: there are several under "
            "business_hours and none is called 'default'; name one with 'calendar:'",
        ]
    )


def test_business_hours_condition_without_any_calendar() -> None:
    text = """
        version: 1
        rules:
          - {name: r, when: {business_hours: {open: false}}, then: {tags: [x]}}
        """
    assert errors(text) == (
        "rules.yaml:3:38: business_hours needs a calendar: define opening hours under "
        "business_hours"
    )


def test_unknown_enum_values_say_did_you_mean() -> None:
    text = """
        version: 1
        rules:
          - name: r
            when: {channel: emial, priority: [hihg]}
            then: {priority: crtical, status: escalate, strategy: round-robin}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:4:21: unknown channel 'emial' (did you mean 'email'?); expected one of: "
            "email, slack",
            "rules.yaml:4:39: unknown priority 'hihg' (did you mean 'high'?); expected one of: "
            "low, medium, high, critical",
            "rules.yaml:5:22: unknown priority 'crtical' (did you mean 'critical'?); expected "
            "one of: low, medium, high, critical",
            "rules.yaml:5:39: unknown status 'escalate' (did you mean 'escalated'?); expected "
            "one of: new, in_progress, waiting_for_response, on_hold, escalated, resolved, "
            "closed, cancelled, reopened",
            "rules.yaml:5:59: unknown strategy 'round-robin' (did you mean 'round_robin'?); "
            "expected one of: round_robin, least_open, none",
        ]
    )


def test_empty_combinators_are_errors() -> None:
    text = """
        version: 1
        rules:
          - {name: r, when: {any: [], all: []}, then: {tags: [x]}}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:3:27: expected at least one entry",
            "rules.yaml:3:36: expected at least one entry",
        ]
    )


def test_a_rule_after_a_catch_all_can_never_fire() -> None:
    text = """
        version: 1
        rules:
          - {name: tag, when: {}, then: {tags: [x]}, stop: false}
          - {name: everything, when: {}, then: {tags: [y]}}
          - {name: later, when: {subject: a}, then: {tags: [z]}}
          - {name: off, enabled: false, when: {}, then: {tags: [z]}}
        """
    assert errors(text) == (
        "rules.yaml:5:12: rule 'later' can never fire: rule 'everything' at line 4 matches "
        "every message and stops"
    )


def test_version() -> None:
    assert errors("version: 2\n") == (
        "rules.yaml:1:10: unsupported version 2; this inbox-daemon reads version 1"
    )
    assert errors("users: []\n") == (
        "rules.yaml:1:1: missing required key 'version' (use version: 1)"
    )


def test_empty_file_and_wrong_top_level() -> None:
    assert errors("# nothing\n") == (
        "rules.yaml:1:1: the file is empty; expected a mapping that starts with 'version: 1'"
    )
    assert errors("- version: 1\n") == "rules.yaml:1:1: expected a mapping of sections, got a list"


def test_all_errors_are_reported_in_file_order() -> None:
    text = """
        version: 1
        rules:
          - {name: a, when: {subject: {regex: "("}}, then: {queue: nope}}
        users:
          - {id: ann, colour: red}
        """
    assert errors(text).splitlines() == [
        "rules.yaml:3:39: bad regex '(': missing ), unterminated subpattern at position 0",
        "rules.yaml:3:60: unknown queue 'nope'",
        "rules.yaml:5:15: unknown key 'colour'; expected one of: id, name, email, slack_id, "
        "os_user, active",
    ]


def test_load_rules_from_a_path(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nqueues: [{id: q}]\n", encoding="utf-8")
    loaded = load_rules(path)
    assert loaded.source == str(path)
    assert list(loaded.directory.queues) == ["q"]


def test_unreadable_and_undecodable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(RulesErrors) as info:
        load_rules(missing)
    assert str(info.value) == f"{missing}: cannot read the rules file: No such file or directory"
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"version: 1\nusers: [{id: ren\xe9}]\n")
    with pytest.raises(RulesErrors) as info:
        load_rules(latin1)
    assert str(info.value) == f"{latin1}:2:17: the file is not valid UTF-8"


def test_queue_removed_while_it_has_open_cases() -> None:
    old = Directory.of(queues=[Queue("a", "A"), Queue("b", "B"), Queue("c", "C")])
    new_rules = load("version: 1\nusers: []\nqueues:\n  - {id: a}\n")
    errs = check_queue_removal(old, new_rules.directory, {"a", "b"}, loaded=new_rules)
    assert [str(e) for e in errs] == [
        "rules.yaml:3:1: queue 'b' was removed but still has open cases; move or close them "
        "first, or keep the queue"
    ]
    assert check_queue_removal(old, new_rules.directory, set()) == []
    bare = check_queue_removal(old, Directory(), ["c"])
    assert [(e.file, e.line, e.reason) for e in bare] == [
        (
            "",
            0,
            "queue 'c' was removed but still has open cases; move or close them first, "
            "or keep the queue",
        )
    ]


def test_anchors_and_merge_keys_work() -> None:
    loaded = load(
        """
        version: 1
        business_hours:
          default:
            timezone: UTC
            hours:
              mon: &day ["09:00-17:00"]
              tue: *day
        queues:
          - &queue {id: a, default_priority: high}
          - {<<: *queue, id: b}
          - {<<: *queue, id: c, default_priority: low}
        """
    )
    assert loaded.directory.queues["c"].default_priority is Priority.LOW
    assert loaded.directory.queues["b"].default_priority is Priority.HIGH
    hours = loaded.calendars["default"].hours
    assert set(hours) == {0, 1}
    assert hours[0] == hours[1]


def test_a_recursive_alias_is_an_error() -> None:
    assert errors("version: 1\nusers: &u [*u]\n") == (
        "rules.yaml:2:8: recursive alias: a value may not contain itself"
    )


def test_libyaml_and_pure_python_parsing_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from inbox_daemon.router import source

    text = EXAMPLE.read_text(encoding="utf-8")
    fast = source.parse_yaml(text, "rules.yaml")
    monkeypatch.setattr(source, "_FastLoader", source._Loader)
    slow = source.parse_yaml(text, "rules.yaml")
    assert fast[0] == slow[0]
    assert fast[1].values == slow[1].values
    assert fast[1].keys == slow[1].keys


def test_an_unknown_automatic_mail_policy_names_the_choices() -> None:
    text = """
        version: 1
        rules:
          - {name: r, when: {automatic: true}, then: {automatic_mail: recrod}}
        """
    assert errors(text) == (
        "rules.yaml:3:63: unknown automatic_mail policy 'recrod' (did you mean 'record'?); "
        "expected one of: case, record, ignore"
    )


def test_support_levels_and_logins_are_checked() -> None:
    text = """
        version: 1
        users:
          - {id: ann, os_user: amartin}
          - {id: bob, os_user: amartin}
        teams: [{id: t1, members: [ann]}]
        support_levels:
          - L1
          - {name: L2, team: t2}
          - {name: L1, queue: nowhere}
        """
    assert errors(text) == "\n".join(
        [
            "rules.yaml:4:24: os_user 'amartin' is ann's already: a login is one agent's",
            "rules.yaml:8:22: unknown team 't2'",
            "rules.yaml:9:12: duplicate support level 'L1' (first defined at line 7)",
            "rules.yaml:9:23: unknown queue 'nowhere'",
        ]
    )
