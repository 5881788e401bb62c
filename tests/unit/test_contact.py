"""A contact typed by an agent (``cases new --contact``): one address, read strictly."""

from __future__ import annotations

import re

import pytest

from inbox_daemon.errors import CaseRuleError
from inbox_daemon.service import parse_contact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ann@example.com", ("ann@example.com", None, "")),
        ("Ann <Ann@Example.COM>", ("ann@example.com", None, "Ann")),
        ("<ann@example.com>", ("ann@example.com", None, "")),
        ('"Ann (Sales)" <ann@example.com>', ("ann@example.com", None, "Ann (Sales)")),
        ("Ann (Sales) <ann@example.com>", ("ann@example.com", None, "Ann (Sales)")),
        ("Zoë Ütz <zoe@example.com>", ("zoe@example.com", None, "Zoë Ütz")),
        ("U0123ABCD", (None, "U0123ABCD", "")),
        ("W0123ABCD", (None, "W0123ABCD", "")),
    ],
)
def test_one_address_or_a_slack_user(text: str, expected: tuple[str | None, ...]) -> None:
    assert parse_contact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Eve Bcc: evil@x.example <eve@example.com>",  # a group naming another address
        "Eve: evil@x.example;",
        "test test@example.com",  # an unquoted space in the local part
        "ann@example.com, bob@example.com",
        "Ann <a@x.example> <b@y.example>",
        "Ann <ann@example>",  # no dotted domain
        "ann@@example.com",
        "Ann <ann@example.com>\r\nBcc: evil@x.example",
        "not a contact",
        "u0123abcd",
    ],
)
def test_anything_else_is_refused_with_what_to_write(text: str) -> None:
    with pytest.raises(CaseRuleError, match=re.escape("write it as 'Name <ann@example.com>'")):
        parse_contact(text)


def test_an_empty_contact_says_what_a_case_needs() -> None:
    with pytest.raises(CaseRuleError, match="needs a customer contact"):
        parse_contact("  ")
