"""The case service's reclassify verb (Creatio): change what a case is about.

``edit`` changes the title, description, priority, category, reason, account or SLA policy of
an open case in one audited event; the due dates are counted again from the case's creation
by the policy (and the account's entitlement) now in force, pauses left out.
"""

from __future__ import annotations

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.enums import Priority
from inbox_daemon.cases.model import Actor
from inbox_daemon.errors import CaseRuleError, NotFoundError
from inbox_daemon.service.changes import ChangeVerbs

#: What ``edit`` may change, and how a person names it.
RECLASSIFIABLE = ("title", "description", "priority", "category", "reason", "account",
                  "sla_policy")  # fmt: skip
#: The value that clears an optional field (``--category none``).
NONE = "none"


class EditVerbs(ChangeVerbs):
    async def edit(self, number: str, actor: Actor, **changes: str | None) -> lifecycle.Outcome:
        """Reclassify an open case; ``changes`` maps fields of :data:`RECLASSIFIABLE` to their
        new values (None: leave it; ``"none"``: clear an optional one)."""
        given = {k: v for k, v in changes.items() if v is not None}
        unknown = set(given) - set(RECLASSIFIABLE)
        if unknown:
            raise CaseRuleError(f"cannot edit {', '.join(sorted(unknown))}")
        if not given:
            raise CaseRuleError(
                "nothing to change: give --title, --description, --priority, --category,"
                " --reason, --account or --sla"
            )
        values: dict[str, object] = {}
        for name, raw in given.items():
            value = raw.strip()
            if name in ("title", "description"):
                values[name] = value
            elif name == "priority":
                try:
                    values[name] = Priority(value.lower())
                except ValueError:
                    known = ", ".join(p.value for p in Priority)
                    raise CaseRuleError(f"unknown priority {raw!r} ({known})") from None
            else:
                values[name] = None if value.lower() in (NONE, "") else value
        account = values.get("account")
        if isinstance(account, str) and account not in self.accounts.accounts:
            known = ", ".join(sorted(self.accounts.accounts)) or "none are configured"
            raise NotFoundError(f"unknown account {account!r} (accounts: {known})")
        policy = values.get("sla_policy")
        if isinstance(policy, str) and self.sla_lookup(policy, None) is None:
            raise NotFoundError(f"unknown SLA policy {policy!r}: rules.yaml's sla names them")
        return await self.change(number, lifecycle.Edit(values), actor)
