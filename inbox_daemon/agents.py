"""Agents working cases from Slack: the glue between the Slack app and the case service.

:class:`SlackAgents` implements the Slack app's :class:`AgentActions`: it maps the acting Slack
user to an agent (``slack_id`` in rules.yaml, else the email of their Slack profile), refuses
unmapped and inactive users, and changes the case through the :class:`CaseService` with the
agent as the audited actor. :class:`CaseCards` keeps one card per case in its queue's Slack
channel: posted the first time, updated in place after every change, with each customer message
mirrored into the card's thread and the assignee (a DM) or the team (a mention) told of
assignments and escalations.

Wiring (the daemon): ``agents = SlackAgents(service, client, background=bg)``; give every
channel ``agents.observe(ingestor)`` as its sink (cards follow intake, email included); give
the Slack app ``actions=agents, on_revision=agents.revised``; run ``agents.cards.sync()``
periodically to catch changes made elsewhere (the CLI, auto-close) and failed posts.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from inbox_daemon import document as case_document
from inbox_daemon.cases import lifecycle
from inbox_daemon.cases.accounts import format_spent
from inbox_daemon.cases.directory import Directory, User
from inbox_daemon.cases.enums import ActivityKind, ActivityState, Direction, Status
from inbox_daemon.cases.model import Actor, Case
from inbox_daemon.channels.base import BatchingSink, Delivery, IngestResult, Sink, take_batch
from inbox_daemon.channels.slack import cards
from inbox_daemon.channels.slack.actions import (
    ActionResult,
    ActivityLine,
    AgentRefused,
    CaseDetails,
    CaseDocument,
    CaseListing,
    EditChoices,
    EscalationChoices,
)
from inbox_daemon.channels.slack.background import Background
from inbox_daemon.channels.slack.errors import error_code
from inbox_daemon.channels.slack.intake import EventKind, MessageRevision
from inbox_daemon.channels.slack.profiles import SlackProfiles
from inbox_daemon.errors import CaseRuleError, ChannelUnavailable
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import Attachment
from inbox_daemon.service import CaseService, StoredFile
from inbox_daemon.store import cases as repo
from inbox_daemon.store import slack as slack_store
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import ActivityRow

__all__ = ["CaseCards", "SlackAgents"]

log = get_logger("inbox_daemon.agents")

OPEN_STATUSES = tuple(s for s in Status if s.open)
#: Intake outcomes after which the case's card is drawn again.
CARD_OUTCOMES = frozenset({"created", "appended", "reopened", "follow_up", "recorded"})
_SLACK_TROUBLE = (SlackApiError, aiohttp.ClientError, TimeoutError, OSError)
#: What an agent is told, by the reason of a notification, where "was <reason> to you" is wrong.
_TOLD = {"taken over": "was taken over from you"}
_GONE = frozenset({"message_not_found", "channel_not_found", "cant_update_message", "is_archived"})


def people_of(directory: Directory) -> dict[str, str]:
    """Agent id -> how a card shows them: a mention when their Slack id is known."""
    return {
        u.id: f"<@{u.slack_id}>" if u.slack_id else cards.escape(u.name)
        for u in directory.users.values()
    }


class CaseCards:
    """One card per case in its queue's channel, drawn again after every change."""

    def __init__(
        self, service: CaseService, client: AsyncWebClient, profiles: SlackProfiles
    ) -> None:
        self.service = service
        self.client = client
        self.profiles = profiles
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def _lock(self, number: str) -> asyncio.Lock:
        lock = self._locks.get(number)
        if lock is None:
            lock = self._locks[number] = asyncio.Lock()
        return lock

    async def refresh(
        self,
        number: str,
        *,
        mirror: int | None = None,
        notify: Sequence[lifecycle.Notify] = (),
        by: str | None = None,
        thread_text: str | None = None,
    ) -> tuple[str, str] | None:
        """Post or update the card of ``number``; then post ``mirror`` (an activity id) or
        ``thread_text`` into its thread and send the notifications. Returns (channel, ts)."""
        async with self._lock(number):  # held throughout: thread posts keep their order
            place = await self._draw(number)
            if place is None:
                return None
            async with self.service.db.transaction() as session:
                activity = await session.get(ActivityRow, mirror) if mirror else None
                files = await slack_store.attachment_names(session, mirror) if mirror else []
                case = repo.to_domain(await repo.get_case_row(session, number))
            channel, ts = place
            if activity is not None:
                who = case.contact_name or activity.sender or "The customer"
                text = cards.mirror_text(
                    who, activity.body_text, subject=activity.subject, files=files
                )
                await self._post(channel, text, thread_ts=ts)
            if thread_text:
                await self._post(channel, thread_text, thread_ts=ts)
            for effect in notify:
                await self._notify(case, effect, place, by)
            return place

    async def _draw(self, number: str) -> tuple[str, str] | None:
        directory = self.service.directory
        async with self.service.db.transaction() as session:
            state = await slack_store.card_state(session, number)
            if state is None:
                return None
            row, card = state.case, state.card
            case = repo.to_domain(row)
            latest = await repo.last_incoming(session, row.id)
            version = row.version
        queue = directory.queues.get(case.queue or "")
        target = queue.slack_channel if queue is not None else None
        if card is not None and queue is not None and target and target != card.channel:
            # The case moved to a queue worked in another channel: the old card says where it
            # went and a new card is posted there.
            await self._put(card.channel, card.ts, cards.moved_card(case, queue.name, target),
                            f"{case.number} moved to {queue.name}")  # fmt: skip
            card = None
        channel = card.channel if card is not None else target
        if channel is None:
            return None
        blocks = cards.case_card(
            case,
            latest=latest.body_text if latest is not None else None,
            people=people_of(directory),
            queue_name=queue.name if queue else None,
            account_name=self._account_name(case.account),
            zone=self.service.zone_of(case),
        )
        place = await self._put(
            card.channel if card else channel,
            card.ts if card else None,
            blocks,
            cards.card_fallback(case),
        )
        if place is None:
            return None
        async with self.service.db.transaction() as session:
            await slack_store.save_card(session, row.id, *place, version, self.service.clock())
        return place

    def _account_name(self, account: str | None) -> str | None:
        found = self.service.accounts.accounts.get(account) if account else None
        return found.name if found is not None else account

    async def _put(
        self, channel: str, ts: str | None, blocks: list[cards.Block], text: str
    ) -> tuple[str, str] | None:
        if ts is not None:
            try:
                await self.client.chat_update(channel=channel, ts=ts, blocks=blocks, text=text)
                return channel, ts
            except SlackApiError as exc:
                if error_code(exc) not in _GONE:
                    log.warning("case card not updated", channel=channel, error=_why(exc))
                    return None
                log.warning("case card gone; posting it again", channel=channel, error=_why(exc))
            except _SLACK_TROUBLE as exc:
                log.warning("case card not updated", channel=channel, error=_why(exc))
                return None
        try:
            resp = await self.client.chat_postMessage(
                channel=channel, blocks=blocks, text=text, unfurl_links=False
            )
        except _SLACK_TROUBLE as exc:
            log.warning("case card not posted", channel=channel, error=_why(exc))
            return None
        return str(resp.get("channel") or channel), str(resp["ts"])

    async def _post(self, channel: str, text: str, *, thread_ts: str | None = None) -> None:
        try:
            await self.client.chat_postMessage(
                channel=channel, text=text, thread_ts=thread_ts, unfurl_links=False
            )
        except _SLACK_TROUBLE as exc:
            log.warning("slack message not posted", channel=channel, error=_why(exc))

    async def _notify(
        self, case: Case, effect: lifecycle.Notify, place: tuple[str, str], by: str | None
    ) -> None:
        directory = self.service.directory
        channel, ts = place
        who = f" by {people_of(directory).get(by, by)}" if by else ""
        if effect.user is not None:
            slack_id = await self.slack_id_of(effect.user)
            if slack_id is not None:
                title = cards.escape(case.title)
                told = _TOLD.get(effect.reason, f"was {effect.reason} to you")
                text = f"{case.number} ({title}) {told}{who}"
                await self._post(slack_id, f"{text}: see the card in <#{channel}>.")
            return
        team_id = effect.team or case.owner_team
        team = directory.teams.get(team_id or "")
        members = [await self.slack_id_of(m) for m in team.members] if team else []
        mentions = " ".join(f"<@{m}>" for m in members if m)
        level = f" (level {case.support_level})" if effect.reason == "escalated" else ""
        text = f"{mentions or 'Team'}: {case.number} was {effect.reason}{level}{who}."
        await self._post(channel, text.strip(), thread_ts=ts)

    async def slack_id_of(self, agent_id: str) -> str | None:
        """An agent's Slack user id: from rules.yaml, else looked up by their email."""
        user = self.service.directory.users.get(agent_id)
        if user is None or not user.active:
            return None
        if user.slack_id:
            return user.slack_id
        if not user.email:
            return None
        try:
            return await self.profiles.by_email(user.email)
        except ChannelUnavailable as exc:
            log.warning("agent's Slack id unknown", agent=agent_id, error=str(exc))
            return None

    async def sync(self, limit: int = 50) -> int:
        """Draw every card that is behind its case (or missing): the periodic catch-up."""
        queues = [q.id for q in self.service.directory.queues.values() if q.slack_channel]
        async with self.service.db.transaction() as session:
            numbers = await slack_store.cards_to_sync(session, queues, limit)
        done = 0
        for number in numbers:
            async with self._lock(number):
                done += await self._draw(number) is not None
        return done


