"""Checks across a validated rules.yaml: what one part of the file says about another.

Owns the errors a schema alone cannot find: duplicate ids and rule names, team members that
are not users, references to unknown users, teams, queues, SLA policies, calendars, accounts,
tiers and entitlements (with did-you-mean), a domain or Slack team claimed by two accounts,
overlapping holidays, unknown subdivisions of a country, and rules that can never
fire. (:func:`inbox_daemon.router.loader.check_queue_removal` covers queues removed while they
still hold open cases.)
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from inbox_daemon.cases.accounts import AROUND_THE_CLOCK
from inbox_daemon.errors import RulesError
from inbox_daemon.router.fields import supported_countries
from inbox_daemon.router.schema import (
    ActionSpec,
    ConditionSpec,
    HolidaySpec,
    did_you_mean,
)
from inbox_daemon.router.source import Mark, Path, SourceMap
from inbox_daemon.router.validate import Document

__all__ = ["DEFAULT_CALENDAR", "check_document", "default_calendar"]

#: The calendar used where none is named, when there are several.
DEFAULT_CALENDAR = "default"


def default_calendar(names: Collection[str]) -> str | None:
    """The calendar called ``default``, else the only one, else None."""
    if DEFAULT_CALENDAR in names:
        return DEFAULT_CALENDAR
    if len(names) == 1:
        return next(iter(names))
    return None


def check_document(doc: Document, smap: SourceMap) -> list[RulesError]:
    """Every cross-reference problem of ``doc``."""
    return _Checker(doc, smap).run()


class _Checker:
    def __init__(self, doc: Document, smap: SourceMap) -> None:
        self.doc = doc
        self.smap = smap
        self.errors: list[RulesError] = []
        self.users = doc.known("users", {u.spec.id for u in doc.users})
        self.teams = doc.known("teams", {t.spec.id for t in doc.teams})
        self.queues = doc.known("queues", {q.spec.id for q in doc.queues})
        self.calendars = set(doc.calendars) | doc.broken.get("business_hours", set())
        self.policies = set(doc.sla) | doc.broken.get("sla", set())
        self.accounts = doc.known("accounts", {a.spec.id for a in doc.accounts})
        self.entitlements = doc.known("entitlements", {e.spec.id for e in doc.entitlements})
        self.tiers = {a.spec.tier for a in doc.accounts if a.spec.tier is not None}

    def error(self, message: str, path: Path, *, key: bool = False) -> None:
        self.errors.append(self.smap.error(message, path, key=key))

    def run(self) -> list[RulesError]:
        self._duplicates("user id", [(u.spec.id, u.path) for u in self.doc.users], "id")
        self._duplicates("team id", [(t.spec.id, t.path) for t in self.doc.teams], "id")
        self._duplicates("queue id", [(q.spec.id, q.path) for q in self.doc.queues], "id")
        self._duplicates("rule name", [(r.spec.name, r.path) for r in self.doc.rules], "name")
        self._duplicates("account id", [(a.spec.id, a.path) for a in self.doc.accounts], "id")
        self._duplicates(
            "entitlement id", [(e.spec.id, e.path) for e in self.doc.entitlements], "id"
        )
        self._teams()
        self._levels()
        for queue in self.doc.queues:
            if queue.spec.team is not None:
                self._ref("team", queue.spec.team, self.teams, (*queue.path, "team"))
        self._calendars()
        self._policies()
        self._accounts()
        self._entitlements()
        self._rules()
        for actions in self.doc.orphan_actions:
            self._actions(actions.spec, actions.path)
        if self.doc.default is not None:
            self._actions(self.doc.default.spec, self.doc.default.path)
        return self.errors

    def _duplicates(self, what: str, items: Sequence[tuple[str, Path]], key: str) -> None:
        first: dict[str, Mark] = {}
        for name, path in items:
            where = self.smap.mark((*path, key))
            if name in first:
                seen = first[name]
                self.error(
                    f"duplicate {what} {name!r} (first defined at line {seen.line})", (*path, key)
                )
            else:
                first[name] = where

    def _ref(self, what: str, name: str, known: Collection[str], path: Path) -> bool:
        if name in known:
            return True
        self.error(f"unknown {what} {name!r}{did_you_mean(name, sorted(known))}", path)
        return False

    def _teams(self) -> None:
        for team in self.doc.teams:
            seen: set[str] = set()
            for index, member in enumerate(team.spec.members):
                path = (*team.path, "members", index)
                if member in seen:
                    self.error(f"team {team.spec.id!r} lists member {member!r} twice", path)
                seen.add(member)
                if member not in self.users:
                    hint = did_you_mean(member, sorted(self.users))
                    self.error(f"team {team.spec.id!r} member {member!r} is not a user{hint}", path)

    def _levels(self) -> None:
        levels = [(lv.spec.name, lv.path) for lv in self.doc.support_levels]
        self._duplicates("support level", levels, "name")
        for level in self.doc.support_levels:
            if level.spec.team is not None:
                self._ref("team", level.spec.team, self.teams, (*level.path, "team"))
            if level.spec.queue is not None:
                self._ref("queue", level.spec.queue, self.queues, (*level.path, "queue"))
        logins: dict[str, str] = {}
        for user in self.doc.users:
            login = user.spec.os_user
            if login is None:
                continue
            if login in logins:
                self.error(
                    f"os_user {login!r} is {logins[login]}'s already: a login is one agent's",
                    (*user.path, "os_user"),
                )
            logins.setdefault(login, user.spec.id)

    def _calendars(self) -> None:
        shared = [(h.spec, h.path) for h in self.doc.holidays]
        self._overlaps(shared)
        for item in self.doc.calendars.values():
            spec = item.spec
            self._subdiv(spec.country, spec.subdiv, item.path)
            own = [(h, (*item.path, "holidays", i)) for i, h in enumerate(spec.holidays)]
            self._overlaps(own, against=shared)

    def _subdiv(self, country: str | None, subdiv: str | None, path: Path) -> None:
        if subdiv is None:
            return
        if country is None:
            self.error(f"subdiv {subdiv!r} needs a country", (*path, "subdiv"))
            return
        code = country.strip().upper()
        choices = supported_countries()[code]
        if subdiv.strip().upper() not in choices:
            hint = did_you_mean(subdiv.strip().upper(), choices)
            listed = f"; expected one of: {', '.join(choices)}" if choices else ""
            self.error(
                f"unknown subdiv {subdiv!r} of country {code!r}{hint}{listed}",
                (*path, "subdiv"),
            )

    def _overlaps(
        self,
        items: Sequence[tuple[HolidaySpec, Path]],
        against: Sequence[tuple[HolidaySpec, Path]] = (),
    ) -> None:
        """Report each holiday in ``items`` that overlaps an earlier one or one of ``against``."""
        for index, (spec, path) in enumerate(items):
            for other, other_path in [*against, *items[:index]]:
                if spec.first <= other.last and other.first <= spec.last:
                    line = self.smap.mark(other_path).line
                    self.error(
                        f"holiday {spec.describe()} overlaps {other.describe()} at line {line}",
                        path,
                    )
                    break

    def _calendar_ref(self, name: str | None, path: Path, what: str) -> None:
        if name is not None:
            self._ref("calendar", name, self.calendars, path)
        elif default_calendar(self.calendars) is None:
            if self.calendars:
                self.error(
                    f"{what} needs a calendar: there are several under business_hours and none "
                    f"is called {DEFAULT_CALENDAR!r}; name one with 'calendar:'",
                    path,
                )
            else:
                self.error(
                    f"{what} needs a calendar: define opening hours under business_hours",
                    path,
                )

    def _policies(self) -> None:
        for name, item in self.doc.sla.items():
            spec = item.spec
            if spec.calendar is not None:
                self._calendar_ref(spec.calendar, (*item.path, "calendar"), "")
            elif spec.business_time:
                self._calendar_ref(
                    None, (*item.path, "business_time"), f"SLA {name!r} with business_time"
                )

    def _accounts(self) -> None:
        claimed: dict[tuple[str, str], tuple[str, int]] = {}  # (kind, name) -> (account, line)
        for account in self.doc.accounts:
            spec = account.spec
            if spec.entitlement is not None:
                self._ref(
                    "entitlement", spec.entitlement, self.entitlements,
                    (*account.path, "entitlement"),
                )  # fmt: skip
            for key, kind, names in (
                ("domains", "domain", spec.domains),
                ("slack_team_ids", "Slack team", spec.slack_team_ids),
            ):
                for index, name in enumerate(names):
                    path = (*account.path, key, index)
                    first = claimed.get((kind, name))
                    if first is None:
                        claimed[(kind, name)] = (spec.id, self.smap.mark(path).line)
                    elif first[0] == spec.id:
                        self.error(f"account {spec.id!r} lists {kind} {name!r} twice", path)
                    else:
                        self.error(
                            f"{kind} {name!r} is claimed by account {spec.id!r} and by account "
                            f"{first[0]!r} at line {first[1]}; give it to one of them",
                            path,
                        )

    def _entitlements(self) -> None:
        for item in self.doc.entitlements:
            spec = item.spec
            if spec.terms != AROUND_THE_CLOCK and spec.terms not in self.calendars:
                hint = did_you_mean(spec.terms, sorted(self.calendars))
                self.error(
                    f"unknown terms {spec.terms!r}{hint}: expected {AROUND_THE_CLOCK!r} or a "
                    "calendar under business_hours",
                    (*item.path, "terms"),
                )
            elif spec.timezone is not None and spec.terms != AROUND_THE_CLOCK:
                self.error(
                    f"entitlement {spec.id!r}: 'timezone' is only for {AROUND_THE_CLOCK} terms; "
                    f"calendar {spec.terms!r} has its own",
                    (*item.path, "timezone"),
                )
            if spec.sla_policy is not None:
                self._ref("SLA policy", spec.sla_policy, self.policies, (*item.path, "sla_policy"))

    def _rules(self) -> None:
        catch_all: tuple[str, int] | None = None  # the first rule that takes every message
        for rule in self.doc.rules:
            spec = rule.spec
            if catch_all is not None and spec.enabled:
                self.error(
                    f"rule {spec.name!r} can never fire: rule {catch_all[0]!r} at line "
                    f"{catch_all[1]} matches every message and stops",
                    (*rule.path, "name"),
                )
            self._conditions(spec.when, (*rule.path, "when"))
            self._actions(spec.then, (*rule.path, "then"))
            if catch_all is None and spec.enabled and spec.stop and not spec.when.given():
                catch_all = (spec.name, self.smap.mark(rule.path).line)

    def _conditions(self, spec: ConditionSpec, path: Path) -> None:
        for key, value in spec.given():
            here = (*path, key)
            if key == "business_hours":
                self._calendar_ref(
                    value.calendar,
                    (*here, "calendar") if value.calendar else here,
                    "business_hours",
                )
            elif key == "account":
                for index, name in enumerate(value):
                    self._ref("account", name, self.accounts, (*here, index))
            elif key == "tier":
                for index, name in enumerate(value):
                    if name not in self.tiers:
                        hint = did_you_mean(name, sorted(self.tiers))
                        self.error(f"no account has tier {name!r}{hint}", (*here, index))
            elif key in ("all", "any"):
                for index, child in enumerate(value):
                    self._conditions(child, (*here, index))
            elif key == "not":
                self._conditions(value, here)

    def _actions(self, spec: ActionSpec, path: Path) -> None:
        for what, name, known in (
            ("queue", spec.queue, self.queues),
            ("team", spec.team, self.teams),
            ("user", spec.user, self.users),
            ("SLA policy", spec.sla, self.policies),
        ):
            if name is not None:
                key = "sla" if what == "SLA policy" else what
                self._ref(what, name, known, (*path, key))
