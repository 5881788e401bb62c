"""Literal prefilters for regexes: a cheap substring test that must pass before a regex runs.

Owns :func:`required_literals`, which reads a compiled regex's parse tree and returns strings
of which at least one must occur in any text the regex matches (``order #\\d+`` needs
``order #``; ``(outage|down)`` needs ``outage`` or ``down``), and :func:`fold`, the text
form those literals are checked against when the regex ignores case. A substring search is
far cheaper than a case-insensitive regex over a long body, and most rules do not match most
messages, so this keeps evaluation fast. The prefilter is sound or absent: when in doubt it
returns None and the regex simply always runs.

Case-insensitive literals are checked in :func:`fold`\\ ed text: lower-cased after mapping the
four non-ASCII characters that Python's ``re.IGNORECASE`` equates with ASCII letters (İ ı ſ K);
only ASCII literals are used then, so no other folding rule can matter.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["fold", "required_literals"]

# The parser of the re module (private, hence untyped): any surprise just disables prefilters.
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})
_SPECIAL = "\u0130\u0131\u017f\u212a"
#: Prefilters shorter than this do not pay for themselves.
_MIN_LENGTH = 2


def fold(text: str) -> str:
    """``text`` as case-insensitive literals are checked against."""
    if text.isascii() or not any(c in text for c in _SPECIAL):
        return text.lower()
    return text.translate(_FOLD).lower()  # slow, and only for texts that need it


def required_literals(pattern: re.Pattern[str]) -> tuple[tuple[str, ...], bool] | None:
    """Strings one of which every match contains, and whether to check them in folded text.

    None when no useful literal is found (or the pattern is beyond this simple analysis).
    """
    try:
        parsed = _parser.parse(pattern.pattern, pattern.flags)
        found = _sequence(list(parsed))
    except Exception:  # pragma: no cover - defensive: a prefilter is only an optimisation
        return None
    if not found:
        return None
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    if ignore_case:
        if not all(s.isascii() for s in found):
            return None
        found = tuple(dict.fromkeys(s.lower() for s in found))
    return found, ignore_case


def _sequence(items: Sequence[tuple[Any, Any]]) -> tuple[str, ...] | None:
    """The best set of alternatives required by a sequence of parsed items."""
    candidates: list[tuple[str, ...]] = []
    run: list[str] = []
    for op, arg in items:
        if op is _c.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            candidates.append(("".join(run),))
            run = []
        inner = _item(op, arg)
        if inner is not None:
            candidates.append(inner)
    if run:
        candidates.append(("".join(run),))
    useful = [c for c in candidates if min(map(len, c)) >= _MIN_LENGTH]
    if not useful:
        return None
    # Prefer long literals and few alternatives.
    return max(useful, key=lambda c: (min(map(len, c)), -len(c)))


def _item(op: Any, arg: Any) -> tuple[str, ...] | None:
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, sub = arg
        if add_flags or del_flags:  # scoped flags: the case rules may differ inside
            return None
        return _sequence(list(sub))
    if op is _c.BRANCH:
        alternatives: list[str] = []
        for branch in arg[1]:
            found = _sequence(list(branch))
            if found is None:
                return None
            alternatives.extend(found)
        return tuple(dict.fromkeys(alternatives))
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        low, _high, sub = arg
        return _sequence(list(sub)) if low >= 1 else None
    return None
