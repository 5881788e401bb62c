"""The IMAP intake channel: a support mailbox's folder → deliveries, in UID order.

This module owns :class:`ImapChannel` and its loop: connect (see :mod:`.imap_session`), read
the backlog after the checkpoint (everything when UIDVALIDITY changed), hand each message to the
sink, and only after the sink returned flag it ``\\Seen`` and move it to ``processed_folder``;
then IDLE (or poll) for more. A lost connection is retried with capped exponential backoff and
jitter, resuming after the last message acknowledged in this run; a refused login is permanent
(:class:`ChannelAuthError`); a failing sink stops the channel after a pause, leaving the message
unacknowledged so that it is offered again.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from inbox_daemon.channels.base import Checkpoint, Sink
from inbox_daemon.channels.email.delivery import ParseMessage, make_delivery, parse_lazily
from inbox_daemon.channels.email.imap_auth import (
    OAuth2TokenProvider,
    TokenProvider,
    xoauth2_string,
)
from inbox_daemon.channels.email.imap_session import ImapSession
from inbox_daemon.channels.email.imap_wire import FetchedMessage
from inbox_daemon.config import MailboxSettings, read_secret
from inbox_daemon.errors import ChannelAuthError, ChannelUnavailable, ConfigError
from inbox_daemon.logging import get_logger

#: Messages and bytes fetched in one ``UID FETCH`` round trip.
BATCH_MESSAGES = 50
BATCH_BYTES = 25 * 1024 * 1024
#: IDLE is ended and re-issued this often (RFC 2177: at least every 29 minutes).
IDLE_RENEW = 10 * 60.0
#: A session that lasted this long resets the reconnect backoff.
HEALTHY_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: attempt n waits between half and all of
    ``initial * factor**n``, capped at ``maximum``."""

    initial: float = 1.0
    maximum: float = 300.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.factor ** min(attempt, 64))
        return random.uniform(ceiling / 2, ceiling)


