"""Compiled conditions that match text: addresses, domains, subject, body, headers, MIME types.

Owns :class:`GlobSet` (address and MIME globs compiled into one regex, exact entries in a
frozenset) and the conditions built on it or on precompiled regexes; the per-message values
they read (lower-cased text, word sets) come from :class:`~inbox_daemon.router.conditions.
MessageView`, computed once per message.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

from inbox_daemon.router.conditions import Condition, ConditionTrace, MessageView, fmt_list
from inbox_daemon.router.prefilter import required_literals

__all__ = [
    "AttachmentTypeIs",
    "DomainIn",
    "GlobSet",
    "HeaderEquals",
    "HeaderPresent",
    "HeaderRegex",
    "RecipientsMatch",
    "SenderMatches",
    "TextContains",
    "TextRegex",
    "TextWords",
]

_WORD = re.compile(r"\w+")


class GlobSet:
    """Lower-case address or MIME globs: exact entries in a frozenset, the rest in one regex."""

    __slots__ = ("exact", "globs", "regex")

    def __init__(self, globs: Iterable[str]) -> None:
        self.globs = tuple(g.lower() for g in globs)
        self.exact = frozenset(g for g in self.globs if not any(c in g for c in "*?["))
        patterns = [fnmatch.translate(g) for g in self.globs if g not in self.exact]
        self.regex = re.compile("|".join(patterns)) if patterns else None

    def match(self, value: str) -> bool:
        return value in self.exact or (
            self.regex is not None and self.regex.match(value) is not None
        )

    def which(self, value: str) -> str | None:
        """The first glob that matches ``value`` (for explanations)."""
        return next((g for g in self.globs if fnmatch.fnmatchcase(value, g)), None)

    def __str__(self) -> str:
        return fmt_list(self.globs)


# -- attachments -----------------------------------------------------------------------------


class AttachmentTypeIs(Condition):
    __slots__ = ("globs",)
    label = "attachment_type"
    cost = 3

    def __init__(self, globs: GlobSet) -> None:
        self.globs = globs

    def test(self, view: MessageView) -> bool:
        match = self.globs.match
        return any(match(t) for t in view.attachment_types)

    def explain(self, view: MessageView) -> ConditionTrace:
        for kind in view.attachment_types:
            glob = self.globs.which(kind)
            if glob is not None:
                return self._trace(True, f"attachment type {kind!r} matched {glob!r}")
        if not view.attachment_types:
            return self._trace(False, "message has no attachments")
        kinds = fmt_list(view.attachment_types)
        return self._trace(False, f"attachment types {kinds} matched none of {self.globs}")


# -- addresses ---------------------------------------------------------------------------------


class SenderMatches(Condition):
    """``from``: the sender's address (or Slack user id) matches one of the globs."""

    __slots__ = ("globs",)
    label = "from"
    cost = 2

    def __init__(self, globs: GlobSet) -> None:
        self.globs = globs

    def test(self, view: MessageView) -> bool:
        match = self.globs.match
        return (bool(view.sender) and match(view.sender)) or (
            bool(view.sender_slack) and match(view.sender_slack)
        )

    def explain(self, view: MessageView) -> ConditionTrace:
        for who in (view.sender, view.sender_slack):
            glob = self.globs.which(who) if who else None
            if glob is not None:
                return self._trace(True, f"from {who!r} matched {glob!r}")
        who = view.sender or view.sender_slack or "(no address)"
        return self._trace(False, f"from {who!r} matched none of {self.globs}")


