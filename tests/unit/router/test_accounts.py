"""rules.yaml accounts and entitlements: what is checked, and the conditions on them."""

from __future__ import annotations

from dataclasses import replace

from inbox_daemon.cases.accounts import Allowance, AllowanceUnit, Period
from inbox_daemon.router import summary
from inbox_daemon.router.engine import ThreadFacts, evaluate, explain, format_explanation

from .helpers import NOW, errors, load, message

BASE = """
    version: 1
    queues: [{id: general}, {id: vip}, {id: overdrawn}]
    business_hours:
      office:
        timezone: Europe/Berlin
        hours: {mon: "09:00-17:00", tue: "09:00-17:00"}
    sla:
      standard: {first_response: {medium: 1d}, business_time: true}
      premium: {first_response: {medium: 2h}}
    entitlements:
      - {id: gold, terms: 24x7, sla_policy: premium, allowance: {cases: 10, per: month},
         timezone: America/New_York}
      - {id: office-hours, terms: office}
    accounts:
      - {id: acme, name: Acme Corp, domains: [acme.example, "*.acme.example"],
         slack_team_ids: [T0ACME], tier: gold, entitlement: gold}
      - {id: globex, domains: [globex.example], tier: silver, entitlement: office-hours}
    """


def test_accounts_and_entitlements_load() -> None:
    loaded = load(BASE + "default: {queue: general}\n")
    book = loaded.accounts
    acme = book.accounts["acme"]
    assert (acme.name, acme.tier, acme.entitlement) == ("Acme Corp", "gold", "gold")
    assert acme.domains == ("acme.example", "*.acme.example")
    assert acme.slack_teams == ("T0ACME",)
    gold = book.entitlements["gold"]
    assert gold.calendar is None
    assert gold.allowance is not None
    assert gold.allowance == Allowance(10, Period.MONTH, AllowanceUnit.CASES)
    assert gold.zone.key == "America/New_York"
    assert book.entitlements["office-hours"].zone.key == "Europe/Berlin"
    assert "2 accounts, 2 entitlements" in summary(loaded)


def test_an_entitlement_decides_the_policy_and_the_calendar() -> None:
    loaded = load(BASE + "default: {queue: general, sla: standard}\n")
    assert loaded.policy_for("standard", "acme") == "premium"  # the entitlement's policy
    assert loaded.policy_for("standard", "globex") == "standard"  # none: the rules'
    assert loaded.policy_for("standard", None) == "standard"
    acme = loaded.sla_of("standard", "acme")
    assert acme is not None
    assert acme[0].name == "premium"
    assert not acme[0].business_time  # 24x7 terms count around the clock
    globex = loaded.sla_of("premium", "globex")
    assert globex is not None
    assert globex[0].business_time  # office terms count the office's hours
    assert globex[1] is loaded.calendars["office"]
    assert loaded.zone_of("standard", None).key == "Europe/Berlin"
    assert loaded.zone_of(None, "acme").key == "America/New_York"


def test_bad_accounts_and_entitlements_are_one_line_errors_each() -> None:
    text = BASE.rstrip(" ").replace("[acme.example,", "[acme.example, globex.example,").replace(
        "entitlement: office-hours}", "entitlement: platinum, slack_team_ids: [T0ACME]}"
    ) + (
        "      - {id: initech, domains: [initech, '*.x.*.example']}\n"
        "      - {id: acme, domains: [acme2.example]}\n"
        "    default: {queue: general}\n"
    )
    text = text.replace("terms: office}", "terms: ofice, sla_policy: nope}")
    text = text.replace("{cases: 10, per: month}", "{cases: 0, per: week}")
    assert errors(text).splitlines() == [
        "rules.yaml:11:77: unknown allowance period 'week'; expected one of: month, year",
        "rules.yaml:13:31: unknown terms 'ofice' (did you mean 'office'?): expected '24x7' "
        "or a calendar under business_hours",
        "rules.yaml:13:50: unknown SLA policy 'nope'",
        "rules.yaml:17:28: domain 'globex.example' is claimed by account 'globex' and by "
        "account 'acme' at line 15; give it to one of them",
        "rules.yaml:17:72: unknown entitlement 'platinum'",
        "rules.yaml:17:99: Slack team 'T0ACME' is claimed by account 'globex' and by account "
        "'acme' at line 16; give it to one of them",
        "rules.yaml:18:28: bad domain 'initech': write it as 'example.com', or '*.example.com' "
        "for every subdomain",
        "rules.yaml:19:10: duplicate account id 'acme' (first defined at line 15)",
    ]


