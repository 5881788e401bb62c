"""The Block Kit builders: what a card shows, which buttons it has, the Resolve modal."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from inbox_daemon.cases.enums import Priority, Status
from inbox_daemon.cases.model import Case
from inbox_daemon.channels.slack import cards
from inbox_daemon.channels.slack.actions import ActivityLine, CaseDetails, CaseListing

DUE = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)


def case(**fields: object) -> Case:
    values: dict[str, object] = {
        "number": "CAS-000042",
        "title": "Printer <on> fire & smoke",
        "priority": Priority.HIGH,
        "contact_email": "ann@example.com",
        "contact_name": "Ann",
        "queue": "general",
        "owner_team": "tier1",
        "owner_user": "alice",
        "first_response_due": DUE,
    }
    values.update(fields)
    return Case(**values)  # type: ignore[arg-type]


def text_of(blocks: list[cards.Block]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def test_card_shows_the_case_and_its_buttons() -> None:
    blocks = cards.case_card(
        case(), latest="It <smokes>", people={"alice": "<@U01ALICE>"}, queue_name="General"
    )
    shown = text_of(blocks)
    assert blocks[0]["text"]["text"] == "CAS-000042 · Printer <on> fire & smoke"  # plain text
    for needle in (
        "Ann &lt;ann@example.com&gt;",
        "High",
        "New",
        "<@U01ALICE>",
        "General",
        "first response by Mon 2 Mar 13:00 UTC",
        "It &lt;smokes&gt;",
    ):
        assert needle in shown
    assert "Account" not in shown
    assert "Entitlement exhausted" not in shown
    [actions] = [b for b in blocks if b["type"] == "actions"]
    assert actions["block_id"] == "case_actions:CAS-000042"
    on_card = [a for a in cards.CARD_ACTIONS if a != cards.ACTION_TAKE_OVER]  # offered apart
    assert [e["action_id"] for e in actions["elements"]] == on_card
    assert all(
        cards.case_number_of({**e, "block_id": actions["block_id"]}) == "CAS-000042"
        for e in actions["elements"]
    )


def test_card_shows_the_account_its_exhausted_entitlement_and_due_dates_in_the_zone() -> None:
    from zoneinfo import ZoneInfo

    blocks = cards.case_card(
        case(account="acme", entitlement_exhausted=True, resolve_by_due=DUE.replace(day=3)),
        account_name="Acme <Corp>",
        zone=ZoneInfo("Europe/Berlin"),
    )
    shown = text_of(blocks)
    assert "*Account*\\nAcme &lt;Corp&gt;" in shown
    assert "Entitlement exhausted" in shown
    assert "first response by Mon 2 Mar 14:00 CET" in shown  # 13:00 UTC, in Berlin
    assert "resolve by Tue 3 Mar 14:00 CET" in shown


def test_a_resolved_case_has_no_buttons_but_its_resolution() -> None:
    blocks = cards.case_card(case(status=Status.RESOLVED, resolution="New fuser"))
    assert all(b["type"] != "actions" for b in blocks)
    assert "New fuser" in text_of(blocks)


def test_slack_customer_is_mentioned_and_long_titles_are_cut() -> None:
    blocks = cards.case_card(case(contact_email=None, contact_slack="U0ANN", title="x" * 400))
    assert "<@U0ANN>" in text_of(blocks)
    assert len(blocks[0]["text"]["text"]) == 150


def test_listing_and_details() -> None:
    listing = CaseListing(
        "alice",
        (case(),),
        (case(number="CAS-000043", owner_user=None),),
        ("general",),
        {"alice": "Alice"},
    )
    shown = text_of(cards.listing_blocks(listing))
    assert "CAS-000042" in shown
    assert "CAS-000043" in shown
    assert "Waiting to be picked in general" in shown
    line = ActivityLine(DUE, "email", "incoming", "ann@example.com", "Help <me>")
    details = cards.details_blocks(CaseDetails(case(), (line,)))
    assert "Help &lt;me&gt;" in text_of(details)
    assert all(b["type"] != "actions" for b in details)


def test_mirror_text_quotes_and_escapes() -> None:
    text = cards.mirror_text("Ann <ann@x>", "line 1\n<b>line 2</b>", subject="Hi", files=["a.log"])
    assert text.splitlines() == [
        "*Ann &lt;ann@x&gt;* wrote:",
        "*Hi*",
        "&gt; line 1",
        "&gt; &lt;b&gt;line 2&lt;/b&gt;",
        ":paperclip: a.log",
    ]