class DomainIn(Condition):
    """``from_domain``: the sender's domain is one of the domains or a subdomain of one."""

    __slots__ = ("domains",)
    label = "from_domain"
    cost = 2

    def __init__(self, domains: Iterable[str]) -> None:
        self.domains = frozenset(d.lower().lstrip("@").removeprefix("*.") for d in domains)

    def _found(self, domain: str) -> str | None:
        while domain:
            if domain in self.domains:
                return domain
            domain = domain.partition(".")[2]
        return None

    def test(self, view: MessageView) -> bool:
        domain = view.domain
        if domain in self.domains:
            return True
        return "." in domain and self._found(domain) is not None

    def explain(self, view: MessageView) -> ConditionTrace:
        shown = fmt_list(sorted(self.domains))
        found = self._found(view.domain)
        if found is None:
            return self._trace(False, f"from_domain: {view.domain or '(none)'!r} not in {shown}")
        if found == view.domain:
            return self._trace(True, f"from_domain: {view.domain!r} in {shown}")
        return self._trace(True, f"from_domain: {view.domain!r} is a subdomain of {found!r}")


class RecipientsMatch(Condition):
    """``to`` / ``cc``: one of the recipients matches one of the globs."""

    __slots__ = ("field", "globs", "label")
    cost = 3

    def __init__(self, field: str, globs: GlobSet) -> None:
        self.field = field
        self.label = field
        self.globs = globs

    def _values(self, view: MessageView) -> tuple[str, ...]:
        return view.to if self.field == "to" else view.cc

    def test(self, view: MessageView) -> bool:
        match = self.globs.match
        return any(match(a) for a in self._values(view) if a)

    def explain(self, view: MessageView) -> ConditionTrace:
        values = self._values(view)
        for address in values:
            glob = self.globs.which(address) if address else None
            if glob is not None:
                return self._trace(True, f"{self.field}: {address!r} matched {glob!r}")
        if not any(values):
            return self._trace(False, f"{self.field}: message has no {self.field} addresses")
        return self._trace(False, f"{self.field}: {fmt_list(values)} matched none of {self.globs}")


# -- subject and body --------------------------------------------------------------------------


class _TextCondition(Condition):
    __slots__ = ("cost", "field", "label", "lower_attr")

    def __init__(self, field: str) -> None:
        self.field = field
        self.label = field
        self.lower_attr = f"{field}_lower"

    def _lower(self, view: MessageView) -> str:
        text: str = getattr(view, self.lower_attr)
        return text


class TextContains(_TextCondition):
    """Contains ``needle``, ignoring case."""

    __slots__ = ("needle",)

    def __init__(self, field: str, needle: str) -> None:
        super().__init__(field)
        self.needle = needle.lower()
        self.cost = 4 if field == "subject" else 6

    def test(self, view: MessageView) -> bool:
        return self.needle in getattr(view, self.lower_attr)

    def explain(self, view: MessageView) -> ConditionTrace:
        held = self.needle in self._lower(view)
        verb = "contains" if held else "does not contain"
        return self._trace(held, f"{self.field} {verb} {self.needle!r}")


class TextWords(_TextCondition):
    """Has one of the words or phrases as a whole word, ignoring case."""

    __slots__ = ("phrases", "shown", "words", "words_attr")

    def __init__(self, field: str, words: Sequence[str]) -> None:
        super().__init__(field)
        self.words_attr = f"{field}_words"
        lowered = [w.lower().strip() for w in words]
        self.shown = tuple(lowered)
        self.words = frozenset(w for w in lowered if _WORD.fullmatch(w))
        phrases = [w for w in lowered if w not in self.words]
        self.phrases = (
            re.compile(
                r"(?<!\w)(?:"
                + "|".join(r"\s+".join(map(re.escape, p.split())) for p in phrases)
                + r")(?!\w)"
            )
            if phrases
            else None
        )
        self.cost = 4 if field == "subject" else 7

    def test(self, view: MessageView) -> bool:
        if self.words and not self.words.isdisjoint(getattr(view, self.words_attr)):
            return True
        return self.phrases is not None and self.phrases.search(self._lower(view)) is not None

    def explain(self, view: MessageView) -> ConditionTrace:
        have: frozenset[str] = getattr(view, self.words_attr)
        found = next((w for w in self.shown if w in self.words and w in have), None)
        if found is None and self.phrases is not None:
            match = self.phrases.search(self._lower(view))
            found = match.group(0) if match else None
        if found is not None:
            return self._trace(True, f"{self.field} has the word {found!r}")
        return self._trace(False, f"{self.field} has none of the words {fmt_list(self.shown)}")