class _SinkFailed(Exception):
    """The sink raised: the message stays unacknowledged and the error leaves ``run``."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def ssl_context_for(settings: MailboxSettings) -> ssl.SSLContext | None:
    """The TLS context for ``settings.tls``: verifying by default, against ``ca_file`` if set."""
    if settings.tls == "none":
        return None
    try:
        context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mailbox {settings.name}: cannot load ca_file {settings.ca_file}: {exc}"
        ) from None
    if not settings.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _batches(pending: list[tuple[int, int]]) -> Iterator[list[int]]:
    """Consecutive groups of UIDs, at most BATCH_MESSAGES and (beyond one) BATCH_BYTES each."""
    batch: list[int] = []
    size = 0
    for uid, octets in pending:
        if batch and (len(batch) >= BATCH_MESSAGES or size + octets > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(uid)
        size += octets
    if batch:
        yield batch


class ImapChannel:
    """One IMAP mailbox folder as an inbound channel (see the module docstring).

    ``position`` is the last message acknowledged (or the starting checkpoint); ``connected``
    says whether a session is up, for health checks.
    """

    def __init__(
        self,
        settings: MailboxSettings,
        *,
        password: str | None = None,
        token_provider: TokenProvider | None = None,
        checkpoint: Checkpoint | None = None,
        parse: ParseMessage = parse_lazily,
        our_addresses: Collection[str] | None = None,
        timeout: float = 30.0,
        backoff: Backoff | None = None,
        idle_renew: float = IDLE_RENEW,
    ) -> None:
        if (password is None) == (token_provider is None):
            raise ConfigError(f"mailbox {settings.name}: give a password or a token provider")
        if not settings.host:
            raise ConfigError(f"mailbox {settings.name}: kind imap needs host")
        self.name = f"imap:{settings.name}"
        self.settings = settings
        self.position = checkpoint
        self.connected = False
        self._password = password
        self._tokens = token_provider
        self._parse = parse
        self._our_addresses = (
            settings.our_addresses if our_addresses is None else frozenset(our_addresses)
        )
        self._timeout = timeout
        self._backoff = backoff or Backoff()
        self._idle_renew = idle_renew
        self._ssl = ssl_context_for(settings)
        self._port = settings.port or (993 if settings.tls == "ssl" else 143)
        self._user = settings.username or settings.address
        processed = settings.processed_folder
        self._processed = processed if processed and processed != settings.folder else ""
        self._sink_failures = 0
        #: Messages delivered and acknowledged by this channel object (for metrics).
        self.delivered = 0
        self._resumed = False  # the checkpoint's message was acknowledged again
        #: When the mailbox was last listed successfully (for the health check).
        self.last_poll: datetime | None = None
        #: Told how long each listing of new mail took, in seconds (for metrics).
        self.on_poll: list[Callable[[float], None]] = []
        self._log = get_logger("inbox_daemon.channels.email.imap").bind(
            channel=self.name, mailbox=settings.name
        )
        if processed and not self._processed:
            self._log.warning("imap.processed_folder_ignored", reason="same as folder")

    @classmethod
    def from_settings(
        cls,
        settings: MailboxSettings,
        *,
        checkpoint: Checkpoint | None = None,
        parse: ParseMessage = parse_lazily,
        our_addresses: Collection[str] | None = None,
    ) -> ImapChannel:
        """A channel whose password or OAuth2 secrets are read as the settings say."""
        name = f"imap:{settings.name}"
        if settings.oauth2 is not None:
            provider = OAuth2TokenProvider.from_settings(settings.oauth2, channel=name)
            return cls(
                settings,
                token_provider=provider,
                checkpoint=checkpoint,
                parse=parse,
                our_addresses=our_addresses,
            )
        password = read_secret(
            env=settings.password_env,
            file=settings.password_file,
            what=f"mailbox {settings.name} password",
        )
        return cls(
            settings,
            password=password,
            checkpoint=checkpoint,
            parse=parse,
            our_addresses=our_addresses,
        )

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, sink: Sink) -> None:
        """Deliver until cancelled; raises ChannelAuthError, ChannelError or the sink's error."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            started = loop.time()
            try:
                await self._session(sink)
            except ChannelUnavailable as exc:
                if loop.time() - started >= HEALTHY_AFTER:
                    attempt = 0
                delay = self._backoff.delay(attempt)
                attempt += 1
                self._log.warning(
                    "imap.unavailable", error=str(exc), retry_in=round(delay, 2), attempt=attempt
                )
                await asyncio.sleep(delay)
            except _SinkFailed as failed:
                delay = self._backoff.delay(self._sink_failures - 1)
                self._log.error(
                    "imap.sink_failed",
                    error=f"{type(failed.error).__name__}: {failed.error}",
                    pause=round(delay, 2),
                )
                await asyncio.sleep(delay)
                raise failed.error from None

    async def run_once(self, sink: Sink) -> int:
        """Deliver what is waiting now, then log out; returns how many were delivered.

        For ``inbox-daemon run --once``: nothing is retried, every error leaves at once.
        """
        before = self.delivered
        session, uidvalidity = await self._open()
        try:
            while True:
                session.new_mail.clear()
                await self._drain(session, uidvalidity, sink)
                if not session.new_mail.is_set():
                    return self.delivered - before
        except _SinkFailed as failed:
            raise failed.error from None
        finally:
            self.connected = False
            await session.close()

    async def append_sent(self, raw: bytes) -> None:
        """Keep a copy of a mail we sent in the mailbox's ``sent_folder`` (own short session)."""
        folder = self.settings.sent_folder
        if not folder:
            return
        session = await self._connect()
        try:
            await self._authenticate(session)
            await session.ensure_folder(folder)
            await session.append(folder, raw)
        finally:
            await session.close()

    async def _connect(self) -> ImapSession:
        return await ImapSession.connect(
            self.settings.host,
            self._port,
            tls=self.settings.tls,
            ssl_context=self._ssl,
            channel=self.name,
            command_timeout=self._timeout,
        )

    async def _open(self) -> tuple[ImapSession, int]:
        """Connect, log in and select the folder; returns the session and its UIDVALIDITY."""
        session = await self._connect()
        try:
            await self._authenticate(session)
            uidvalidity = await session.select(self.settings.folder)
            position = self.position
            if position is None or position.uidvalidity != uidvalidity:
                if position is not None:
                    self._log.warning(
                        "imap.uidvalidity_changed",
                        old=position.uidvalidity,
                        new=uidvalidity,
                        action="reading the whole folder again",
                    )
                position = self.position = Checkpoint(uidvalidity, 0)
            if self._processed:
                await session.ensure_folder(self._processed)
            if position.uid > 0 and not self._resumed:
                # Resuming from a checkpoint: the last committed message may have missed its
                # \Seen (or move) if the daemon died between the commit and the acknowledgement.
                # Messages go one at a time, so it is the only one that can have.
                await self._acknowledge(session, position.uid, self._log)
            self._resumed = True
        except BaseException:
            await session.close()
            raise
        self.connected = True
        return session, uidvalidity

    async def _session(self, sink: Sink) -> None:
        session, uidvalidity = await self._open()
        try:
            idle = self.settings.idle and session.has_capability("IDLE")
            self._log.info(
                "imap.connected",
                folder=self.settings.folder,
                uidvalidity=uidvalidity,
                after_uid=self.position.uid if self.position else 0,
                mode="idle" if idle else "poll",
            )
            while True:
                session.new_mail.clear()
                await self._drain(session, uidvalidity, sink)
                if session.new_mail.is_set():
                    continue  # announced while we were busy
                if idle:
                    await session.idle(self._idle_renew)
                else:
                    await asyncio.sleep(self.settings.poll_interval)
                    await session.noop()
        finally:
            self.connected = False
            await session.close()

    async def _authenticate(self, session: ImapSession) -> None:
        if self._password is not None:
            await session.login(self._user, self._password)
            return
        assert self._tokens is not None
        user = self._user
        token = await self._tokens.access_token()
        try:
            await session.authenticate("XOAUTH2", xoauth2_string(user, token), user=user)
        except ChannelAuthError:
            # The cached token may have been revoked early: one more try with a fresh one.
            token = await self._tokens.access_token(refresh=True)
            await session.authenticate("XOAUTH2", xoauth2_string(user, token), user=user)

    async def _drain(self, session: ImapSession, uidvalidity: int, sink: Sink) -> None:
        """Deliver every message after ``position``, fetched in batches, one by one."""
        assert self.position is not None
        started = time.monotonic()
        pending = await session.list_after(self.position.uid)
        elapsed = time.monotonic() - started
        self.last_poll = datetime.now(UTC)
        for listener in self.on_poll:
            listener(elapsed)
        if pending:
            self._log.info("imap.backlog", messages=len(pending), after_uid=self.position.uid)
        for batch in _batches(pending):
            for message in await session.fetch(batch):
                if message.uid > self.position.uid:
                    await self._deliver(session, uidvalidity, message, sink)

    async def _deliver(
        self, session: ImapSession, uidvalidity: int, message: FetchedMessage, sink: Sink
    ) -> None:
        external_id = f"{uidvalidity}:{message.uid}"
        log = self._log.bind(uid=message.uid)
        delivery = await make_delivery(
            message.raw,
            parse=self._parse,
            mailbox=self.settings.name,
            external_id=external_id,
            our_addresses=self._our_addresses,
            received_at=message.internal_date,
            checkpoint=Checkpoint(uidvalidity, message.uid),
            log=log,
        )
        if delivery.message is not None:
            log = log.bind(message_id=delivery.message.message_id)
        try:
            result = await sink(delivery)
        except Exception as exc:
            self._sink_failures += 1
            raise _SinkFailed(exc) from exc
        self._sink_failures = 0
        await self._acknowledge(session, message.uid, log)
        self.position = Checkpoint(uidvalidity, message.uid)
        self.delivered += 1
        log.info("imap.delivered", outcome=result.outcome, case=result.case_number)

    async def _acknowledge(self, session: ImapSession, uid: int, log: Any) -> None:
        """\\Seen, then the move; a refusal is logged (the message is committed anyway)."""
        if not await session.mark_seen(uid):
            log.warning("imap.flag_refused", flag="\\Seen")
        if self._processed and not await session.move(uid, self._processed):
            log.warning("imap.move_refused", folder=self._processed)
