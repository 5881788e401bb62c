"""Reads rules.yaml text into plain data and remembers where every key and value sits.

Owns the YAML side of rules loading: composing the node tree with PyYAML's safe loader,
building plain Python values from it, recording the 1-based line and column of every key and
value under its path (``('rules', 3, 'then', 'team')``), and turning YAML problems (syntax
errors, duplicate keys, bad dates, recursive aliases) into :class:`RulesError` values that
carry those positions. Nothing here knows what the keys mean.

Booleans are YAML 1.2's: only ``true`` and ``false`` (any case). ``yes``, ``no``, ``on`` and
``off`` stay strings, so that ``country: NO`` or a rule named ``on`` mean what they say; and
``10:30`` stays a string rather than YAML 1.1's base-60 number.
"""

from __future__ import annotations

import re
from collections.abc import Hashable
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from inbox_daemon.errors import RulesError

__all__ = ["Mark", "Path", "SourceMap", "parse_yaml"]

_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEXAGESIMAL_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"})


_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _first in "tTfF":
    _RESOLVERS.setdefault(_first, []).append(
        (_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"))
    )


class _Loader(yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with YAML 1.2 booleans."""

    yaml_implicit_resolvers = _RESOLVERS


_FastLoader: type[yaml.SafeLoader | yaml.CSafeLoader] = _Loader
if yaml.__with_libyaml__:  # pragma: no branch - libyaml is usually there

    class _CLoader(yaml.CSafeLoader):
        """libyaml's safe loader (much faster) with the same resolvers."""

        yaml_implicit_resolvers = _RESOLVERS

    _FastLoader = _CLoader

#: Where a value sits in the document: mapping keys and sequence indexes from the root.
Path = tuple[Hashable, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark | None) -> Mark:
        if mark is None:
            return cls(1, 1)
        return cls(mark.line + 1, mark.column + 1)


@dataclass
class SourceMap:
    """Positions of the values and keys of one document, by path."""

    file: str
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        """The position of ``path`` (of its key when ``key``), else of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Mark(1, 1)

    def has(self, path: Path) -> bool:
        return path in self.values

    def error(self, message: str, path: Path, *, key: bool = False) -> RulesError:
        """A :class:`RulesError` at ``path`` in this file."""
        at = self.mark(path, key=key)
        return RulesError(message, file=self.file, line=at.line, column=at.column)


def parse_yaml(text: str, file: str) -> tuple[object, SourceMap, list[RulesError]]:
    """Parse ``text``; return the data (None for an empty document), positions and errors.

    A syntax error leaves no data. Other problems (a duplicate key, a bad date) are reported
    and the document is still built, so that the caller can report its own errors as well.
    """
    smap = SourceMap(file)
    loader = _FastLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            return None, smap, [_syntax_error(_python_error(text, exc), file)]
        except yaml.YAMLError as exc:  # pragma: no cover - PyYAML marks all of its errors
            return None, smap, [RulesError(f"YAML error: {exc}", file=file, line=1, column=1)]
        if root is None:
            return None, smap, []
        builder = _Builder(loader, smap)
        data = builder.build(root, ())
        return data, smap, builder.errors
    finally:
        loader.dispose()


def _python_error(text: str, exc: yaml.MarkedYAMLError) -> yaml.MarkedYAMLError:
    """The same syntax error as PyYAML words it (libyaml's messages differ slightly)."""
    loader = _Loader(text)
    try:
        loader.get_single_node()
    except yaml.MarkedYAMLError as python_exc:
        return python_exc
    finally:
        loader.dispose()
    return exc  # pragma: no cover - both parsers reject the same documents


def _syntax_error(exc: yaml.MarkedYAMLError, file: str) -> RulesError:
    mark = exc.problem_mark or exc.context_mark
    at = Mark.of(mark)
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    return RulesError(
        f"YAML syntax error: {problem}{context}", file=file, line=at.line, column=at.column
    )


class _Builder:
    """Walks the composed node tree, building values and recording marks."""

    def __init__(self, loader: yaml.SafeLoader | yaml.CSafeLoader, smap: SourceMap) -> None:
        self.loader = loader
        self.smap = smap
        self.errors: list[RulesError] = []
        self._active: set[int] = set()
        self._merged: dict[int, int] = {}  # mapping node -> how many pairs came from "<<"

    def _error(self, message: str, node: Node) -> None:
        at = Mark.of(node.start_mark)
        self.errors.append(RulesError(message, file=self.smap.file, line=at.line, column=at.column))

    def build(self, node: Node, path: Path) -> object:
        self.smap.values[path] = Mark.of(node.start_mark)
        if id(node) in self._active:
            self._error("recursive alias: a value may not contain itself", node)
            return None
        if isinstance(node, ScalarNode):
            return self._scalar(node)
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        self._error(f"unsupported YAML node {node.tag}", node)  # pragma: no cover
        return None  # pragma: no cover

    def _scalar(self, node: ScalarNode) -> object:
        if node.tag in _SEXAGESIMAL_TAGS and ":" in node.value:
            return node.value  # "10:30" is a time of day here, not YAML 1.1's 630
        try:
            return self.loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            self._error(f"bad value {node.value!r}: {_reason(exc)}", node)
            return node.value

    def _mapping(self, node: MappingNode, path: Path) -> dict[Hashable, object]:
        merged = self._merged.get(id(node))
        if merged is None:
            own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
            try:
                self.loader.flatten_mapping(node)  # puts "<<" merged pairs first, in place
            except yaml.MarkedYAMLError as exc:
                self.errors.append(_syntax_error(exc, self.smap.file))
            merged = self._merged[id(node)] = max(len(node.value) - own, 0)
        out: dict[Hashable, object] = {}
        first: dict[Hashable, tuple[Mark, bool]] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, ScalarNode):
                self._error("a key must be a plain value, not a list or a mapping", key_node)
                continue
            key = self._scalar(key_node)
            if not isinstance(key, Hashable):  # pragma: no cover - scalars always are
                continue
            key_mark = Mark.of(key_node.start_mark)
            if key in first and not first[key][1]:
                where = first[key][0]
                self._error(
                    f"duplicate key {key!r} (first given at line {where.line}, "
                    f"column {where.column})",
                    key_node,
                )
                continue
            # A key merged in with "<<" may be overridden (later ones win, as in PyYAML).
            first[key] = (key_mark, index < merged)
            child = (*path, key)
            self.smap.keys[child] = key_mark
            out[key] = self.build(value_node, child)
        return out


def _reason(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        return exc.problem
    return str(exc) or type(exc).__name__