def _why(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return error_code(exc)
    return repr(exc)


class SlackAgents:
    """The agent actions of the Slack app, carried out by the case service."""

    def __init__(
        self,
        service: CaseService,
        client: AsyncWebClient,
        *,
        background: Background | None = None,
        profiles: SlackProfiles | None = None,
        files: FileStore | None = None,
        document_folder: Path | None = None,
    ) -> None:
        self.service = service
        self.client = client
        #: Where an admin's case_document.html is (rules.yaml's folder; None: the packaged).
        self.document_folder = document_folder
        #: Where the files of an agent's answer are kept (None: files are not passed on).
        self.files = files
        self.background = background if background is not None else Background()
        self.profiles = profiles if profiles is not None else SlackProfiles(client)
        self.cards = CaseCards(service, client, self.profiles)

    # --- who is acting ---------------------------------------------------------------------

    async def agent(self, slack_user: str) -> User:
        """The active agent a Slack user is; AgentRefused otherwise."""
        directory = self.service.directory
        user = directory.by_slack_id(slack_user)
        if user is None:
            profile = await self.profiles.get(slack_user)
            if profile is not None and profile.email and not (profile.is_bot or profile.deleted):
                user = directory.by_email(profile.email)
        if user is None:
            raise AgentRefused(
                f"<@{slack_user}> is not an agent: an admin can add `slack_id: {slack_user}`"
                " to your entry in rules.yaml"
            )
        if not user.active:
            raise AgentRefused(f"{user.name} is not an active agent")
        return user

    async def whoami(self, slack_user: str) -> str:
        return (await self.agent(slack_user)).id

    # --- actions ---------------------------------------------------------------------------

    def _done(self, outcome: lifecycle.Outcome, agent: User, said: str) -> ActionResult:
        """Draw the card again (and notify) once Slack has been answered. An agent the case
        service queued a notification for (``notify_channels``) gets no second one here; a
        team is still mentioned in the card's thread."""
        number = outcome.case.number
        queued = bool(self.service.notify_channels)
        notify = [
            e
            for e in outcome.effects
            if isinstance(e, lifecycle.Notify) and not (queued and e.user is not None)
        ]
        self._redraw(number, agent, notify)
        return ActionResult(number, said.format(number=number))

    def _redraw(self, number: str, agent: User, notify: Sequence[lifecycle.Notify] = ()) -> None:
        work = self.cards.refresh(number, notify=notify, by=agent.id)
        self.background.spawn(work, name=f"card {number}")

    async def pick(self, slack_user: str, number: str, *, force: bool = False) -> ActionResult:
        agent = await self.agent(slack_user)
        outcome = await self.service.pick(number, agent.id, Actor.user(agent.id), force=force)
        return self._done(outcome, agent, "You picked {number}.")

    async def release(self, slack_user: str, number: str) -> ActionResult:
        agent = await self.agent(slack_user)
        outcome = await self.service.change(number, lifecycle.Release(), Actor.user(agent.id))
        return self._done(outcome, agent, "{number} is back in its queue.")

    async def escalate(
        self,
        slack_user: str,
        number: str,
        *,
        level: str | None = None,
        team: str | None = None,
        assignee: str | None = None,
        reason: str | None = None,
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        user = None
        if assignee is not None:
            try:
                user = (await self.agent(assignee)).id
            except AgentRefused:
                raise AgentRefused(f"<@{assignee}> is not an active agent") from None
        outcome = await self.service.escalate(
            number, Actor.user(agent.id), level=level, team=team, user=user, reason=reason
        )
        name = self.service.directory.level_name(outcome.case.support_level)
        return self._done(outcome, agent, f"{{number}} is escalated to {name}.")

    async def escalation_choices(self, slack_user: str, number: str) -> EscalationChoices:
        await self.agent(slack_user)
        case = await self.service.get(number)
        directory = self.service.directory
        above = directory.levels[case.support_level :]
        return EscalationChoices(
            case.number,
            directory.level_name(case.support_level),
            tuple(level.name for level in above),
            tuple((t.id, t.name) for t in directory.teams.values()),
        )

    async def edit_choices(self, slack_user: str, number: str) -> EditChoices:
        await self.agent(slack_user)
        accounts = self.service.accounts.accounts.values()
        return EditChoices(
            await self.service.get(number),
            tuple((a.id, a.name) for a in accounts),
            self.service.sla_names,
        )

    async def edit(
        self, slack_user: str, number: str, values: Mapping[str, str | None]
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        case = await self.service.get(number)
        changed = {k: v for k, v in values.items() if (v or None) != _field_text(case, k)}
        if not changed:
            raise CaseRuleError(f"nothing to change: the form has {case.number}'s values")
        outcome = await self.service.edit(
            number, Actor.user(agent.id), **{k: v or "none" for k, v in changed.items()}
        )
        fields = ", ".join(sorted({c.field for c in outcome.changes} & set(values)))
        return self._done(outcome, agent, f"{{number}} is reclassified: {fields}.")

    async def link(self, slack_user: str, number: str, parent: str) -> ActionResult:
        agent = await self.agent(slack_user)
        outcome = await self.service.link(number, parent, Actor.user(agent.id))
        return self._done(outcome, agent, f"{{number}} now has parent case {parent.upper()}.")

    async def unlink(self, slack_user: str, number: str) -> ActionResult:
        agent = await self.agent(slack_user)
        outcome = await self.service.unlink(number, Actor.user(agent.id))
        return self._done(outcome, agent, "{number} has no parent case now.")

    async def merge(self, slack_user: str, number: str, into: str) -> ActionResult:
        agent = await self.agent(slack_user)
        outcome = await self.service.merge(number, into, Actor.user(agent.id))
        self._redraw(into.upper(), agent)
        return self._done(outcome, agent, f"{{number}} is merged into {into.upper()} and closed.")

    async def close(self, slack_user: str, number: str) -> ActionResult:
        agent = await self.agent(slack_user)
        outcome = await self.service.close(number, Actor.user(agent.id))
        return self._done(outcome, agent, "{number} is closed.")

    async def resolve(
        self,
        slack_user: str,
        number: str,
        resolution: str,
        *,
        open_activities: lifecycle.OpenActivityPolicy = "fail",
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        outcome = await self.service.resolve(
            number, resolution, Actor.user(agent.id), open_activities=open_activities
        )
        return self._done(outcome, agent, "{number} is resolved.")

    async def assign(self, slack_user: str, number: str, assignee: str) -> ActionResult:
        agent = await self.agent(slack_user)
        try:
            target = await self.agent(assignee)
        except AgentRefused:
            raise AgentRefused(f"<@{assignee}> is not an active agent") from None
        outcome = await self.service.assign(number, Actor.user(agent.id), user=target.id)
        return self._done(outcome, agent, f"{{number}} is assigned to {target.name}.")

    async def reply(
        self,
        slack_user: str,
        number: str,
        text: str,
        *,
        source: str | None = None,
        attachments: Sequence[Attachment] = (),
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        stored = await self._store(attachments)
        activity = await self.service.reply(
            number, text, Actor.user(agent.id), source=_source(source), files=stored
        )
        self._redraw(number.upper(), agent)
        to = ", ".join(activity.recipients) or "the customer"
        message = f"Reply to {to} queued ({activity.kind})."
        if attachments:
            if stored and activity.kind == ActivityKind.EMAIL.value:
                names = ", ".join(f.filename for f in stored)
                message += f" With {len(stored)} file{'s' if len(stored) > 1 else ''}: {names}."
            else:
                message += " Its files stay in Slack: they are passed on by email only."
        return ActionResult(number.upper(), message)

    async def _store(self, attachments: Sequence[Attachment]) -> list[StoredFile]:
        """Put an answer's files in the attachment store, together (content-addressed: a retry
        adds no second copy)."""
        if self.files is None:
            return []
        put = self.files.put_attachment
        found = await asyncio.gather(*(asyncio.to_thread(put, att) for att in attachments))
        return [
            StoredFile(sha, size, att.filename, att.content_type)
            for att, (sha, size) in zip(attachments, found, strict=True)
        ]

    async def note(
        self, slack_user: str, number: str, text: str, *, source: str | None = None
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        await self.service.note(number, text, Actor.user(agent.id), source=_source(source))
        return ActionResult(number.upper(), f"Internal note added to {number.upper()}.")

    # --- activities agents log ---------------------------------------------------------------

    async def open_activity_count(self, slack_user: str, number: str) -> int:
        await self.agent(slack_user)
        return len(await self.service.open_activities(number))

    async def log_call(
        self,
        slack_user: str,
        number: str,
        direction: str,
        text: str,
        *,
        spent_minutes: int | None = None,
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        activity = await self.service.log_call(
            number, direction, text, Actor.user(agent.id), spent_minutes=spent_minutes
        )
        way = "an incoming" if activity.direction == Direction.INCOMING.value else "an outgoing"
        took = f" ({format_spent(spent_minutes)})" if spent_minutes else ""
        said = f":telephone_receiver: {cards.escape(agent.name)} logged {way} call{took}:\n"
        self._tell_thread(number, said + cards.quote(activity.body_text))
        return ActionResult(number.upper(), f"Call #{activity.id} logged on {number.upper()}.")

    async def add_task(
        self,
        slack_user: str,
        number: str,
        subject: str,
        *,
        due: datetime | None = None,
        assignee: str | None = None,
        spent_minutes: int | None = None,
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        target = None
        if assignee is not None:
            try:
                target = await self.agent(assignee)
            except AgentRefused:
                raise AgentRefused(f"<@{assignee}> is not an active agent") from None
        activity = await self.service.add_task(
            number, subject, Actor.user(agent.id), due=due,
            assignee=target.id if target is not None else None, spent_minutes=spent_minutes,
        )  # fmt: skip
        people = people_of(self.service.directory)
        said = f":ballot_box_with_check: {cards.escape(agent.name)} added task #{activity.id}"
        if target is not None:
            said += f" for {people.get(target.id, target.id)}"
        if due is not None:
            said += f", due {cards.date_text(due)}"
        self._tell_thread(number, f"{said}:\n{cards.quote(activity.subject)}")
        return ActionResult(number.upper(), f"Task #{activity.id} added to {number.upper()}.")

    async def settle_activity(
        self, slack_user: str, number: str, activity_id: int, *, complete: bool
    ) -> ActionResult:
        agent = await self.agent(slack_user)
        state = ActivityState.COMPLETED if complete else ActivityState.CANCELLED
        await self.service.settle_activity(number, activity_id, state, Actor.user(agent.id))
        return ActionResult(number.upper(), f"Activity #{activity_id} of {number.upper()} is"
                                            f" {state.value}.")  # fmt: skip

    def _tell_thread(self, number: str, text: str) -> None:
        """Say in the card's thread what an agent logged (after Slack is answered)."""
        work = self.cards.refresh(number.upper(), thread_text=text)
        self.background.spawn(work, name=f"card {number.upper()}")

    # --- reading ---------------------------------------------------------------------------

    async def card_case(self, channel: str, ts: str) -> str | None:
        async with self.service.db.transaction() as session:
            return await slack_store.card_case(session, channel, ts)

    async def message_case(self, channel: str, ts: str) -> str | None:
        async with self.service.db.transaction() as session:
            return await slack_store.message_case(session, channel, ts)

    async def list_cases(self, slack_user: str, channel: str | None = None) -> CaseListing:
        agent = await self.agent(slack_user)
        directory = self.service.directory
        queues = [q.id for q in directory.queues.values() if channel and q.slack_channel == channel]
        if not queues:
            queues = [q for q in directory.queues if directory.may_work(agent.id, q)]
        mine = await self.service.find(status=OPEN_STATUSES, owner=agent.id, limit=50)
        waiting: list[Case] = []
        for queue in queues:
            found = await self.service.find(status=OPEN_STATUSES, queue=queue, limit=50)
            waiting.extend(c for c in found if c.owner_user is None)
        return CaseListing(
            agent.id, tuple(mine), tuple(waiting), tuple(queues), people_of(directory)
        )

    async def show(self, slack_user: str, number: str) -> CaseDetails:
        await self.agent(slack_user)
        view = await self.service.show(number)
        lines = tuple(
            ActivityLine(
                a.created_at, a.kind, a.direction, a.sender or a.actor, a.body_text or a.subject
            )
            for a in view.activities[-8:]
        )
        return CaseDetails(view.case, lines, people_of(self.service.directory))

    async def document(self, slack_user: str, number: str) -> CaseDocument:
        await self.agent(slack_user)
        view = await self.service.show(number)

        def make() -> bytes:  # Jinja and WeasyPrint: off the event loop
            template = case_document.read_template(self.document_folder)
            html = case_document.render_html(view, template, now=self.service.clock())
            return case_document.to_pdf(html, template.path.parent)

        content = await asyncio.to_thread(make)
        case = view.case
        return CaseDocument(
            case.number, f"{case.number}.pdf", f"{case.number}: {case.title}", content
        )

    # --- intake and revisions --------------------------------------------------------------

    def observe(self, sink: Sink) -> Sink:
        """``sink`` (the Ingestor) with the cards following what it takes in."""

        def follow(result: IngestResult) -> IngestResult:
            if result.case_number and result.outcome in CARD_OUTCOMES:
                self.background.spawn(self._after_intake(result), name=f"card {result.case_number}")
            return result

        async def observed(delivery: Delivery) -> IngestResult:
            return follow(await sink(delivery))

        async def observed_batch(deliveries: Sequence[Delivery]) -> list[IngestResult]:
            return [follow(result) for result in await take_batch(sink, deliveries)]

        return BatchingSink(observed, observed_batch)

    async def _after_intake(self, result: IngestResult) -> None:
        number = result.case_number or ""
        notify: list[lifecycle.Notify] = []
        queued = bool(self.service.notify_channels)  # intake queued the owner's notification
        if result.outcome in ("created", "follow_up") and not queued:
            owner = (await self.service.get(number)).owner_user
            if owner is not None:
                notify.append(lifecycle.Notify(owner, None, "routed"))
        elif result.outcome == "reopened":
            notify.append(lifecycle.Notify(None, None, "reopened by the customer"))
        await self.cards.refresh(number, mirror=result.activity_id, notify=notify)

    async def delivery_failed(self, number: str, error: str) -> None:
        """Our message to the customer was given up: say so in the case card's thread."""
        await self.cards.refresh(
            number,
            thread_text=f":warning: Our message to the customer could not be delivered: {error}",
        )

    async def revised(self, revision: MessageRevision) -> None:
        """A customer edited or deleted a message: an internal note on its case says so."""
        number = await self.service.revise(
            revision.channel,
            revision.ts,
            deleted=revision.kind is EventKind.DELETED,
            text=revision.text,
        )
        if number is None:
            return
        if revision.kind is EventKind.EDITED:
            text = f"The customer edited their Slack message to:\n{revision.text}"
        else:
            text = f"The customer deleted their Slack message:\n{revision.previous_text}"
        try:
            await self.service.note(number, text, Actor.channel(f"slack:{revision.team}"))
        except CaseRuleError as exc:
            log.info("message revision not noted", case=number, error=str(exc))
            return
        await self.cards.refresh(number, thread_text=f":pencil2: {cards.quote(text)}")


def _field_text(case: Case, name: str) -> str | None:
    """A reclassifiable field of a case as the Edit form shows it."""
    value = getattr(case, name)
    return None if value in (None, "") else str(value)


def _source(message: str | None) -> tuple[str, str, str] | None:
    """The receipt key of an agent's Slack message (``channel:ts``)."""
    return ("slack-agent", "slack", message) if message else None
