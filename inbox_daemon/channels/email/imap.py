"""The IMAP intake channel: a support mailbox's folder → deliveries, in UID order.

This module owns :class:`ImapChannel` and its loop: connect (see :mod:`.imap_session`), read
the backlog after the checkpoint (everything when UIDVALIDITY changed), hand each fetched batch to
the sink (in one transaction when the sink takes batches), and only after the sink returned flag
the batch ``\\Seen`` and move it to ``processed_folder``;
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
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from inbox_daemon.channels.base import BatchSink, Checkpoint, Delivery, Sink, take_batch
from inbox_daemon.channels.email.delivery import (
    ParseMessage,
    make_delivery,
    make_file_delivery,
    parse_lazily,
)
from inbox_daemon.channels.email.imap_auth import (
    OAuth2TokenProvider,
    TokenProvider,
    xoauth2_string,
)
from inbox_daemon.channels.email.imap_session import ImapSession
from inbox_daemon.channels.email.imap_wire import FetchedMessage, uid_set
from inbox_daemon.channels.email.parse_worker import ParseWorker, RawMail
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.channels.email.spool import SPOOL_MAIL, spool_directory
from inbox_daemon.credentials import read_secret
from inbox_daemon.errors import ChannelAuthError, ChannelUnavailable, ConfigError
from inbox_daemon.logging import get_logger

#: Bytes fetched in one ``UID FETCH`` round trip (messages: ``batch_messages`` in the settings).
BATCH_BYTES = 25 * 1024 * 1024
#: Messages in the first group of a backlog (see :func:`_batches`).
FIRST_BATCH = 10
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


def _batches(
    pending: list[tuple[int, int]], messages: int, large: int = SPOOL_MAIL
) -> Iterator[list[tuple[int, int]]]:
    """Consecutive groups of ``(uid, size)``, at most ``messages`` and (beyond one) BATCH_BYTES
    each; a message larger than ``large`` is a group of its own.

    The first group is smaller (:data:`FIRST_BATCH`): nothing is stored until a group is
    fetched and parsed, and the pipeline of fetch, parse and store fills sooner with a small
    one, so the first mails of a backlog are in sooner and the whole backlog too.
    """
    batch: list[tuple[int, int]] = []
    size = 0
    limit = min(messages, FIRST_BATCH)
    for uid, octets in pending:
        alone = octets > large
        if batch and (alone or len(batch) >= limit or size + octets > BATCH_BYTES):
            limit = messages
            yield batch
            batch, size = [], 0
        batch.append((uid, octets))
        size += octets
        if alone:
            yield batch
            batch, size = [], 0
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
        spool_threshold: int = SPOOL_MAIL,
        spool_parent: Path | None = None,
        parse_worker: ParseWorker | None = None,
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
        self._parse_message = parse
        self._our_addresses = (
            settings.our_addresses if our_addresses is None else frozenset(our_addresses)
        )
        self._timeout = timeout
        self._backoff = backoff or Backoff()
        self._idle_renew = idle_renew
        #: A larger message is fetched into a file (in a spool directory under ``spool_parent``,
        #: the system's temp dir if None) instead of into memory.
        self._spool_threshold = spool_threshold
        self._spool_parent = spool_parent
        #: Parses fetched batches in a worker process (None: in a thread, with ``parse``).
        self._worker = parse_worker
        self._warming: asyncio.Task[None] | None = None
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
        spool_parent: Path | None = None,
        parse_worker: ParseWorker | None = None,
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
                spool_parent=spool_parent,
                parse_worker=parse_worker,
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
            spool_parent=spool_parent,
            parse_worker=parse_worker,
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
        self._warm_worker()
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
            if self._warming is not None:
                await self._warming

    def _warm_worker(self) -> None:
        """Start the parse worker while the session logs in and lists the folder."""
        if self._worker is not None and (self._warming is None or self._warming.done()):
            self._warming = asyncio.create_task(asyncio.to_thread(self._worker.start))

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
                # Resuming from a checkpoint: the last committed batch may have missed its
                # \Seen (or move) if the daemon died between the commit and the acknowledgement.
                # The checkpoint knows where that batch started; nothing before it is touched.
                first = position.group_start or position.uid
                if first == position.uid:
                    committed = [position.uid]
                else:
                    committed = await session.uids_between(first, position.uid)
                if committed:
                    await self._acknowledge(session, committed, self._log)
            self._resumed = True
        except BaseException:
            await session.close()
            raise
        self.connected = True
        return session, uidvalidity

    async def _session(self, sink: Sink) -> None:
        self._warm_worker()
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
        """Deliver every message after ``position``, in the batches they are fetched in."""
        assert self.position is not None
        started = time.monotonic()
        pending = await session.list_after(self.position.uid)
        elapsed = time.monotonic() - started
        self.last_poll = datetime.now(UTC)
        for listener in self.on_poll:
            listener(elapsed)
        if pending:
            self._log.info("imap.backlog", messages=len(pending), after_uid=self.position.uid)
        # While the sink stores one batch, the next one is fetched and parsed (in the worker
        # process, if the channel has one): fetch, parse and the database overlap.
        parsing: asyncio.Task[list[Delivery]] | None = None
        try:
            for batch in _batches(pending, self.settings.batch_messages, self._spool_threshold):
                if len(batch) == 1 and batch[0][1] > self._spool_threshold:
                    if parsing is not None:
                        await self._deliver(session, await parsing, sink)
                        parsing = None
                    await self._deliver_large(session, uidvalidity, *batch[0], sink)
                    continue
                uids = [uid for uid, _size in batch]
                fetched = [m for m in await session.fetch(uids) if m.uid > self.position.uid]
                current, parsing = parsing, asyncio.create_task(self._parse(uidvalidity, fetched))
                if current is not None:
                    await self._deliver(session, await current, sink)
            if parsing is not None:
                await self._deliver(session, await parsing, sink)
                parsing = None
        finally:
            if parsing is not None:
                parsing.cancel()

    async def _deliver_large(
        self, session: ImapSession, uidvalidity: int, uid: int, size: int, sink: Sink
    ) -> None:
        """A message above the spool threshold: fetched in parts into a file and parsed from
        there (see :mod:`.spool`), never held in memory whole; the files go once it is stored."""
        log = self._log.bind(uid=uid)
        with spool_directory(self._spool_parent) as spool:
            path = spool / "message.eml"
            try:
                received = await session.fetch_to_file(uid, path, size=size)
            except ChannelUnavailable as exc:
                if session.closed:
                    raise
                # Gone meanwhile, or a server whose RFC822.SIZE is wrong: the plain fetch.
                log.warning("imap.partial_fetch_failed", error=str(exc), size=size)
                fetched = await session.fetch([uid])
                await self._deliver(session, await self._parse(uidvalidity, fetched), sink)
                return
            delivery = await make_file_delivery(
                path,
                mailbox=self.settings.name,
                external_id=f"{uidvalidity}:{uid}",
                our_addresses=self._our_addresses,
                log=log,
                spool_dir=spool / "parts",
                received_at=received,
                checkpoint=Checkpoint(uidvalidity, uid, group_start=uid),
            )
            await self._deliver(session, [delivery], sink)

    async def _parse(self, uidvalidity: int, messages: list[FetchedMessage]) -> list[Delivery]:
        """The deliveries of a fetched batch, each checkpoint naming the batch's first UID;
        parsed in the worker process if the channel has one, else in a thread."""
        first = messages[0].uid if messages else 0
        if self._worker is not None:
            mails = [
                RawMail(
                    message.raw,
                    f"{uidvalidity}:{message.uid}",
                    message.internal_date,
                    Checkpoint(uidvalidity, message.uid, group_start=first),
                )
                for message in messages
            ]
            return await self._worker.deliveries(
                mails, mailbox=self.settings.name, our_addresses=self._our_addresses,
                log=self._log,
            )  # fmt: skip
        return [
            await make_delivery(
                message.raw,
                parse=self._parse_message,
                mailbox=self.settings.name,
                external_id=f"{uidvalidity}:{message.uid}",
                our_addresses=self._our_addresses,
                received_at=message.internal_date,
                checkpoint=Checkpoint(uidvalidity, message.uid, group_start=first),
                log=self._log.bind(uid=message.uid),
            )
            for message in messages
        ]

    async def _deliver(self, session: ImapSession, deliveries: list[Delivery], sink: Sink) -> None:
        """Hand a parsed batch to the sink and acknowledge it: at once if the sink takes batches
        (one transaction, one ``UID STORE``), else one message at a time."""
        if isinstance(sink, BatchSink):
            groups = [deliveries] if deliveries else []
        else:
            groups = [[delivery] for delivery in deliveries]
        for group in groups:
            try:
                results = await take_batch(sink, group)
            except Exception as exc:
                self._sink_failures += 1
                raise _SinkFailed(exc) from exc
            self._sink_failures = 0
            positions = [d.checkpoint for d in group if d.checkpoint is not None]
            uids = [position.uid for position in positions]
            await self._acknowledge(session, uids, self._log)
            last = positions[-1]
            self.position = Checkpoint(last.uidvalidity, last.uid, group_start=uids[0])
            self.delivered += len(group)
            # One line per group: the pipeline logs each message (with its case) already.
            outcomes = Counter(result.outcome for result in results)
            self._log.info("imap.delivered", uids=uid_set(uids), **outcomes)

    async def _acknowledge(self, session: ImapSession, uids: list[int], log: Any) -> None:
        """\\Seen, then the move; a refusal is logged (the messages are committed anyway)."""
        if not await session.mark_seen(uids):
            log.warning("imap.flag_refused", flag="\\Seen", uids=uid_set(uids))
        if self._processed and not await session.move(uids, self._processed):
            log.warning("imap.move_refused", folder=self._processed, uids=uid_set(uids))
