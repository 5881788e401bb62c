"""The bolt listeners: what each Slack request means, and who it is handed to.

* ``message`` events: a customer message in an intake channel goes to the sink (and Slack is
  answered only after the sink returned, so a failure makes Slack deliver it again); a message
  in a case card's thread is an agent's reply to the customer, or an internal note when it
  starts with the note marker; edits and deletions of customer messages go to the revision
  callback; bot messages (ours included) and everything else are acknowledged and dropped.
* card buttons and the Assign picker, the Resolve, Log call and Add task modals (:mod:`.forms`),
  the "Add as internal note" message shortcut and the ``/case`` command call
  :class:`~.actions.AgentActions`; ``/case document`` sends the case's PDF to the user as a
  file in a direct message.

Slack is answered as soon as the case is changed; posting ephemeral notices runs afterwards in
the background. A retry of an event handled here or still in hand is answered at once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from inbox_daemon.channels.base import Delivery, Sink
from inbox_daemon.errors import ChannelUnavailable, InboxError, OpenActivitiesError, PickedByOther
from inbox_daemon.logging import get_logger

from . import cards, escalation, forms, reclassify
from .actions import AgentActions, CaseDocument
from .background import Background
from .errors import error_code
from .files import FileFetcher
from .intake import (
    EventKind,
    MessageRevision,
    RecentEvents,
    RevisionSink,
    classify,
    event_key,
    message_delivery,
    revision_of,
    slack_to_plain,
)
from .profiles import SlackProfiles

__all__ = ["USAGE", "SlackHandlers"]

log = get_logger("inbox_daemon.channels.slack")

USAGE = (
    "*Usage:* `{cmd} list` · `{cmd} show CAS-000123` · `{cmd} pick CAS-000123 [force]` · "
    "`{cmd} resolve CAS-000123 <resolution>` · `{cmd} note CAS-000123 <text>` · "
    "`{cmd} escalate CAS-000123 <reason>` · `{cmd} link CAS-000123 <parent CAS-…>` · "
    "`{cmd} unlink CAS-000123` · `{cmd} merge CAS-000123 <into CAS-…>` · "
    "`{cmd} close CAS-000123` · `{cmd} activity complete|cancel CAS-000123 <id>` · "
    "`{cmd} document CAS-000123`"
)
#: ``/case`` verbs that name a case, and those that name a second one after it.
_NUMBERED = frozenset({"show", "pick", "resolve", "note", "escalate", "link", "unlink", "merge",
                       "close", "document"})  # fmt: skip
_PAIRED = frozenset({"link", "merge"})
_NUMBER = re.compile(r"^CAS-\d{6,}$", re.IGNORECASE)


class SlackHandlers:
    """Registers the listeners on a bolt app and carries out what they mean."""

    def __init__(
        self,
        *,
        client: AsyncWebClient,
        actions: AgentActions,
        profiles: SlackProfiles,
        files: FileFetcher,
        background: Background,
        intake_channels: Collection[str],
        note_marker: str = "!note",
        command: str = "/case",
        on_revision: RevisionSink | None = None,
    ) -> None:
        self.client = client
        self.actions = actions
        self.profiles = profiles
        self.files = files
        self.background = background
        self.intake_channels = frozenset(intake_channels)
        self.note_marker = note_marker
        self.command = command
        self.on_revision = on_revision
        self.recent = RecentEvents()
        self.sink: Sink | None = None
        self.bot_user_id: str | None = None

    def register(self, app: AsyncApp) -> None:
        app.event("message")(self.on_message)
        app.action(re.compile(f"^({'|'.join(cards.CARD_ACTIONS)})$"))(self.on_card_action)
        app.view(forms.RESOLVE_VIEW)(self.on_resolve)
        app.view(forms.CALL_VIEW)(self.on_call)
        app.view(forms.TASK_VIEW)(self.on_task)
        app.view(escalation.ESCALATE_VIEW)(self.on_escalate)
        app.view(reclassify.EDIT_VIEW)(self.on_edit)
        app.command(self.command)(self.on_command)
        app.shortcut(cards.NOTE_SHORTCUT)(self.on_note_shortcut)
        app.event(re.compile(".*"))(self.on_other_event)

    # --- events ----------------------------------------------------------------------------

    async def on_message(
        self, body: dict[str, Any], event: dict[str, Any], request: AsyncBoltRequest
    ) -> None:
        kind = classify(event, intake_channels=self.intake_channels, bot_user_id=self.bot_user_id)
        if kind is EventKind.CUSTOMER:
            await self._customer(body, event, request)
        elif kind is EventKind.THREAD:
            await self._thread_message(body, event)
        elif kind in (EventKind.EDITED, EventKind.DELETED):
            revision = revision_of(body, event)
            if revision is not None:
                self.background.spawn(self._revised(revision), name=f"slack-{kind.value}")

    async def _revised(self, revision: MessageRevision) -> None:
        if self.on_revision is not None:
            await self.on_revision(revision)

    async def on_other_event(self) -> None:
        """Events we subscribe to but do not use are acknowledged (never answered 404)."""

    async def _customer(
        self, body: Mapping[str, Any], event: Mapping[str, Any], request: AsyncBoltRequest
    ) -> None:
        if self.sink is None:
            raise ChannelUnavailable("slack", "the Slack app has not been started with a sink")
        key = event_key(body, event)
        retry = (request.headers.get("x-slack-retry-num") or [""])[0]
        if not self.recent.begin(key):
            log.info("slack event already taken in or in hand", event_id=key, retry=retry)
            return
        try:
            result = await self.sink(await self._delivery(body, event))
        except BaseException:
            self.recent.abandon(key)
            raise
        self.recent.finish(key)
        log.info(
            "slack message handed over",
            event_id=key,
            retry=retry,
            outcome=result.outcome,
            case=result.case_number,
        )

    async def _delivery(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> Delivery:
        user = str(event.get("user"))
        prof: Mapping[str, Any] = event.get("user_profile") or {}
        name = str(prof.get("display_name") or prof.get("real_name") or "")
        if not name:
            try:
                profile = await self.profiles.get(user)
            except ChannelUnavailable as exc:
                log.warning("slack sender name unknown", user=user, error=str(exc))
                profile = None
            name = profile.name if profile is not None else ""
        attachments, notes = await self.files.fetch(event.get("files") or ())
        return message_delivery(body, event, sender_name=name, attachments=attachments, notes=notes)

    async def _thread_message(self, body: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        channel, thread_ts = str(event["channel"]), str(event["thread_ts"])
        user = str(event["user"])
        number = await self.actions.card_case(channel, thread_ts)
        if number is None:
            return  # a thread that is not a case card's
        key = event_key(body, event)
        if not self.recent.begin(key):
            log.info("slack thread message already handled", event_id=key)
            return
        text = slack_to_plain(str(event.get("text", ""))).strip()
        note = self._note_text(text)
        source = f"{channel}:{event.get('ts', '')}" if event.get("ts") else None
        files = event.get("files") or ()
        skipped: tuple[str, ...] = ()
        try:
            if note is not None:
                result = await self.actions.note(user, number, note, source=source)
            else:
                attachments, skipped = await self.files.fetch(files) if files else ((), ())
                result = await self.actions.reply(
                    user, number, text, source=source, attachments=attachments
                )
        except InboxError as exc:
            self.recent.finish(key)
            self.tell(channel, user, f":warning: {exc}", thread_ts=thread_ts)
            return
        except BaseException:
            self.recent.abandon(key)
            raise
        self.recent.finish(key)
        if note is not None and files:
            self.tell(channel, user, f"{result.message} Its files stay in Slack.",
                      thread_ts=thread_ts)  # fmt: skip
        elif files:
            told = " ".join([result.message, *skipped])
            self.tell(channel, user, told, thread_ts=thread_ts)

    def _note_text(self, text: str) -> str | None:
        """The note in a thread message that starts with the note marker, else None."""
        marker = self.note_marker
        head, rest = text[: len(marker)], text[len(marker) :]
        if head.lower() != marker.lower() or (rest and not rest[0].isspace()):
            return None
        return rest.strip()

    # --- interactions ----------------------------------------------------------------------

    async def on_card_action(
        self, ack: AsyncAck, body: dict[str, Any], action: dict[str, Any]
    ) -> None:
        await ack()
        user = str(body["user"]["id"])
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id"
        )
        number = cards.case_number_of(action)
        if number is None:
            log.warning("card action without a case number", action=action.get("action_id"))
            return
        action_id = action.get("action_id")
        trigger = str(body.get("trigger_id", ""))
        try:
            if action_id == cards.ACTION_RESOLVE:
                count = await self.actions.open_activity_count(user, number)
                await self._open_modal(trigger, forms.resolve_modal(number, count), "Resolve")
            elif action_id == cards.ACTION_LOG_CALL:
                await self.actions.whoami(user)
                await self._open_modal(trigger, forms.call_modal(number), "Log call")
            elif action_id == cards.ACTION_ADD_TASK:
                await self.actions.whoami(user)
                await self._open_modal(trigger, forms.task_modal(number), "Add task")
            elif action_id == cards.ACTION_ESCALATE:
                choices = await self.actions.escalation_choices(user, number)
                modal = escalation.escalate_modal(choices)
                await self._open_modal(trigger, modal, "Escalate")
            elif action_id == cards.ACTION_EDIT:
                form = reclassify.edit_modal(await self.actions.edit_choices(user, number))
                await self._open_modal(trigger, form, "Edit")
            elif action_id in (cards.ACTION_PICK, cards.ACTION_TAKE_OVER):
                force = action_id == cards.ACTION_TAKE_OVER
                result = await self.actions.pick(user, number, force=force)
                if force:
                    self.tell(channel, user, result.message)
            elif action_id == cards.ACTION_RELEASE:
                await self.actions.release(user, number)
            elif action_id == cards.ACTION_ASSIGN and action.get("selected_user"):
                result = await self.actions.assign(user, number, str(action["selected_user"]))
                self.tell(channel, user, result.message)
        except PickedByOther as exc:
            blocks = escalation.take_over_blocks(number, str(exc), exc.worker)
            self.tell(channel, user, f":warning: {exc}", blocks=blocks)
        except InboxError as exc:
            self.tell(channel, user, f":warning: {exc}")

    async def _open_modal(self, trigger_id: str, view: cards.Block, what: str) -> None:
        try:
            await self.client.views_open(trigger_id=trigger_id, view=view)
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelUnavailable("slack", f"could not open the {what} form: {exc}") from None

    async def on_escalate(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body["user"]["id"])
        form = escalation.parse_escalate_submission(view)
        if not form.reason.strip():
            await ack(response_action="errors", errors={escalation.REASON_BLOCK: "Say why."})
            return
        try:
            await self.actions.escalate(
                user,
                form.number,
                level=form.level,
                team=form.team,
                assignee=form.assignee,
                reason=form.reason,
            )
        except InboxError as exc:
            await ack(response_action="errors", errors={escalation.REASON_BLOCK: str(exc)})
            return
        await ack()

    async def on_edit(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body["user"]["id"])
        number, values = reclassify.parse_edit_submission(view)
        try:
            await self.actions.edit(user, number, values)
        except InboxError as exc:
            await ack(response_action="errors", errors={"title": str(exc)})
            return
        await ack()

    async def on_resolve(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body["user"]["id"])
        number, resolution, policy = forms.parse_resolve_submission(view)
        if not resolution.strip():
            problem = {forms.RESOLUTION_BLOCK: "Say how the case was resolved."}
            await ack(response_action="errors", errors=problem)
            return
        try:
            await self.actions.resolve(user, number, resolution, open_activities=policy)
        except OpenActivitiesError as exc:
            await ack(response_action="errors", errors=_open_activities_problem(view, exc))
            return
        except InboxError as exc:
            await ack(response_action="errors", errors={forms.RESOLUTION_BLOCK: str(exc)})
            return
        await ack()

    async def on_call(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body["user"]["id"])
        number, direction, text = forms.parse_call_submission(view)
        try:
            spent = forms.spent_of(view)
        except InboxError as exc:
            await ack(response_action="errors", errors={forms.SPENT_BLOCK: str(exc)})
            return
        if not direction:
            problem = {forms.DIRECTION_BLOCK: "Who called whom?"}
        elif not text.strip():
            problem = {forms.CALL_TEXT_BLOCK: "Say what was said."}
        else:
            try:
                await self.actions.log_call(user, number, direction, text, spent_minutes=spent)
            except InboxError as exc:
                problem = {forms.CALL_TEXT_BLOCK: str(exc)}
            else:
                await ack()
                return
        await ack(response_action="errors", errors=problem)

    async def on_task(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = str(body["user"]["id"])
        number, subject, due, assignee = forms.parse_task_submission(view)
        try:
            spent = forms.spent_of(view)
        except InboxError as exc:
            await ack(response_action="errors", errors={forms.SPENT_BLOCK: str(exc)})
            return
        if not subject.strip():
            await ack(response_action="errors", errors={forms.TASK_SUBJECT_BLOCK: "Say what is"
                                                        " to be done."})  # fmt: skip
            return
        try:
            if assignee is not None:
                await self.actions.whoami(assignee)
        except InboxError:
            problem = {forms.ASSIGNEE_BLOCK: f"<@{assignee}> is not an active agent."}
            await ack(response_action="errors", errors=problem)
            return
        try:
            await self.actions.add_task(
                user, number, subject, due=due, assignee=assignee, spent_minutes=spent
            )
        except InboxError as exc:
            await ack(response_action="errors", errors={forms.TASK_SUBJECT_BLOCK: str(exc)})
            return
        await ack()

    async def on_note_shortcut(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        user = str(body["user"]["id"])
        channel = str((body.get("channel") or {}).get("id", ""))
        message: Mapping[str, Any] = body.get("message") or {}
        ts = str(message.get("thread_ts") or message.get("ts") or "")
        try:
            number = await self.actions.message_case(channel, ts)
            if number is None:
                self.tell(channel, user, ":warning: This message is not part of a case.")
                return
            text = slack_to_plain(str(message.get("text", "")))
            author = message.get("user")
            if author:
                text = f"{text}\n\n(Slack message by @{author})"
            result = await self.actions.note(user, number, text)
        except InboxError as exc:
            self.tell(channel, user, f":warning: {exc}")
            return
        self.tell(channel, user, result.message)

    async def on_command(self, ack: AsyncAck, command: dict[str, Any]) -> None:
        try:
            text, blocks = await self._command(command)
        except InboxError as exc:
            text, blocks = f":warning: {exc}", None
        await ack(text=text, blocks=blocks, response_type="ephemeral")

    async def _command(self, command: Mapping[str, Any]) -> tuple[str, list[cards.Block] | None]:
        """What ``/case …`` answers: a text, and blocks for ``list`` and ``show``."""
        user = str(command.get("user_id", ""))
        words = str(command.get("text", "")).strip().split(maxsplit=2)
        sub = words[0].lower() if words else ""
        number = words[1].upper() if len(words) > 1 else ""
        rest = words[2].strip() if len(words) > 2 else ""
        usage = USAGE.format(cmd=self.command)
        if sub == "list":
            listing = await self.actions.list_cases(user, command.get("channel_id"))
            return f"{len(listing.mine)} open cases of yours", cards.listing_blocks(listing)
        if sub in _NUMBERED and not _NUMBER.match(number):
            return f":warning: `{sub}` needs a case number like CAS-000123.\n{usage}", None
        if sub in _PAIRED and not _NUMBER.match(rest):
            return f":warning: `{sub}` needs a second case number after {number}.\n{usage}", None
        if sub == "show":
            details = await self.actions.show(user, number)
            return cards.card_fallback(details.case), cards.details_blocks(details)
        if sub == "pick" and rest.lower() in ("", "force"):
            return (await self.actions.pick(user, number, force=bool(rest))).message, None
        if sub == "escalate":
            return (await self.actions.escalate(user, number, reason=rest or None)).message, None
        if sub == "link":
            return (await self.actions.link(user, number, rest.upper())).message, None
        if sub == "merge":
            return (await self.actions.merge(user, number, rest.upper())).message, None
        if sub == "unlink" and not rest:
            return (await self.actions.unlink(user, number)).message, None
        if sub == "close" and not rest:
            return (await self.actions.close(user, number)).message, None
        if sub == "resolve" and rest:
            return (await self.actions.resolve(user, number, rest)).message, None
        if sub == "note" and rest:
            return (await self.actions.note(user, number, rest)).message, None
        if sub == "activity":
            return await self._activity_command(user, str(command.get("text", ""))), None
        if sub == "document" and not rest:
            made = await self.actions.document(user, number)
            self.background.spawn(
                self._send_document(made, user, command.get("channel_id")), "slack-document"
            )
            return f"{made.number}: its document comes as a direct message from me.", None
        return usage, None

    async def _activity_command(self, user: str, text: str) -> str:
        """``/case activity complete|cancel CAS-000123 <id>``."""
        words = text.split()
        if len(words) == 4 and words[1].lower() in ("complete", "cancel"):
            number, activity_id = words[2], words[3].lstrip("#")
            if _NUMBER.match(number) and activity_id.isdigit():
                complete = words[1].lower() == "complete"
                result = await self.actions.settle_activity(
                    user, number.upper(), int(activity_id), complete=complete
                )
                return result.message
        usage = USAGE.format(cmd=self.command)
        return f":warning: `activity` needs complete or cancel, a case number and an id.\n{usage}"

    async def _send_document(self, made: CaseDocument, user: str, channel: str | None) -> None:
        """The document as a file in a direct message to ``user``; told in ``channel`` if
        Slack refuses it."""
        try:
            opened = await self.client.conversations_open(users=user)
            await self.client.files_upload_v2(
                channel=str(opened["channel"]["id"]),
                content=made.content,
                filename=made.filename,
                title=made.title,
                initial_comment=f"The customer document of {made.number} (no internal notes).",
            )
        except (SlackApiError, SlackRequestError, aiohttp.ClientError, TimeoutError,
                OSError) as exc:  # fmt: skip
            said = error_code(exc) if isinstance(exc, SlackApiError) else str(exc).splitlines()[0]
            log.warning("case document not sent", case=made.number, user=user, error=said)
            self.tell(
                channel, user,
                f":warning: Slack would not take {made.number}'s document ({said}); on the"
                f" server: `inbox-daemon cases document {made.number} --format pdf -o"
                f" {made.filename}`",
            )  # fmt: skip

    # --- telling the user ------------------------------------------------------------------

    def tell(
        self,
        channel: str | None,
        user: str,
        text: str,
        thread_ts: str | None = None,
        *,
        blocks: list[cards.Block] | None = None,
    ) -> None:
        """An ephemeral message to ``user`` in ``channel``, posted after Slack is answered."""
        if channel:
            work = self._ephemeral(channel, user, text, thread_ts, blocks)
            self.background.spawn(work, "slack-tell")

    async def _ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        thread_ts: str | None,
        blocks: list[cards.Block] | None = None,
    ) -> None:
        try:
            await self.client.chat_postEphemeral(
                channel=channel, user=user, text=text, thread_ts=thread_ts, blocks=blocks
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("ephemeral message not posted", channel=channel, user=user, error=str(exc))


def _open_activities_problem(view: Mapping[str, Any], exc: OpenActivitiesError) -> dict[str, str]:
    """The refusal of a Resolve modal's submission for open activities, under its question (or,
    if the modal had none when it was opened, under the resolution)."""
    many = f"{exc.count} open activit{'ies' if exc.count != 1 else 'y'}"
    if forms.asks_about_activities(view):
        return {forms.OPTIONS_BLOCK: f"The case has {many}: not resolved. Choose to complete"
                                     " or cancel them to resolve it."}  # fmt: skip
    return {forms.RESOLUTION_BLOCK: f"The case has {many} now: close this form and press"
                                    " Resolve again to choose what becomes of them."}  # fmt: skip
