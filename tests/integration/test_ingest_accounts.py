"""Accounts and entitlements through the real intake pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from inbox_daemon.cases.enums import Status
from inbox_daemon.cases.lifecycle import Cancel, Resolve
from inbox_daemon.cases.model import Actor
from inbox_daemon.channels.slack.intake import message_delivery
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.router.loader import LoadedRules, load_rules_text
from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import EntitlementHoursRow, EntitlementUseRow
from tests.integration.test_ingest import Clock, delivery, mail

RULES = """
version: 1
users: [{id: alice, name: Alice, email: alice@ours.example}]
teams: [{id: tier1, members: [alice]}]
business_hours:
  office:
    timezone: Europe/Berlin
    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00", thu: "09:00-17:00",
            fri: "09:00-17:00"}
queues:
  - {id: general, team: tier1}
  - {id: vip, team: tier1}
  - {id: overdrawn, team: tier1}
sla:
  standard: {first_response: {medium: 8h}, business_time: false}
  premium: {first_response: {medium: 2h}, resolve_by: {medium: 1d}}
  office: {first_response: {medium: 1d}, resolve_by: {medium: 1w}}
entitlements:
  - {id: gold, terms: 24x7, sla_policy: premium, allowance: {cases: 2, per: month},
     timezone: Europe/Berlin}
  - {id: unlimited, terms: 24x7}
  - {id: office-hours, terms: office, sla_policy: office}
accounts:
  - {id: acme, name: Acme Corp, domains: [acme.example, "*.acme.example"], tier: gold,
     entitlement: gold}
  - {id: globex, name: Globex, domains: [globex.example], slack_team_ids: [T0GLOBEX],
     tier: silver, entitlement: unlimited}
  - {id: initech, name: Initech, domains: [initech.example], entitlement: office-hours}
rules:
  - name: over the allowance
    when: {entitlement: exhausted}
    then: {queue: overdrawn, tags: [over-allowance]}
  - name: gold customers
    when: {tier: gold}
    then: {queue: vip}
