"""Validates the parsed rules.yaml data against the schema, item by item, with positions.

Owns the step from plain data to schema models: the file's shape and version, then every user,
team, queue, calendar, holiday, SLA policy, account, entitlement and rule on its own, so that
one broken rule does not hide the problems of the others; and the translation of pydantic
errors into :class:`RulesError` values that say, at the right line and column, what was
expected.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from inbox_daemon.errors import RulesError
from inbox_daemon.router.fields import describe
from inbox_daemon.router.schema import (
    SUPPORTED_VERSION,
    AccountSpec,
    ActionSpec,
    CalendarSpec,
    DocumentSpec,
    EntitlementSpec,
    HolidaySpec,
    QueueSpec,
    RuleSpec,
    SlaSpec,
    SupportLevelSpec,
    TeamSpec,
    UserSpec,
    did_you_mean,
)
from inbox_daemon.router.source import Path, SourceMap

__all__ = ["Document", "Item", "validate_document"]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Item(Generic[M]):
    """A validated model and where it sits in the file."""

    spec: M
    path: Path


@dataclass
class Document:
    """The items that validated. ``broken`` holds the ids and names of those that did not,
    so that references to them are not reported a second time as unknown."""

    users: list[Item[UserSpec]] = field(default_factory=list)
    teams: list[Item[TeamSpec]] = field(default_factory=list)
    queues: list[Item[QueueSpec]] = field(default_factory=list)
    support_levels: list[Item[SupportLevelSpec]] = field(default_factory=list)
    calendars: dict[str, Item[CalendarSpec]] = field(default_factory=dict)
    holidays: list[Item[HolidaySpec]] = field(default_factory=list)
    sla: dict[str, Item[SlaSpec]] = field(default_factory=dict)
    accounts: list[Item[AccountSpec]] = field(default_factory=list)
    entitlements: list[Item[EntitlementSpec]] = field(default_factory=list)
    rules: list[Item[RuleSpec]] = field(default_factory=list)
    default: Item[ActionSpec] | None = None
    broken: dict[str, set[str]] = field(default_factory=dict)
    #: The valid ``then`` of rules that are otherwise broken (still checked for references).
    orphan_actions: list[Item[ActionSpec]] = field(default_factory=list)

    def known(self, section: str, ids: set[str]) -> set[str]:
        """``ids`` plus the broken items of ``section``."""
        return ids | self.broken.get(section, set())


def validate_document(data: object, smap: SourceMap) -> tuple[Document, list[RulesError]]:
    """Check ``data`` against the schema; return what validated and every error found."""
    doc = Document()
    errors: list[RulesError] = []
    if data is None:
        errors.append(
            smap.error(
                "the file is empty; expected a mapping that starts with "
                f"'version: {SUPPORTED_VERSION}'",
                (),
            )
        )
        return doc, errors
    if not isinstance(data, dict):
        errors.append(smap.error(f"expected a mapping of sections, got {describe(data)}", ()))
        return doc, errors

    bad_sections: set[Hashable] = set()
    try:
        DocumentSpec.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            errors.append(translate(err, DocumentSpec, (), smap))
            bad_sections.add(err["loc"][0] if err["loc"] else None)

    if "version" not in data:
        errors.append(
            smap.error(f"missing required key 'version' (use version: {SUPPORTED_VERSION})", ())
        )
    elif data["version"] != SUPPORTED_VERSION or isinstance(data["version"], bool):
        errors.append(
            smap.error(
                f"unsupported version {data['version']!r}; this inbox-daemon reads "
                f"version {SUPPORTED_VERSION}",
                ("version",),
            )
        )

    def section(name: str) -> Any:
        return None if name in bad_sections else data.get(name)

    doc.users = _items(section("users"), "users", UserSpec, "id", doc, smap, errors)
    doc.teams = _items(section("teams"), "teams", TeamSpec, "id", doc, smap, errors)
    doc.queues = _items(section("queues"), "queues", QueueSpec, "id", doc, smap, errors)
    doc.support_levels = _items(
        _levels(section("support_levels")), "support_levels", SupportLevelSpec, "name", doc,
        smap, errors,
    )  # fmt: skip
    doc.holidays = _items(section("holidays"), "holidays", HolidaySpec, "", doc, smap, errors)
    doc.accounts = _items(section("accounts"), "accounts", AccountSpec, "id", doc, smap, errors)
    doc.entitlements = _items(
        section("entitlements"), "entitlements", EntitlementSpec, "id", doc, smap, errors
    )
    doc.rules = _items(section("rules"), "rules", RuleSpec, "name", doc, smap, errors)
    doc.calendars = _named(
        section("business_hours"), "business_hours", CalendarSpec, doc, smap, errors
    )
    doc.sla = _named(section("sla"), "sla", SlaSpec, doc, smap, errors)
    raw_default = section("default")
    if raw_default is not None:
        spec = _one(raw_default, ("default",), ActionSpec, smap, errors)
        if spec is not None:
            doc.default = Item(spec, ("default",))
    return doc, errors


def _levels(raw: object) -> object:
    """``support_levels: [L1, L2]`` is short for ``[{name: L1}, {name: L2}]``."""
    if not isinstance(raw, list):
        return raw
    return [{"name": item} if isinstance(item, str) else item for item in raw]


def _one(
    raw: object, path: Path, model: type[M], smap: SourceMap, errors: list[RulesError]
) -> M | None:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors.extend(translate(err, model, path, smap) for err in exc.errors())
        return None


def _items(
    raw: object,
    name: str,
    model: type[M],
    id_key: str,
    doc: Document,
    smap: SourceMap,
    errors: list[RulesError],
) -> list[Item[M]]:
    out: list[Item[M]] = []
    for index, item in enumerate(raw if isinstance(raw, list) else []):
        path = (name, index)
        spec = _one(item, path, model, smap, errors)
        if spec is not None:
            out.append(Item(spec, path))
            continue
        if id_key and isinstance(item, dict) and isinstance(item.get(id_key), str):
            doc.broken.setdefault(name, set()).add(item[id_key])
        if model is RuleSpec and isinstance(item, dict) and isinstance(item.get("then"), dict):
            # The rule is broken elsewhere; its actions can still be checked for references.
            try:
                then = ActionSpec.model_validate(item["then"])
            except ValidationError:
                continue
            doc.orphan_actions.append(Item(then, (*path, "then")))
    return out


def _named(
    raw: object,
    name: str,
    model: type[M],
    doc: Document,
    smap: SourceMap,
    errors: list[RulesError],
) -> dict[str, Item[M]]:
    out: dict[str, Item[M]] = {}
    if not isinstance(raw, dict):
        return out
    for key, item in raw.items():
        path = (name, key)
        spec = _one(item, path, model, smap, errors)
        if spec is not None:
            out[key] = Item(spec, path)
        else:
            doc.broken.setdefault(name, set()).add(key)
    return out


# -- pydantic errors -------------------------------------------------------------------------


def translate(
    err: ErrorDetails, model: type[BaseModel], prefix: Path, smap: SourceMap
) -> RulesError:
    """One pydantic error as a :class:`RulesError` at the position of what it is about."""
    loc: Path = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if loc and loc[-1] == "[key]":
        return smap.error(_message(err, value), (*prefix, *loc[:-1]), key=True)
    if kind == "extra_forbidden":
        key = loc[-1]
        allowed = allowed_keys(model, loc[:-1])
        hint = did_you_mean(key, allowed)
        expected = f"; expected one of: {', '.join(allowed)}" if allowed else ""
        return smap.error(f"unknown key {key!r}{hint}{expected}", (*prefix, *loc), key=True)
    # An error about a whole mapping (a missing key, "exactly one of") points at the key that
    # names the mapping, when there is one; other errors point at the value itself.
    if kind == "missing":
        return smap.error(f"missing required key {loc[-1]!r}", (*prefix, *loc[:-1]), key=True)
    about_mapping = isinstance(value, dict) and kind not in _EXPECTED
    return smap.error(_message(err, value), (*prefix, *loc), key=about_mapping)


_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "date_type": "a date (YYYY-MM-DD)",
    "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_inexact": "a date (YYYY-MM-DD) without a time",
    "literal_error": "",
}


def _message(err: ErrorDetails, value: object) -> str:
    kind = err["type"]
    if kind == "rules":
        return str((err.get("ctx") or {}).get("detail", err["msg"]))
    expected = _EXPECTED.get(kind)
    if expected:
        hint = ""
        if kind == "string_type" and isinstance(value, bool):
            hint = " (put it in quotes to mean the text)"
        return f"expected {expected}, got {describe(value)}{hint}"
    msg = err["msg"]
    if kind == "value_error" and msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return msg[:1].lower() + msg[1:]


def allowed_keys(model: type[BaseModel], loc: Path) -> list[str]:
    """The keys the model found at ``loc`` (below ``model``) accepts, in declaration order."""
    found = _model_at(model, loc)
    if found is None:
        return []
    return [info.alias or name for name, info in found.model_fields.items()]


def _model_at(tp: Any, loc: Path) -> type[BaseModel] | None:
    tp = _strip(tp)
    if not loc:
        return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
    head, rest = loc[0], loc[1:]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, info in tp.model_fields.items():
            if head in (name, info.alias):
                return _model_at(info.annotation, rest)
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list and args:
        return _model_at(args[0], rest)
    if origin is dict and len(args) == 2:
        return _model_at(args[1], rest)
    return None


def _strip(tp: Any) -> Any:
    """Unwrap ``Annotated[...]`` and ``X | None`` down to the type that matters."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin is typing.Union or origin is types.UnionType:
            arms = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = arms[0]
        else:
            return tp
