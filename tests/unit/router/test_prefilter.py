"""The regex prefilter never changes a verdict: it only skips regexes that cannot match."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inbox_daemon.router import ThreadFacts
from inbox_daemon.router.conditions import MessageView
from inbox_daemon.router.matchers import TextRegex
from inbox_daemon.router.prefilter import fold, required_literals

from .helpers import NOW, message

PATTERNS = [
    r"(?i)\b(outage|down|500)\b",
    r"order #\d+",
    r"(?i)order #\d+",
    r"(?i)\bcrash[-_ ]?12\b",
    r"^re:",
    r"(?i)^re:",
    r"(?i)kiss",
    r"(?i:Kiss)ing",
    r"(?x) kiss \s+ me",
    r"(?i)(ab)+is",
    r"(sk|ki)+ss?",
    r"a|bc",
    r"(?i)İs",
    r"(?is)k.s",
]

ALPHABET = "abcdeiknorsuw #125:-_\n" + "ABEIKRSİıſKÉé"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"(?i)\b(outage|down|500)\b", (("outage", "down", "500"), True)),
        (r"order #\d+", (("order #",), False)),
        (r"(?i)ORDER #\d+", (("order #",), True)),
        (r"x(?i:Foo)bar", (("bar",), False)),
        (r"(abc|abd)", (("ab",), False)),
        (r"a|bc", None),  # one branch has no literal worth checking
        (r"(?i)Ünïcode", None),  # non-ASCII literals are not folded
        (r"[ab]c", None),
    ],
)
def test_required_literals(pattern: str, expected: object) -> None:
    assert required_literals(re.compile(pattern)) == expected


def test_fold_maps_what_ignorecase_equates_with_ascii() -> None:
    assert fold("İstanbul ıs ſo K ÉA") == "istanbul is so k éa"
    assert fold("PLAIN Ascii") == "plain ascii"


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATTERNS), st.text(alphabet=ALPHABET, max_size=40))
def test_the_prefilter_never_changes_the_verdict(pattern: str, text: str) -> None:
    compiled = re.compile(pattern)
    for field in ("subject", "body"):
        condition = TextRegex(field, compiled)
        view = MessageView(message(subject=text, text=text), ThreadFacts(), NOW)
        assert condition.test(view) is (compiled.search(text) is not None)
