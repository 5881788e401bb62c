"""A real SMTP server for the tests: an aiosmtpd sink on 127.0.0.1 that records what it gets.

:class:`SmtpSink` runs an aiosmtpd ``Controller`` (its own thread and event loop) on a free
port of 127.0.0.1 and records every accepted envelope (MAIL FROM, RCPT TO, raw bytes). It can be
told to answer the next N messages with a 4xx or 5xx reply (at DATA) or to refuse their
recipients (at RCPT), to refuse connections (:meth:`SmtpSink.down` / :meth:`SmtpSink.up`), to
offer STARTTLS or implicit TLS with a self-signed certificate (made with the ``openssl``
command), and to require a login. Fixtures: ``smtp_sink`` (plain, no login) and
``smtp_sink_factory`` (any of the options); ``smtp_cert`` is the certificate, one per session.
"""

from __future__ import annotations

import email
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"
TlsMode = Literal["none", "starttls", "ssl"]


@dataclass(frozen=True)
class Cert:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1``."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


def make_cert(folder: Path) -> Cert:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return Cert(cert, key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        data = self.data.replace(b"\r\n", b"\n")  # as a mail store keeps it
        parsed = email.message_from_bytes(data, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class RecordingHandler:
    """The aiosmtpd handler: records envelopes, or answers with the replies it was given."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.data_replies: list[str] = []
        self.rcpt_replies: list[str] = []
        self.attempts = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        with self.lock:
            if self.rcpt_replies:
                return self.rcpt_replies.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.attempts += 1
            if self.data_replies:
                return self.data_replies.pop(0)
            raw = envelope.original_content or envelope.content
            self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), raw))
        return "250 2.0.0 OK: queued"


class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps what it receives."""

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        cert: Cert | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        if tls != "none" and cert is None:
            raise ValueError("TLS needs a certificate")
        self.host = HOST
        self.port = free_port()
        self.tls = tls
        self.cert = cert
        self.auth = auth
        self.handler = RecordingHandler()
        self.logins: list[tuple[str, bool]] = []
        self._controller: Controller | None = None

    # --- server life ---------------------------------------------------------------------

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.auth is None:
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = (user, password) == self.auth
        self.logins.append((user, ok))
        return AuthResult(success=ok, handled=False)

    def up(self) -> None:
        """Start (again) on the same port."""
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {"server_hostname": "sink.test", "ready_timeout": 5}
        if self.tls == "starttls" and self.cert is not None:
            kwargs.update(tls_context=self.cert.server_context(), require_starttls=True)
        if self.tls == "ssl" and self.cert is not None:
            kwargs["ssl_context"] = self.cert.server_context()
        if self.auth is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.tls != "none",
            )
        controller = Controller(self.handler, hostname=HOST, port=self.port, **kwargs)
        for _ in range(50):  # the port of the last run may linger for a moment
            try:
                controller.start()
                break
            except OSError:
                time.sleep(0.05)
        else:
            controller.start()
        self._controller = controller

    def down(self) -> None:
        """Stop listening: connections are refused until :meth:`up`."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    # --- behaviour -----------------------------------------------------------------------

    def fail_next(self, count: int, reply: str = "451 4.3.0 Try again later") -> None:
        """Answer the next ``count`` messages with ``reply`` at DATA (4xx or 5xx)."""
        with self.handler.lock:
            self.handler.data_replies.extend([reply] * count)

    def refuse_recipients(self, count: int, reply: str = "550 5.1.1 No such user") -> None:
        """Answer the next ``count`` RCPT commands with ``reply``."""
        with self.handler.lock:
            self.handler.rcpt_replies.extend([reply] * count)

    # --- what arrived --------------------------------------------------------------------

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    @property
    def attempts(self) -> int:
        """DATA commands seen, accepted or not."""
        with self.handler.lock:
            return self.handler.attempts

    def message_ids(self) -> list[str]:
        return [r.message_id for r in self.received]

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.received.clear()


@pytest.fixture(scope="session")
def smtp_cert(tmp_path_factory: pytest.TempPathFactory) -> Cert:
    return make_cert(tmp_path_factory.mktemp("smtp-cert"))


@pytest.fixture
def smtp_sink_factory() -> Iterator[Callable[..., SmtpSink]]:
    """Make sinks with options: ``smtp_sink_factory(tls="starttls", cert=..., auth=(u, p))``."""
    sinks: list[SmtpSink] = []

    def make(**kwargs: Any) -> SmtpSink:
        sink = SmtpSink(**kwargs)
        sink.up()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        sink.down()


@pytest.fixture
def smtp_sink(smtp_sink_factory: Callable[..., SmtpSink]) -> SmtpSink:
    """A plain SMTP sink without login on 127.0.0.1."""
    return smtp_sink_factory()
