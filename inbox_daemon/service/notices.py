"""Telling agents what happened to a case: the notifications the case service queues.

A lifecycle change returns ``Notify`` effects (assigned, escalated, taken over); for each, the
agent named, or every active member of the team, gets a ``notification`` activity on the case
in the change's own transaction — a Slack DM when the agent has a Slack id and Slack is on, an
email to their address otherwise — which the outbox delivers exactly once, like an answer to a
customer, whoever made the change (the CLI, Slack, a rule). The one who made it is not told.
Nothing is queued through a channel the daemon does not run (``notify_channels``). The words
come from the templates of :mod:`.notice_templates` (an admin's beside rules.yaml).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.directory import Directory, User
from inbox_daemon.cases.enums import (
    ActivityKind,
    ActivityState,
    ActorKind,
    DeliveryState,
    Direction,
)
from inbox_daemon.cases.model import Actor
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import clean_text
from inbox_daemon.service.notice_templates import NoticeTemplates
from inbox_daemon.store import ids
from inbox_daemon.store.tables import ActivityRow, CaseRow

log = get_logger("inbox_daemon.service")

#: What an agent is told, by the reason of a notification.
_TOLD = {"taken over": "was taken over from you"}
#: Reasons said of the case alone, not "… to you" ("reopened to your team" is not English).
_TO_NOBODY = frozenset({"reopened", "reactivated", "taken over"})


def recipients(
    directory: Directory, effect: lifecycle.Notify, owner_team: str | None, actor: Actor
) -> list[tuple[User, str]]:
    """(agent, how they are addressed: "you" or "your team …") for one effect."""
    acting = actor.name if actor.kind is ActorKind.USER else None
    found: list[tuple[User, str]] = []
    if effect.user is not None:
        user = directory.users.get(effect.user)
        if user is not None and user.active and user.id != acting:
            found.append((user, "you"))
        return found
    team = directory.teams.get(effect.team or owner_team or "")
    if team is None:
        return found
    for member in team.members:
        user = directory.users.get(member)
        if user is not None and user.active and user.id != acting:
            found.append((user, f"your team {team.name}"))
    return found


def notice_values(
    row: CaseRow, effect: lifecycle.Notify, to: str, by: str, directory: Directory, account: str
) -> dict[str, str]:
    """What a template's placeholders stand for (:mod:`.notice_templates`)."""
    told = _TOLD.get(effect.reason, f"was {effect.reason} to {to}")
    if effect.reason in _TO_NOBODY and not (to == "you" and effect.reason in _TOLD):
        told = f"was {effect.reason}"
    level = directory.level_name(row.support_level) if effect.reason == "escalated" else ""
    team = directory.teams.get(row.owner_team or "")
    return {
        "case_number": row.number,
        "title": clean_text(row.title),
        "reason": effect.reason,
        "Reason": effect.reason.capitalize(),
        "told": f"{told} ({level})" if level else told,
        "by": by,
        "customer": row.contact_name or row.contact_email or row.contact_slack or "unknown",
        "account": account,
        "priority": row.priority,
        "status": row.status.replace("_", " "),
        "queue": row.queue or "",
        "team": team.name if team is not None else (row.owner_team or ""),
        "level": directory.level_name(row.support_level),
    }


async def queue_notices_in(
    session: AsyncSession,
    row: CaseRow,
    effects: Sequence[lifecycle.Effect],
    actor: Actor,
    *,
    directory: Directory,
    channels: Collection[str],
    new_message_id: Callable[[], str],
    now: datetime,
    templates: NoticeTemplates,
    account: str = "",
) -> list[ActivityRow]:
    """The notification activities of ``effects``, added to the caller's transaction."""
    made: list[ActivityRow] = []
    if not channels:
        return made
    by = _who(directory, actor)
    for effect in effects:
        if not isinstance(effect, lifecycle.Notify):
            continue
        for user, to in recipients(directory, effect, row.owner_team, actor):
            values = notice_values(row, effect, to, by, directory, account)
            subject, text = templates.for_reason(effect.reason).render(values)
            if user.slack_id and "slack" in channels:
                channel, address, slack = "slack", user.slack_id, user.slack_id
            elif user.email and "email" in channels:
                channel, address, slack = "email", user.email, None
            else:
                log.info("agent not notified: no way to reach them", case=row.number,
                         agent=user.id, reason=effect.reason)  # fmt: skip
                continue
            activity = ActivityRow(
                id=await ids.new_id(session, ActivityRow),
                case_id=row.id,
                kind=ActivityKind.NOTIFICATION.value,
                direction=Direction.OUTGOING.value,
                state=ActivityState.COMPLETED.value,
                channel=channel,
                subject=subject,
                body_text=text,
                recipients=[address],
                message_id=new_message_id(),
                slack_channel=slack,
                automatic=True,
                flags={"notify": effect.reason, "agent": user.id},
                actor=str(actor),
                delivery_state=DeliveryState.PENDING.value,
                next_attempt_at=now,
                created_at=now,
                updated_at=now,
            )
            session.add(activity)
            made.append(activity)
    return made


def _who(directory: Directory, actor: Actor) -> str:
    """The one who made the change, as an agent reads it."""
    if actor.kind is ActorKind.USER:
        user = directory.users.get(actor.name)
        return user.name if user is not None else actor.name
    if actor.kind is ActorKind.CUSTOMER:
        return f"the customer ({actor.name})" if actor.name else "the customer"
    if actor.kind is ActorKind.RULE:
        return f"the routing rule {actor.name}"
    if actor.kind is ActorKind.CHANNEL:
        return f"a customer message ({actor.name})"
    return str(actor)
