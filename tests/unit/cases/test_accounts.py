"""Which account a sender belongs to, and how an allowance is counted (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from inbox_daemon.cases.accounts import (
    Account,
    AccountBook,
    Allowance,
    Entitlement,
    EntitlementState,
    Period,
    domain_of,
)
from inbox_daemon.errors import NotFoundError

BOOK = AccountBook.of(
    [
        Account(
            "acme",
            "Acme",
            domains=("acme.example", "*.acme.example"),
            tier="gold",
            entitlement="gold",
        ),
        Account("acme-eu", "Acme Europe", domains=("*.eu.acme.example",)),
        Account("globex", "Globex", domains=("globex.example",), slack_teams=("T0GLOBEX",)),
    ],
    [Entitlement("gold", allowance=Allowance(2, Period.MONTH))],
)


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("ann@acme.example", "acme"),
        ("Ann@ACME.Example", "acme"),
        ("bob@sales.acme.example", "acme"),  # a subdomain, by the wildcard
        ("eve@paris.eu.acme.example", "acme-eu"),  # the longer wildcard wins
        ("carl@eu.acme.example", "acme"),  # '*.eu.acme.example' does not claim eu.acme itself
        ("dan@globex.example", "globex"),
        ("fay@sub.globex.example", None),  # an exact domain claims no subdomain
        ("gus@notacme.example", None),  # a suffix that is not a subdomain
        ("hal@example.org", None),
        (None, None),
        ("not-an-address", None),
    ],
)
def test_a_sender_belongs_to_the_account_of_their_domain(
    email: str | None, expected: str | None
) -> None:
    found = BOOK.match(email=email)
    assert (found.id if found else None) == expected


def test_slack_connect_team_matches_when_no_domain_does() -> None:
    assert BOOK.match(slack_team="T0GLOBEX") == BOOK.accounts["globex"]
    assert BOOK.match(slack_team="T0OTHER") is None
    assert BOOK.match(email="ann@acme.example", slack_team="T0GLOBEX") == BOOK.accounts["acme"]


def test_unknown_account_is_a_one_line_error_naming_the_known_ones() -> None:
    with pytest.raises(NotFoundError, match=r"^unknown account 'nope'; configured are: acme, "):
        BOOK.account("nope")
    with pytest.raises(NotFoundError, match="no accounts are configured"):
        AccountBook().account("acme")


def test_entitlement_of_an_account() -> None:
    assert BOOK.entitlement_of("acme") == BOOK.entitlements["gold"]
    assert BOOK.entitlement_of("globex") is None
    assert BOOK.entitlement_of(None) is None
    assert BOOK.entitlement_of("gone") is None


def test_an_allowance_is_used_up_by_its_last_unit() -> None:
    allowance = Allowance(2, Period.MONTH)
    assert [allowance.state(used) for used in range(4)] == [
        EntitlementState.OK,
        EntitlementState.OK,
        EntitlementState.EXHAUSTED,
        EntitlementState.EXHAUSTED,
    ]


def test_periods_are_counted_in_the_entitlements_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    new_year_in_berlin = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # 00:30 on 1 January
    assert Period.MONTH.key(new_year_in_berlin, berlin) == "2027-01"
    assert Period.YEAR.key(new_year_in_berlin, berlin) == "2027"
    assert Period.MONTH.key(new_year_in_berlin, ZoneInfo("UTC")) == "2026-12"


def test_domain_of() -> None:
    assert domain_of("Ann@Example.COM.") == "example.com"
    assert domain_of("nobody") == ""
