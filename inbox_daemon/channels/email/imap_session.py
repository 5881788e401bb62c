"""One IMAP connection of the IMAP channel, on top of aioimaplib.

This module owns the protocol work: connecting without TLS, with STARTTLS or with implicit TLS;
LOGIN or AUTHENTICATE (PLAIN, XOAUTH2); SELECT and UIDVALIDITY; listing and fetching by UID
(``BODY.PEEK[]``, so fetching never sets ``\\Seen``; a large message straight into a file, in
partial fetches, by :meth:`ImapSession.fetch_to_file`); flagging and moving a message; IDLE; and a
bounded LOGOUT. Every failure leaves as :class:`ChannelAuthError` (permanent until
reconfigured), :class:`ChannelUnavailable` (transient: reconnect later) or, for a folder that
cannot be selected, :class:`ChannelError`. A dropped connection is noticed at once, whatever
command is waiting.

aioimaplib (2.x) drops untagged responses that no pending command claims and does not answer
SASL continuations; :class:`_Protocol` notes every ``EXISTS``/``RECENT`` (so new mail announced
in the response to any command still wakes the channel) and answers the continuations.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import socket
import ssl
from collections.abc import Awaitable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import aioimaplib

from inbox_daemon.channels.email.imap_wire import (
    FetchedMessage,
    encode_folder,
    parse_fetch,
    parse_listing,
    uid_set,
)
from inbox_daemon.errors import ChannelAuthError, ChannelError, ChannelUnavailable

T = TypeVar("T")

_NEW_MAIL = re.compile(rb"\* \d+ (EXISTS|RECENT)\b", re.IGNORECASE)
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_CODE = re.compile(rb"^\[([A-Z-]+)", re.IGNORECASE)


def _text(response: Any) -> str:
    """The human-readable text of a tagged response (its last line)."""
    for line in reversed(response.lines):
        if isinstance(line, bytes) and line.strip():
            return line.decode(errors="replace").strip()
    return str(response.result)


#: UIDs whose sizes are asked for in one command.
LIST_WINDOW = 500
#: Bytes of one message asked for in one partial fetch by :meth:`ImapSession.fetch_to_file`.
FETCH_CHUNK = 4 * 1024 * 1024


class _Protocol(aioimaplib.IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol, plus a new-mail event and SASL continuation answers."""

    incomplete_line: bytes
    current_command: Any

    def __init__(self, loop: asyncio.AbstractEventLoop, conn_lost_cb: Any) -> None:
        super().__init__(loop, conn_lost_cb)
        self.new_mail = asyncio.Event()
        self.bye: str | None = None
        self.sasl_response: bytes | None = None

    def data_received(self, d: bytes) -> None:
        # aioimaplib's own formats every chunk into a debug message (``'%s' % d``) whether
        # debug logging is on or not: the repr of every byte of every mail fetched, about a
        # fifth of the event loop's time while a backlog is read. The same, without that.
        try:
            self._handle_responses(
                self.incomplete_line + d, self._handle_line, self.current_command
            )
            self.incomplete_line = b""
            self.current_command = None
        except aioimaplib.IncompleteRead as incomplete:
            self.current_command = incomplete.cmd
            self.incomplete_line = incomplete.data

    def _untagged_response(self, line: bytes) -> Any:
        if _NEW_MAIL.match(line):
            self.new_mail.set()
        elif line[:6].upper() == b"* BYE ":
            self.bye = line[6:].decode(errors="replace").strip()
        return super()._untagged_response(line)

    def _continuation(self, line: bytes) -> None:
        command = self.pending_sync_command
        if command is not None and command.name == "AUTHENTICATE":
            # The first "+" asks for the initial response (no SASL-IR); any later one carries
            # an error (XOAUTH2) that must be answered with an empty line to get the NO.
            answer, self.sasl_response = self.sasl_response or b"", None
            self.transport.write(answer + b"\r\n")
            return
        super()._continuation(line)


class _Client(aioimaplib.IMAP4):  # type: ignore[misc]
    """aioimaplib's client with :class:`_Protocol`; ``ssl_context`` set means implicit TLS."""

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(lambda: self.protocol, host, port, ssl=ssl_context)
        )


