"""The runtime: everything built from the settings, shared by the daemon and the CLI.

:class:`Runtime` builds the store, the rules (with their hot reload), the case service, the
intake pipeline, the outbox with its senders, the Slack app and the inbound channels; it owns
nothing that runs by itself. :mod:`inbox_daemon.daemon` runs them; a CLI command uses the parts
it needs (``with_channels=False`` needs no mail or Slack secrets).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from inbox_daemon.acknowledge import AckTemplates, load_templates
from inbox_daemon.agents import SlackAgents
from inbox_daemon.cases.calendar import BusinessCalendar
from inbox_daemon.cases.sla import SlaPolicy
from inbox_daemon.channels.base import InboundChannel, OutboundChannel, Sink
from inbox_daemon.channels.email.imap import ImapChannel
from inbox_daemon.channels.email.maildir import MaildirChannel
from inbox_daemon.channels.email.parse_worker import ParseWorker
from inbox_daemon.channels.email.smtp import EmailSender
from inbox_daemon.channels.slack.app import SlackApp, make_client
from inbox_daemon.channels.slack.background import Background
from inbox_daemon.channels.slack.sender import SlackSender
from inbox_daemon.config import OutboxSettings, Settings, load_settings
from inbox_daemon.errors import ConfigError, RulesError
from inbox_daemon.ingest import Ingestor, IntakeOptions
from inbox_daemon.logging import configure, get_logger
from inbox_daemon.outbox import Outbox, OutboxPolicy
from inbox_daemon.router.loader import LoadedRules
from inbox_daemon.router.reload import RulesHolder
from inbox_daemon.service import CaseService
from inbox_daemon.service.notice_templates import NoticeTemplates, load_notice_templates
from inbox_daemon.store import cases as repo
from inbox_daemon.store import intake
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore

log = get_logger("inbox_daemon.runtime")


class Runtime:
    """Everything built from the settings, shared by the daemon and the CLI."""

    def __init__(
        self,
        settings: Settings,
        *,
        with_rules: bool | Literal["if_valid"] = True,
        with_channels: bool = True,
    ) -> None:
        """``with_rules=False`` skips rules.yaml (commands that only read cases);
        ``"if_valid"`` reads it but goes on without it when it is broken (``rules_problem``
        says why: a command that only shows a case still works);
        ``with_channels=False`` builds no senders and no Slack app, so a command run from an
        admin's shell needs no mail or Slack secrets (the daemon's outbox sends what it queues).
        """
        self.settings = settings
        self.db = Database(settings.database_url, create_folder=False)
        self.rules = RulesHolder(settings.rules_path, queues_with_open_cases=self.open_queues)
        #: Why rules.yaml was not read (``with_rules="if_valid"`` and a broken file), or None.
        self.rules_problem: str | None = None
        if with_rules and settings.rules_path.exists():
            try:
                self.rules.load()
            except RulesError as exc:
                if with_rules is True:
                    raise
                self.rules_problem = str(exc).splitlines()[0]
        current = self.rules.current
        notices = self._notice_templates(with_rules)
        self.service = CaseService(
            self.db,
            directory=current.directory if current else None,
            message_domain=settings.cases.message_domain,
            auto_close_after=settings.cases.auto_close_after,
            sla_lookup=self.sla_policy,
            zone_lookup=self.zone,
            accounts=current.accounts if current else None,
            diagnostic_tasks=settings.cases.diagnostic_tasks,
            sla_names=tuple(current.sla) if current else (),
            notify_channels=_notify_channels(settings),
            notice_templates=notices,
        )
        self.rules.on_change.append(self._rules_changed)
        storage = settings.storage_path
        self.files = FileStore(storage / "attachments")
        self.quarantine = FileStore(storage / "quarantine")
        self.ingestor = Ingestor(
            self.service,
            files=self.files,
            quarantine=self.quarantine,
            rules=self.rules,
            options=self._intake_options(settings, self._templates()),
        )
        self.rules.on_change.append(self._reload_templates)
        #: Parses fetched IMAP batches beside the database work ([daemon] parse_in_worker).
        self.parse_worker = ParseWorker() if settings.daemon.parse_in_worker else None
        out = settings.outbox
        senders: list[OutboundChannel] = []
        if with_channels:
            senders.append(EmailSender.from_settings(settings.mailboxes, storage))
        #: What every channel feeds: the intake pipeline, watched by Slack's case cards if on.
        self.sink: Sink = self.ingestor
        self.slack: SlackApp | None = None
        self.slack_agents: SlackAgents | None = None
        if with_channels and settings.slack is not None:
            slack = settings.slack
            secrets = slack.secrets()
            client = make_client(slack, secrets.bot_token)
            background = Background()
            self.slack_agents = SlackAgents(
                self.service,
                client,
                background=background,
                files=self.files,
                document_folder=settings.rules_path.parent,
            )
            self.sink = self.slack_agents.observe(self.ingestor)
            self.slack = SlackApp(
                slack,
                actions=self.slack_agents,
                client=client,
                secrets=secrets,
                background=background,
                on_revision=self.slack_agents.revised,
            )
            senders.append(SlackSender(client))
        self.outbox = Outbox(
            self.db,
            {sender.name: sender for sender in senders},
            files=self.files,
            policy=_outbox_policy(out),
        )
        self.service.on_outgoing = self.outbox.wake
        if self.slack_agents is not None:
            self.outbox.on_failed.append(self.slack_agents.delivery_failed)

    def _templates(self) -> AckTemplates | None:
        if not self.settings.cases.acknowledge:
            return None
        return load_templates(self.settings.rules_path.parent)

    @staticmethod
    def _intake_options(settings: Settings, templates: AckTemplates | None) -> IntakeOptions:
        window = settings.cases.reopen_window_days
        return IntakeOptions(
            our_addresses=settings.our_addresses,
            reopen_window=timedelta(days=window) if window else None,
            acknowledgements=templates,
            auto_answers_per_hour=settings.cases.auto_answers_per_hour,
            max_attachment_bytes=int(settings.storage.max_attachment_mb * 1024 * 1024),
        )

    def reload_settings(self) -> list[str]:
        """Read the config file again and apply what can change while running: logging,
        ``[cases]`` and ``[outbox]``. Returns the sections that changed but need a restart.
        A file that does not load raises ConfigError and changes nothing."""
        new = load_settings(self.settings.source)
        restart = [
            name
            for name in ("database", "storage", "rules", "mailbox", "slack", "http", "daemon")
            if getattr(new, name) != getattr(self.settings, name)
        ]
        self.settings = self.settings.model_copy(
            update={"logging": new.logging, "cases": new.cases, "outbox": new.outbox}
        )
        configure(new.logging.level, new.logging.format)
        self.service.auto_close_after = new.cases.auto_close_after
        self.service.message_domain = new.cases.message_domain
        self.service.notify_channels = _notify_channels(self.settings)
        templates = self.ingestor.options.acknowledgements
        if new.cases.acknowledge and templates is None:
            templates = self._templates()
        self.ingestor.options = self._intake_options(
            self.settings, templates if new.cases.acknowledge else None
        )
        self.outbox.policy = replace(
            self.outbox.policy,
            max_attempts=new.outbox.max_attempts,
            lease=timedelta(minutes=new.outbox.lease_minutes),
        )
        if restart:
            log.warning("config changes that need a restart", sections=restart)
        log.info("config reloaded", path=str(self.settings.source))
        return restart

    def _reload_templates(self, _rules: LoadedRules) -> None:
        """Acknowledgement templates live beside rules.yaml and are reloaded with it."""
        try:
            templates = self._templates()
        except ConfigError as exc:
            log.error(
                "acknowledgement template rejected; keeping the last good one", error=str(exc)
            )
            return
        self.ingestor.options = replace(self.ingestor.options, acknowledgements=templates)

    def _notice_templates(self, with_rules: bool | str) -> NoticeTemplates | None:
        """The notification templates beside rules.yaml (the shipped one where there is none);
        broken ones stop a command that needs rules, others go on with the shipped words."""
        try:
            return load_notice_templates(self.settings.rules_path.parent)
        except ConfigError as exc:
            if with_rules is True:
                raise
            self.rules_problem = self.rules_problem or str(exc)
            return None

    def _rules_changed(self, loaded: LoadedRules) -> None:
        try:
            self.service.notice_templates = load_notice_templates(self.settings.rules_path.parent)
        except ConfigError as exc:
            log.error("notification template rejected; keeping the last good one", error=str(exc))
        self.service.directory = loaded.directory
        self.service.accounts = loaded.accounts
        self.service.sla_names = tuple(loaded.sla)

    def sla_policy(
        self, name: str | None, account: str | None
    ) -> tuple[SlaPolicy, BusinessCalendar] | None:
        """The SLA policy a case with that policy and account is counted by, in the rules in
        force, with its calendar (an entitlement's terms and policy win)."""
        rules = self.rules.current
        return rules.sla_of(name, account) if rules is not None else None

    def zone(self, name: str | None, account: str | None) -> ZoneInfo:
        """The time zone a case's due dates are shown in, by the rules in force."""
        rules = self.rules.current
        return rules.zone_of(name, account) if rules is not None else ZoneInfo("UTC")

    async def inbound_channels(self) -> list[InboundChannel]:
        """One channel per configured mailbox, IMAP ones resuming from their checkpoint."""
        settings = self.settings
        channels: list[InboundChannel] = []
        # Large mail is parsed from files here (on the storage's disk, not a tmpfs /tmp).
        spool = settings.storage_path / "spool"
        spool.mkdir(parents=True, exist_ok=True)
        for box in settings.mailboxes:
            if box.kind == "maildir":
                channels.append(
                    MaildirChannel(
                        box,
                        our_addresses=settings.our_addresses,
                        spool_parent=spool,
                        parse_worker=self.parse_worker,
                    )
                )
                continue
            async with self.db.transaction() as session:
                checkpoint = await intake.checkpoint(session, box.name)
            channels.append(
                ImapChannel.from_settings(
                    box,
                    checkpoint=checkpoint,
                    our_addresses=settings.our_addresses,
                    spool_parent=spool,
                    parse_worker=self.parse_worker,
                )
            )
        return channels

    async def open_queues(self) -> set[str]:
        async with self.db.transaction() as session:
            return await repo.queues_with_open_cases(session)

    async def close(self) -> None:
        if self.parse_worker is not None:
            await asyncio.to_thread(self.parse_worker.close)
        await self.db.dispose()


def _notify_channels(settings: Settings) -> frozenset[str]:
    """How agents can be told: the channel kinds this installation sends through."""
    if not settings.cases.notify_agents:
        return frozenset()
    kinds = {"email"} if settings.mailboxes else set()
    return frozenset(kinds | ({"slack"} if settings.slack is not None else set()))


def _outbox_policy(out: OutboxSettings) -> OutboxPolicy:
    return OutboxPolicy(max_attempts=out.max_attempts, lease=timedelta(minutes=out.lease_minutes))
