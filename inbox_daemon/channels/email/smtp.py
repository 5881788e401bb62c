"""SMTP delivery (aiosmtplib), the classification of its errors, and the per-mailbox choice.

:class:`SmtpSender` sends one mailbox's mail through its ``[mailbox.smtp]`` server: plain, STARTTLS
or implicit TLS, certificates verified unless the admin says otherwise (``verify``, ``ca_file``),
login when a username is set (the password read with :func:`read_secret`). Each failure becomes a
:class:`TransientDeliveryError` (retry later: refused or lost connections, timeouts, 4xx replies)
or a :class:`PermanentDeliveryError` (5xx replies, failed login or certificate check, a mail we
cannot compose). :class:`EmailSender` is what the outbox calls for the ``email`` channel: it picks
the mailbox's :class:`SmtpSender`, or its :class:`OutFolder` when it has no SMTP server.

Passwords and message bodies never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import aiosmtplib

from inbox_daemon.channels.email.compose import compose, to_bytes
from inbox_daemon.channels.email.imap import ImapChannel
from inbox_daemon.channels.email.outfolder import OutFolder
from inbox_daemon.channels.email.settings import MailboxSettings, SmtpSettings
from inbox_daemon.credentials import read_secret
from inbox_daemon.errors import (
    DeliveryError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import DeliveryReceipt, OutboundMessage

__all__ = ["EmailSender", "MailSender", "SmtpSender", "classify", "tls_context"]

log = get_logger("inbox_daemon.channels.email.smtp")

CHANNEL = "email"
DEFAULT_PORTS = {"none": 25, "starttls": 587, "ssl": 465}
DEFAULT_TIMEOUT = 30.0


class MailSender(Protocol):
    async def send(self, msg: OutboundMessage) -> DeliveryReceipt: ...


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Verified against the system CAs (or ``ca_file``) unless ``verify = false``."""
    ctx = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if not settings.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def classify(exc: Exception, where: str) -> DeliveryError:
    """The delivery error an aiosmtplib or socket failure stands for."""
    if isinstance(exc, DeliveryError):
        return exc
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in _causes(exc)):
        return PermanentDeliveryError(
            CHANNEL,
            f"{where}: the server's TLS certificate could not be verified "
            f"({exc}); set ca_file, or verify = false for a test server",
        )
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        refused = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
        error = TransientDeliveryError if any(400 <= c < 500 for c in codes) else None
        return (error or PermanentDeliveryError)(CHANNEL, f"{where}: recipients refused: {refused}")
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        if 400 <= exc.code < 500:
            return TransientDeliveryError(
                CHANNEL, f"{where}: login temporarily failed: {exc.code} {exc.message}"
            )
        return PermanentDeliveryError(
            CHANNEL,
            f"{where}: login failed ({exc.code} {exc.message}): check the username and the "
            "password of [mailbox.smtp]",
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        error_type = TransientDeliveryError if 400 <= exc.code < 500 else PermanentDeliveryError
        return error_type(CHANNEL, f"{where}: server replied {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return TransientDeliveryError(CHANNEL, f"{where}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError | OSError):
        return TransientDeliveryError(CHANNEL, f"{where}: {exc or type(exc).__name__}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return PermanentDeliveryError(CHANNEL, f"{where}: {exc} (check tls in [mailbox.smtp])")
    if isinstance(exc, aiosmtplib.SMTPException):
        return PermanentDeliveryError(CHANNEL, f"{where}: {exc}")
    return PermanentDeliveryError(CHANNEL, f"{where}: {type(exc).__name__}: {exc}")


class SmtpSender:
    """Sends one mailbox's mail through its SMTP server, one connection per message."""

    name = "email"

    def __init__(
        self,
        mailbox: MailboxSettings,
        smtp: SmtpSettings | None = None,
        *,
        daemon_name: str = "inbox-daemon",
        timeout: float = DEFAULT_TIMEOUT,
        local_hostname: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        keep_copy: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        settings = smtp or mailbox.smtp
        #: Called with the bytes of each mail sent (to keep it in the IMAP Sent folder).
        self.keep_copy = keep_copy
        if settings is None:
            raise ValueError(f"mailbox {mailbox.name} has no [mailbox.smtp]")
        self.mailbox = mailbox
        self.settings = settings
        self.port = settings.port or DEFAULT_PORTS[settings.tls]
        self.daemon_name = daemon_name
        self.timeout = timeout
        # Never socket.getfqdn(): it can hang on DNS. Our address's domain names us well enough.
        self.local_hostname = local_hostname or mailbox.address.rpartition("@")[2]
        self.clock = clock
        self._password: str | None = None
        if settings.username:  # read now, so a missing secret stops the daemon at start-up
            self._password = read_secret(
                env=settings.password_env,
                file=settings.password_file,
                what=f"mailbox {mailbox.name} smtp password",
            )
        self._tls = tls_context(settings) if settings.tls != "none" else None

    @property
    def where(self) -> str:
        return f"smtp {self.settings.host}:{self.port} (mailbox {self.mailbox.name})"

    def _client(self) -> aiosmtplib.SMTP:
        tls = self.settings.tls
        return aiosmtplib.SMTP(
            hostname=self.settings.host,
            port=self.port,
            use_tls=tls == "ssl",
            start_tls=tls == "starttls",
            tls_context=self._tls,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        """Deliver ``msg`` or raise a :class:`DeliveryError` saying whether to retry."""
        mail = await asyncio.to_thread(  # attachments may be read from files
            compose,
            msg,
            from_address=self.mailbox.address,
            from_name=self.settings.from_name,
            reply_to=self.settings.reply_to,
            daemon_name=self.daemon_name,
            date=self.clock(),
        )
        recipients = [a.email for a in (*msg.to, *msg.cc) if a.email]
        client = self._client()
        try:
            await client.connect()
            if self.settings.username:
                await client.login(self.settings.username, self._password or "")
            refused, _reply = await client.send_message(
                mail, sender=self.mailbox.address, recipients=recipients
            )
        except Exception as exc:
            error = classify(exc, self.where)
            log.warning("smtp delivery failed", mailbox=self.mailbox.name,
                        message_id=msg.message_id, error=str(error),
                        permanent=isinstance(error, PermanentDeliveryError))  # fmt: skip
            raise error from None
        finally:
            await _close(client)
        if refused:
            log.warning("some recipients refused", mailbox=self.mailbox.name,
                        message_id=msg.message_id,
                        refused={r: f"{resp.code} {resp.message}"
                                 for r, resp in refused.items()})  # fmt: skip
        log.info("mail sent", mailbox=self.mailbox.name, message_id=msg.message_id,
                 server=f"{self.settings.host}:{self.port}")  # fmt: skip
        if self.keep_copy is not None:
            try:
                await self.keep_copy(to_bytes(mail))
            except Exception as exc:  # the mail is sent: a missing copy must not resend it
                log.warning("copy of sent mail not kept", mailbox=self.mailbox.name,
                            message_id=msg.message_id, error=str(exc))  # fmt: skip
        return DeliveryReceipt(external_id=msg.message_id, sent_at=self.clock())


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


class EmailSender:
    """The ``email`` channel's sender: the mailbox's SMTP server, or its out-folder."""

    name = "email"

    def __init__(self, senders: Mapping[str, MailSender], default: str | None = None) -> None:
        self.senders = dict(senders)
        self.default = default if default is not None else next(iter(self.senders), None)

    @classmethod
    def from_settings(
        cls,
        mailboxes: Sequence[MailboxSettings],
        storage: Path,
        *,
        daemon_name: str = "inbox-daemon",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> EmailSender:
        """One sender per configured mailbox; the first mailbox sends what names none."""
        senders: dict[str, MailSender] = {}
        for box in mailboxes:
            if box.smtp is not None:
                keep = None
                if box.kind == "imap" and box.sent_folder:
                    keep = ImapChannel.from_settings(box).append_sent
                senders[box.name] = SmtpSender(
                    box, daemon_name=daemon_name, clock=clock, keep_copy=keep
                )
            else:
                senders[box.name] = OutFolder(box, storage, daemon_name=daemon_name, clock=clock)
        return cls(senders)

    def sender_for(self, mailbox: str) -> MailSender:
        sender = self.senders.get(mailbox)
        if sender is not None:
            return sender
        if self.default is None:
            raise PermanentDeliveryError(CHANNEL, "no mailbox is configured to send mail from")
        if mailbox:
            log.warning("unknown mailbox, sending from the default one",
                        mailbox=mailbox, default=self.default)  # fmt: skip
        return self.senders[self.default]

    async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
        return await self.sender_for(msg.mailbox).send(msg)