def _keepalive(transport: Any) -> None:
    """Notice a silently dead connection within minutes, even while idling."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 20)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)


class ImapSession:
    """A connected, then authenticated, then selected IMAP connection."""

    def __init__(self, client: Any, lost: asyncio.Future[None], *, channel: str, timeout: float):
        self._client = client
        self._protocol: _Protocol = client.protocol
        self._lost = lost
        self.channel = channel
        self.timeout = timeout
        self._idle: asyncio.Future[Any] | None = None

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        tls: str,
        ssl_context: ssl.SSLContext | None,
        channel: str,
        command_timeout: float = 30.0,
    ) -> ImapSession:
        """Connect and read the greeting; with ``tls="starttls"`` upgrade before returning."""
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def connection_lost(_exc: Exception | None) -> None:
            if not lost.done():
                lost.set_result(None)

        client = _Client(
            host,
            port,
            timeout=command_timeout,
            conn_lost_cb=connection_lost,
            ssl_context=ssl_context if tls == "ssl" else None,
        )
        session = cls(client, lost, channel=channel, timeout=command_timeout)
        where = f"{host}:{port}"
        try:
            await session._race("greeting", client.wait_hello_from_server())
        except ssl.SSLCertVerificationError as exc:
            session.abort()
            raise ChannelAuthError(
                channel,
                f"TLS certificate of {where} not trusted: {exc.verify_message or exc}"
                " (set ca_file to the CA that signed it, or verify = false)",
            ) from None
        except OSError as exc:
            session.abort()
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc) or repr(exc)
            raise ChannelUnavailable(channel, f"cannot connect to {where}: {reason}") from None
        except BaseException:
            session.abort()
            raise
        _keepalive(client.protocol.transport)
        if tls == "starttls":
            assert ssl_context is not None
            try:
                await session._starttls(host, ssl_context, where)
            except BaseException:
                session.abort()
                raise
        return session

    async def _starttls(self, host: str, context: ssl.SSLContext, where: str) -> None:
        if not self.has_capability("STARTTLS"):
            raise ChannelAuthError(self.channel, "server does not offer STARTTLS (tls = starttls)")
        protocol = self._protocol
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call("STARTTLS", protocol.execute(command))
        if response.result != "OK":
            raise ChannelUnavailable(self.channel, f"STARTTLS refused: {_text(response)}")
        try:
            transport = await asyncio.wait_for(
                protocol.loop.start_tls(
                    protocol.transport, protocol, context, server_hostname=host
                ),
                self.timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            raise ChannelAuthError(
                self.channel,
                f"TLS certificate of {where} not trusted: {exc.verify_message or exc}"
                " (set ca_file to the CA that signed it, or verify = false)",
            ) from None
        except OSError as exc:
            raise ChannelUnavailable(self.channel, f"TLS handshake failed: {exc!r}") from None
        protocol.transport = transport
        # Capabilities seen before TLS must not be trusted (RFC 3501 6.2.1).
        await self._call("CAPABILITY", protocol.capability())

    # -- authenticating ----------------------------------------------------------------------

    def has_capability(self, name: str) -> bool:
        return name.upper() in {c.upper() for c in self._protocol.capabilities}

    async def login(self, user: str, password: str) -> None:
        """LOGIN, or AUTHENTICATE PLAIN when the password is not ASCII."""
        if self.has_capability("LOGINDISABLED"):
            raise ChannelAuthError(
                self.channel, "server refuses passwords without TLS: set tls = starttls or ssl"
            )
        if any(c in password for c in "\r\n\0"):
            raise ChannelAuthError(self.channel, "the password contains a line break or NUL")
        if not password.isascii() and self.has_capability("AUTH=PLAIN"):
            initial = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
            await self.authenticate("PLAIN", initial, user=user)
            return
        response = await self._call("LOGIN", self._protocol.login(user, password))
        self._check_auth(response, user)
        await self._call("CAPABILITY", self._protocol.capability())

    async def authenticate(self, mechanism: str, initial_response: str, *, user: str) -> None:
        """AUTHENTICATE with a SASL initial response (inline when the server has SASL-IR)."""
        protocol = self._protocol
        args = [mechanism]
        if self.has_capability("SASL-IR"):
            args.append(initial_response)
        else:
            protocol.sasl_response = initial_response.encode("ascii")
        command = aioimaplib.Command("AUTHENTICATE", protocol.new_tag(), *args, loop=protocol.loop)
        try:
            response = await self._call(
                "AUTHENTICATE", protocol.execute(command, scrub=initial_response)
            )
        finally:
            protocol.sasl_response = None
        self._check_auth(response, user)
        protocol.state = aioimaplib.AUTH
        await self._call("CAPABILITY", protocol.capability())

    def _check_auth(self, response: Any, user: str) -> None:
        if response.result == "OK":
            return
        text = _text(response)
        code = _CODE.match(text.encode())
        if code and code.group(1).upper() in {"UNAVAILABLE", "SERVERBUG", "INUSE", "LIMIT"}:
            raise ChannelUnavailable(self.channel, f"login as {user} failed for now: {text}")
        raise ChannelAuthError(self.channel, f"login as {user} refused: {text}")

    # -- the selected folder -----------------------------------------------------------------

    async def select(self, folder: str) -> int:
        """SELECT ``folder``; returns its UIDVALIDITY."""
        response = await self._call("SELECT", self._protocol.select(encode_folder(folder)))
        if response.result != "OK":
            raise ChannelError(self.channel, f"cannot select folder {folder!r}: {_text(response)}")
        for line in response.lines:
            if isinstance(line, bytes) and (found := _UIDVALIDITY.search(line)):
                self._protocol.new_mail.clear()
                return int(found.group(1))
        raise ChannelError(self.channel, f"server sent no UIDVALIDITY for {folder!r}")

    async def ensure_folder(self, folder: str) -> None:
        """CREATE ``folder`` unless it exists (a NO is fine: most likely it does)."""
        await self._call("CREATE", self._protocol.simple_command("CREATE", encode_folder(folder)))

    async def append(self, folder: str, raw: bytes, flags: str = "(\\Seen)") -> None:
        """APPEND a message to ``folder`` (our sent mail to the Sent folder)."""
        append = self._protocol.append(raw, encode_folder(folder), flags, None, timeout=None)
        response = await self._call("APPEND", append)
        if response.result != "OK":
            raise ChannelError(self.channel, f"cannot append to {folder!r}: {_text(response)}")

    @property
    def new_mail(self) -> asyncio.Event:
        """Set whenever the server announces EXISTS or RECENT; the caller clears it."""
        return self._protocol.new_mail

    async def list_after(self, uid: int) -> list[tuple[int, int]]:
        """``(uid, size)`` of every message with a UID above ``uid``, ascending.

        ``UID SEARCH`` answers in one line however large the backlog; the sizes are then
        fetched in windows (aioimaplib handles each response line recursively, so one huge
        listing would exhaust the recursion limit).
        """
        uids = [found for found in await self._search_uids(f"UID {uid + 1}:*") if found > uid]
        listing: list[tuple[int, int]] = []
        for start in range(0, len(uids), LIST_WINDOW):
            window = uid_set(uids[start : start + LIST_WINDOW])
            sizes = await self._call(
                "UID FETCH",
                self._protocol.uid("FETCH", window, "(UID RFC822.SIZE)", timeout=self.timeout),
                inactivity_timeout=True,
            )
            self._require_ok("UID FETCH (list)", sizes)
            listing.extend(parse_listing(sizes.lines, uid))
        return listing

    async def fetch(self, uids: Iterable[int]) -> list[FetchedMessage]:
        """``UID FETCH <set> (UID INTERNALDATE BODY.PEEK[])``, ascending by UID."""
        wanted = set(uids)
        if not wanted:
            return []
        response = await self._call(
            "UID FETCH",
            self._protocol.uid(
                "FETCH", uid_set(wanted), "(UID INTERNALDATE BODY.PEEK[])", timeout=self.timeout
            ),
            inactivity_timeout=True,
        )
        self._require_ok("UID FETCH", response)
        messages = [m for m in parse_fetch(response.lines) if m.uid in wanted]
        return sorted(messages, key=lambda m: m.uid)

    async def fetch_to_file(
        self, uid: int, dest: Path, *, size: int, chunk: int = FETCH_CHUNK
    ) -> datetime | None:
        """Fetch one message into the file ``dest`` (created or truncated); its INTERNALDATE.

        Partial fetches, ``UID FETCH uid (UID BODY.PEEK[]<offset.chunk>)`` (the first one also
        asks for INTERNALDATE), each written out before the next is sent: about one ``chunk``
        is in memory at a time. ``size`` is the RFC822.SIZE from :meth:`list_after`; a message
        that turns out shorter or longer (or is gone) raises :class:`ChannelUnavailable`, and
        ``dest`` then holds an unusable part of it.
        """
        if chunk <= 0:
            raise ValueError("chunk must be positive")
        internal_date: datetime | None = None
        written = 0
        out = await asyncio.to_thread(dest.open, "wb")
        try:
            while True:
                # One byte more than is left, so that the end shows without another round trip.
                want = min(chunk, size - written + 1)
                items = f"BODY.PEEK[]<{written}.{want}>"
                if written == 0:
                    items = f"INTERNALDATE {items}"
                response = await self._call(
                    "UID FETCH",
                    self._protocol.uid("FETCH", str(uid), f"(UID {items})", timeout=self.timeout),
                    inactivity_timeout=True,
                )
                self._require_ok("UID FETCH (partial)", response)
                found = [m for m in parse_fetch(response.lines) if m.uid == uid]
                data = found[0].raw if found else b""
                if written == 0 and found:
                    internal_date = found[0].internal_date
                del response, found
                await asyncio.to_thread(out.write, data)
                written += len(data)
                if written > size or len(data) < want:
                    break
        finally:
            out.close()
        if written != size:
            gone = " (is the message gone?)" if written == 0 else ""
            raise ChannelUnavailable(
                self.channel,
                f"UID {uid}: fetched {written} bytes where the server announced {size}{gone}",
            )
        return internal_date

    async def uids_between(self, first: int, last: int) -> list[int]:
        """The UIDs from ``first`` to ``last`` still in the folder, ascending."""
        found = await self._search_uids(f"UID {first}:{last}")
        return [uid for uid in found if first <= uid <= last]

    async def _search_uids(self, criteria: str) -> list[int]:
        response = await self._call(
            "UID SEARCH", self._protocol.search(criteria, charset=None, by_uid=True)
        )
        self._require_ok("UID SEARCH", response)
        return sorted(
            {
                int(token)
                for line in response.lines
                if isinstance(line, bytes)
                for token in line.split()
                if token.isdigit()
            }
        )

    async def mark_seen(self, uids: int | Iterable[int]) -> bool:
        """Flag a message, or several at once, ``\\Seen``."""
        wanted = uid_set([uids] if isinstance(uids, int) else uids)
        response = await self._call(
            "UID STORE", self._protocol.uid("STORE", wanted, "+FLAGS.SILENT", r"(\Seen)")
        )
        return bool(response.result == "OK")

    async def move(self, uids: int | Iterable[int], folder: str) -> bool:
        """Move messages: UID MOVE, else COPY + \\Deleted + (UID) EXPUNGE."""
        uid = uid_set([uids] if isinstance(uids, int) else uids)
        target = encode_folder(folder)
        protocol = self._protocol
        if self.has_capability("MOVE"):
            response = await self._call("UID MOVE", protocol.uid("MOVE", str(uid), target))
            return bool(response.result == "OK")
        response = await self._call("UID COPY", protocol.uid("COPY", str(uid), target))
        if response.result != "OK":
            return False
        response = await self._call(
            "UID STORE", protocol.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Deleted)")
        )
        if response.result != "OK":
            return False
        if self.has_capability("UIDPLUS"):
            response = await self._call("UID EXPUNGE", protocol.uid("EXPUNGE", str(uid)))
        else:
            response = await self._call("EXPUNGE", protocol.expunge())
        return bool(response.result == "OK")

    async def noop(self) -> None:
        response = await self._call("NOOP", self._protocol.simple_command("NOOP"))
        self._require_ok("NOOP", response)

    # -- IDLE --------------------------------------------------------------------------------

    async def idle(self, max_wait: float) -> bool:
        """IDLE until the server announces new mail or ``max_wait`` passes; True on new mail.

        Returns at once when new mail was announced before (``new_mail`` is set). Ends the IDLE
        with DONE before returning; when cancelled, :meth:`close` ends it.
        """
        if self.new_mail.is_set():
            return True
        protocol = self._protocol
        self._idle = asyncio.ensure_future(protocol.idle())
        started = asyncio.ensure_future(protocol.wait_for_idle_response())
        try:
            await self._race(
                "IDLE",
                asyncio.wait({self._idle, started}, return_when=asyncio.FIRST_COMPLETED),
                self.timeout,
            )
        finally:
            started.cancel()
        if self._idle.done():
            response = await self._call("IDLE", self._idle)
            self._idle = None
            raise ChannelUnavailable(self.channel, f"IDLE refused: {_text(response)}")
        waiter = asyncio.ensure_future(self.new_mail.wait())
        try:
            await self._race(
                "IDLE",
                asyncio.wait(
                    {waiter, self._idle}, timeout=max_wait, return_when=asyncio.FIRST_COMPLETED
                ),
            )
        finally:
            waiter.cancel()
        await self._end_idle()
        self._drain_idle_queue()
        return self.new_mail.is_set()

    async def _end_idle(self) -> None:
        idle, self._idle = self._idle, None
        if idle is None:
            return
        if not idle.done():
            self._protocol.idle_done()
        response = await self._call("DONE", idle)
        if response.result != "OK":
            raise ChannelUnavailable(self.channel, f"IDLE ended badly: {_text(response)}")

    def _drain_idle_queue(self) -> None:
        queue = self._protocol.idle_queue
        while not queue.empty():
            queue.get_nowait()

    # -- closing -----------------------------------------------------------------------------

    async def close(self, grace: float = 5.0) -> None:
        """End IDLE, LOGOUT and close, all within ``grace`` seconds; never raises."""
        try:
            async with asyncio.timeout(grace):
                if self._idle is not None:
                    await self._end_idle()
                if not self._lost.done() and self._protocol.state != aioimaplib.LOGOUT:
                    await self._call("LOGOUT", self._protocol.logout())
        except (ChannelError, TimeoutError, aioimaplib.AioImapException, OSError):
            pass
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the connection now, without a word to the server."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        task = getattr(self._client, "_client_task", None)
        if task is not None and not task.done():
            task.cancel()
        transport = self._protocol.transport
        if transport is not None:
            transport.close()

    @property
    def closed(self) -> bool:
        return self._lost.done()

    # -- plumbing ----------------------------------------------------------------------------

    def _require_ok(self, what: str, response: Any) -> None:
        if response.result != "OK":
            raise ChannelUnavailable(self.channel, f"{what} failed: {_text(response)}")

    async def _call(
        self, what: str, awaitable: Awaitable[T], *, inactivity_timeout: bool = False
    ) -> T:
        """Await one command; a lost connection, a timeout or a protocol error is transient.

        The command gets ``self.timeout`` in all, or with ``inactivity_timeout`` (a FETCH that
        times itself out when no data arrives for that long) as long as data keeps coming.
        """
        try:
            return await self._race(what, awaitable, None if inactivity_timeout else self.timeout)
        except aioimaplib.CommandTimeout:
            raise ChannelUnavailable(self.channel, f"{what} timed out") from None
        except aioimaplib.AioImapException as exc:
            raise ChannelUnavailable(self.channel, f"{what}: {type(exc).__name__}") from None
        except (OSError, ssl.SSLError) as exc:
            raise ChannelUnavailable(self.channel, f"{what}: {exc!r}") from None

    async def _race(self, what: str, awaitable: Awaitable[T], limit: float | None = None) -> T:
        """``awaitable``, unless the connection drops or ``limit`` seconds pass first."""
        task = asyncio.ensure_future(awaitable)
        waiters: set[asyncio.Future[Any]] = {task, self._lost}
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        except BaseException:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        if self._lost.done():
            reason = f" (server said: {self._protocol.bye})" if self._protocol.bye else ""
            raise ChannelUnavailable(self.channel, f"connection lost during {what}{reason}")
        raise ChannelUnavailable(self.channel, f"{what} timed out after {limit:g} s")