def test_an_allowance_needs_at_least_one_case() -> None:
    text = BASE.replace("{cases: 10, per: month}", "{cases: 0}")
    assert "allowance cases must be at least 1, got 0" in errors(
        text + "default: {queue: general}\n"
    )


def test_an_allowance_of_hours_loads() -> None:
    text = BASE.replace("{cases: 10, per: month}", "{hours: 40, per: year}")
    gold = load(text + "default: {queue: general}\n").accounts.entitlements["gold"]
    assert gold.allowance == Allowance(40, Period.YEAR, AllowanceUnit.HOURS)
    assert gold.allowance.limit == 40 * 60  # counted in minutes
    assert gold.allowance.describe() == "40 hours per year"
    assert gold.allowance.describe(90) == "1.5 of 40 hours this year"


def test_an_allowance_counts_cases_or_hours_not_both_nor_neither() -> None:
    for allowance, expected in [
        ("{hours: 4, cases: 2}", "an allowance counts cases or hours, not both"),
        ("{per: month}", "an allowance needs 'cases: N' or 'hours: N'"),
        ("{hours: 0}", "allowance hours must be at least 1, got 0"),
        ("{hours: 1.5}", "input should be a valid integer"),
    ]:
        text = BASE.replace("{cases: 10, per: month}", allowance)
        assert expected in errors(text + "default: {queue: general}\n"), allowance


def test_conditions_name_known_accounts_and_tiers() -> None:
    text = BASE.rstrip(" ") + (
        "    rules:\n"
        "      - {name: r, when: {account: [acmee], tier: [gld]}, then: {queue: vip}}\n"
        "      - {name: s, when: {entitlement: gone}, then: {queue: vip}}\n"
        "    default: {queue: general}\n"
    )
    assert errors(text).splitlines() == [
        "rules.yaml:19:32: unknown account 'acmee' (did you mean 'acme'?)",
        "rules.yaml:19:47: no account has tier 'gld' (did you mean 'gold'?)",
        "rules.yaml:20:35: unknown entitlement state 'gone'; expected one of: ok, exhausted",
    ]


RULED = (
    BASE
    + """
    rules:
      - {name: overdrawn, when: {entitlement: exhausted}, then: {queue: overdrawn}}
      - {name: gold, when: {tier: gold}, then: {queue: vip}}
      - {name: globex, when: {account: globex, entitlement: ok}, then: {priority: high}}
    default: {queue: general}
    """
)


def test_routing_tests_account_tier_and_entitlement() -> None:
    rules = load(RULED).rules
    msg = message()
    acme = ThreadFacts(account="acme", tier="gold", entitlement="ok")
    assert evaluate(rules, msg, acme, NOW).queue == "vip"
    exhausted = replace(acme, entitlement="exhausted")
    assert evaluate(rules, msg, exhausted, NOW).queue == "overdrawn"
    globex = evaluate(rules, msg, ThreadFacts(account="globex", entitlement="ok"), NOW)
    assert (globex.queue, globex.priority) == ("general", "high")
    nobody = evaluate(rules, msg, ThreadFacts(), NOW)
    assert (nobody.queue, nobody.rules_fired) == ("general", ())


def test_explain_shows_account_tier_and_entitlement() -> None:
    rules = load(RULED).rules
    facts = ThreadFacts(account="globex", tier="silver", entitlement="exhausted")
    text = format_explanation(explain(rules, message(), facts, NOW))
    assert "[yes] entitlement 'exhausted' in [exhausted]" in text
    assert "[no]  tier 'silver' not in [gold]" in text
    assert "[yes] account 'globex' in [globex]" in text
    assert "[no]  entitlement none not in [ok]" in format_explanation(
        explain(rules, message(), ThreadFacts(account="globex"), NOW)
    )