class TextRegex(_TextCondition):
    """The regex matches somewhere in the text (``re.search``; case as the regex says).

    A literal prefilter (:mod:`inbox_daemon.router.prefilter`) skips the regex when none of
    the strings it needs occurs in the text.
    """

    __slots__ = ("folded", "literals", "pattern")

    def __init__(self, field: str, pattern: re.Pattern[str]) -> None:
        super().__init__(field)
        self.pattern = pattern
        self.cost = 5 if field == "subject" else 8
        found = required_literals(pattern)
        self.literals: tuple[str, ...] | None = found[0] if found is not None else None
        self.folded = found[1] if found is not None else False

    def _text(self, view: MessageView) -> str:
        return view.subject if self.field == "subject" else view.body

    def test(self, view: MessageView) -> bool:
        if self.literals is not None:
            haystack = getattr(view, self.lower_attr) if self.folded else self._text(view)
            for literal in self.literals:
                if literal in haystack:
                    break
            else:
                return False
        return self.pattern.search(self._text(view)) is not None

    def explain(self, view: MessageView) -> ConditionTrace:
        match = self.pattern.search(self._text(view))
        if match is None:
            return self._trace(False, f"{self.field} did not match regex '{self.pattern.pattern}'")
        return self._trace(
            True, f"{self.field} matched regex '{self.pattern.pattern}' at {match.group(0)!r}"
        )


# -- headers -----------------------------------------------------------------------------------


class _HeaderCondition(Condition):
    __slots__ = ("name",)
    label = "header"
    cost = 3

    def __init__(self, name: str) -> None:
        self.name = name.lower()

    def _values(self, view: MessageView) -> tuple[str, ...]:
        return tuple(view.message.headers.get(self.name, ()))


class HeaderPresent(_HeaderCondition):
    __slots__ = ("expected",)

    def __init__(self, name: str, expected: bool) -> None:
        super().__init__(name)
        self.expected = expected

    def test(self, view: MessageView) -> bool:
        return bool(view.message.headers.get(self.name)) is self.expected

    def explain(self, view: MessageView) -> ConditionTrace:
        present = bool(self._values(view))
        held = present is self.expected
        state = "is present" if present else "is absent"
        want = "" if held else f", expected it {'present' if self.expected else 'absent'}"
        return self._trace(held, f"header {self.name!r} {state}{want}")


class HeaderEquals(_HeaderCondition):
    """One of the header's values equals ``value`` (ignoring case and outer spaces)."""

    __slots__ = ("value",)

    def __init__(self, name: str, value: str) -> None:
        super().__init__(name)
        self.value = value.strip().lower()

    def test(self, view: MessageView) -> bool:
        return any(v.strip().lower() == self.value for v in self._values(view))

    def explain(self, view: MessageView) -> ConditionTrace:
        values = self._values(view)
        held = any(v.strip().lower() == self.value for v in values)
        if held:
            return self._trace(True, f"header {self.name!r} equals {self.value!r}")
        if not values:
            return self._trace(False, f"header {self.name!r} is absent")
        return self._trace(
            False, f"header {self.name!r} is {fmt_list(map(repr, values))}, not {self.value!r}"
        )


class HeaderRegex(_HeaderCondition):
    __slots__ = ("pattern",)

    def __init__(self, name: str, pattern: re.Pattern[str]) -> None:
        super().__init__(name)
        self.pattern = pattern

    def test(self, view: MessageView) -> bool:
        return any(self.pattern.search(v) for v in self._values(view))

    def explain(self, view: MessageView) -> ConditionTrace:
        values = self._values(view)
        for value in values:
            match = self.pattern.search(value)
            if match:
                return self._trace(
                    True,
                    f"header {self.name!r} matched regex '{self.pattern.pattern}' "
                    f"at {match.group(0)!r}",
                )
        if not values:
            return self._trace(False, f"header {self.name!r} is absent")
        return self._trace(
            False, f"header {self.name!r} did not match regex '{self.pattern.pattern}'"
        )