default: {queue: general, sla: standard}
"""


@pytest.fixture
def rules() -> LoadedRules:
    return load_rules_text(RULES, "rules.yaml")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(db: Database, clock: Clock, rules: LoadedRules) -> CaseService:
    return CaseService(
        db, directory=rules.directory, clock=clock, message_domain="ours.example",
        sla_lookup=rules.sla_of, zone_lookup=rules.zone_of, accounts=rules.accounts,
    )  # fmt: skip


@pytest.fixture
def ingest(svc: CaseService, tmp_path: Path, rules: LoadedRules) -> Ingestor:
    return Ingestor(
        svc, files=FileStore(tmp_path / "a"), quarantine=FileStore(tmp_path / "q"),
        rules=lambda: rules,
        options=IntakeOptions(our_addresses=frozenset({"support@ours.example"})),
    )  # fmt: skip


async def units(db: Database) -> list[tuple[str, str, int, bool]]:
    async with db.transaction() as s:
        found = (
            await s.execute(
                select(EntitlementUseRow).order_by(EntitlementUseRow.period, EntitlementUseRow.seq)
            )
        ).all()
        return [(r.account, r.period, r.seq, r.returned_at is not None) for (r,) in found]


async def test_mail_from_an_accounts_domain_makes_a_case_of_that_account(
    ingest: Ingestor, svc: CaseService
) -> None:
    acme = await ingest(delivery(mail(1, sender="ann@eu.acme.example")))
    stranger = await ingest(delivery(mail(2, sender="bob@example.org")))
    globex = await ingest(delivery(mail(3, sender="Carl@GLOBEX.example")))
    case = await svc.get(acme.case_number or "")
    assert (case.account, case.queue, case.entitlement_exhausted) == ("acme", "vip", False)
    assert case.sla_policy == "premium"  # the entitlement's policy, not the default's
    assert case.first_response_due == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert (await svc.get(stranger.case_number or "")).account is None  # an implicit contact
    other = await svc.get(globex.case_number or "")
    assert (other.account, other.queue, other.sla_policy) == ("globex", "general", "standard")
    assert [c.number for c in await svc.find(account="acme")] == [acme.case_number]
    view = await svc.show(acme.case_number or "")
    assert view.account is not None
    assert view.account.name == "Acme Corp"
    assert view.zone.key == "Europe/Berlin"
    create = [(e.field, e.new_value) for e in view.audit if e.action == "create"]
    assert ("account", "acme") in create


async def test_a_slack_connect_user_belongs_to_the_account_of_their_team(
    ingest: Ingestor, svc: CaseService
) -> None:
    event = {"type": "message", "channel": "C0HELP", "user": "U0CARL", "text": "help",
             "ts": "1772442000.000100", "team": "T0OURS", "user_team": "T0GLOBEX"}  # fmt: skip
    result = await ingest(message_delivery({"team_id": "T0OURS", "event_id": "Ev1"}, event))
    assert (await svc.get(result.case_number or "")).account == "globex"
    ours = dict(event, user_team="T0OURS", ts="1772442001.000100")
    other = await ingest(message_delivery({"team_id": "T0OURS", "event_id": "Ev2"}, ours))
    assert (await svc.get(other.case_number or "")).account is None


async def test_an_allowance_counts_each_new_case_once_and_flags_the_case_past_it(
    ingest: Ingestor, svc: CaseService, db: Database, clock: Clock
) -> None:
    first = await ingest(delivery(mail(1, sender="ann@acme.example")))
    assert (await ingest(delivery(mail(1, sender="ann@acme.example")))).outcome == "duplicate"
    # the same mail again, delivered under another id: a duplicate too, no second unit
    again = await ingest(delivery(mail(1, sender="ann@acme.example"), uid=50))
    assert again.outcome == "duplicate"
    second = await ingest(delivery(mail(2, sender="bob@acme.example")))
    assert await units(db) == [("acme", "2026-03", 1, False), ("acme", "2026-03", 2, False)]

    third = await ingest(delivery(mail(3, sender="ann@acme.example")))
    assert third.outcome == "created"  # never lose a customer's mail
    over = await svc.show(third.case_number or "")
    assert over.case.entitlement_exhausted
    assert over.case.queue == "overdrawn"  # routed by `entitlement: exhausted`
    exhausted = [e for e in over.audit if e.action == "entitlement_exhausted"]
    assert exhausted[0].detail == {
        "account": "acme", "entitlement": "gold", "period": "2026-03", "allowance": 2,
        "unit": "cases", "used": 2,
    }  # fmt: skip
    assert ("entitlement_exhausted", "true") in [(e.field, e.new_value) for e in over.audit]
    assert len(await units(db)) == 2  # the exhausted case took no unit
    for number in (first.case_number, second.case_number):
        assert not (await svc.get(number or "")).entitlement_exhausted

    # A cancelled case gives its unit back: the next case has one again.
    await svc.change(first.case_number or "", Cancel("sent by mistake"), Actor.user("alice"))
    cancelled = await svc.show(first.case_number or "")
    assert cancelled.case.status is Status.CANCELLED
    assert [e.action for e in cancelled.audit].count("entitlement_returned") == 1
    fourth = await ingest(delivery(mail(4, sender="ann@acme.example")))
    assert (await svc.get(fourth.case_number or "")).queue == "vip"
    assert [u[2:] for u in await units(db)] == [(1, True), (2, False), (3, False)]
    # A cancelled exhausted case has nothing to give back.
    await svc.change(third.case_number or "", Cancel("dup"), Actor.user("alice"))
    assert [u[3] for u in await units(db)] == [True, False, False]

    # A new month, a new allowance (counted in the entitlement's zone: Berlin).
    clock.now = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # 1 April, 01:30 in Berlin
    fifth = await ingest(delivery(mail(5, sender="ann@acme.example")))
    assert not (await svc.get(fifth.case_number or "")).entitlement_exhausted
    assert (await units(db))[-1][:3] == ("acme", "2026-04", 1)


async def test_a_batch_counts_the_units_its_own_cases_took(
    ingest: Ingestor, svc: CaseService, db: Database
) -> None:
    batch = [delivery(mail(n, sender=f"user{n}@acme.example")) for n in range(1, 5)]
    results = await ingest.batch(batch)
    flags = [(await svc.get(r.case_number or "")).entitlement_exhausted for r in results]
    assert flags == [False, False, True, True]
    assert [u[2] for u in await units(db)] == [1, 2]


async def test_a_case_logged_by_hand_takes_a_unit_of_its_contacts_account(
    svc: CaseService, db: Database
) -> None:
    actor = Actor.user("alice")
    made = [
        await svc.create(title=f"call {n}", contact=f"ann{n}@acme.example", actor=actor)
        for n in range(3)
    ]
    assert [c.account for c in made] == ["acme"] * 3
    assert [c.entitlement_exhausted for c in made] == [False, False, True]
    assert len(await units(db)) == 2


async def test_an_entitlements_calendar_counts_business_days_and_shows_its_zone(
    ingest: Ingestor, svc: CaseService
) -> None:
    # Monday 2 March 2026, 10:00 in Berlin: one business day is Tuesday 10:00, a week of
    # business days next Monday 10:00 (the policy counts around the clock; the terms do not).
    result = await ingest(delivery(mail(1, sender="peter@initech.example")))
    case = await svc.get(result.case_number or "")
    assert case.sla_policy == "office"
    assert case.first_response_due == datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    assert case.resolve_by_due == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    assert svc.zone_of(case).key == "Europe/Berlin"


async def test_a_customers_reply_to_a_resolved_case_gives_its_hours_back(
    svc: CaseService, tmp_path: Path, db: Database
) -> None:
    hours = load_rules_text(
        RULES.replace("allowance: {cases: 2, per: month}", "allowance: {hours: 1, per: month}"),
        "rules.yaml",
    )
    svc.accounts = hours.accounts
    intake = Ingestor(
        svc, files=FileStore(tmp_path / "a"), quarantine=FileStore(tmp_path / "q"),
        rules=lambda: hours,
        options=IntakeOptions(our_addresses=frozenset({"support@ours.example"})),
    )  # fmt: skip
    first = await intake(delivery(mail(1, sender="ann@acme.example")))
    number = first.case_number or ""
    await svc.note(number, "Replaced the fuser", Actor.user("alice"), spent_minutes=75)
    await svc.change(number, Resolve("new fuser"), Actor.user("alice"))
    over = await intake(delivery(mail(2, "Toner", sender="bob@acme.example")))
    assert (await svc.get(over.case_number or "")).entitlement_exhausted  # 75 of 60 minutes

    reply = await intake(
        delivery(mail(3, sender="ann@acme.example", in_reply_to=("<m1@customer.example>",)))
    )
    assert (reply.outcome, reply.case_number) == ("reopened", number)
    view = await svc.show(number)
    returned = [e for e in view.audit if e.action == "entitlement_hours_returned"]
    assert [(e.actor_kind, e.detail["minutes"]) for e in returned] == [("channel", 75)]
    again = await intake(delivery(mail(4, "Paper", sender="cy@acme.example")))
    assert not (await svc.get(again.case_number or "")).entitlement_exhausted
    async with db.transaction() as s:
        rows = (await s.execute(select(EntitlementHoursRow))).scalars().all()
        assert [(r.minutes, r.returned_at is not None) for r in rows] == [(75, True)]
