"""SmtpSender against a real SMTP server: TLS modes, certificates, login, error classes."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from outbox_helpers import mailbox_for
from servers.smtp import Cert, SmtpSink

from inbox_daemon.channels.email.smtp import EmailSender, SmtpSender
from inbox_daemon.errors import ConfigError, PermanentDeliveryError, TransientDeliveryError
from inbox_daemon.messages import Address, ChannelKind, OutboundMessage

Factory = Callable[..., SmtpSink]
PASSWORD = "s3cret-Pa55word"


def outbound(**kw: object) -> OutboundMessage:
    args: dict[str, object] = {
        "channel": ChannelKind.EMAIL,
        "mailbox": "support",
        "message_id": "<0a1b2c.cas-000001@support.example.com>",
        "to": (Address("ann@example.com", "Ann"),),
        "subject": "Printer on fire",
        "text": "Please restart it.",
        "case_number": "CAS-000001",
    }
    args.update(kw)
    return OutboundMessage(**args)  # type: ignore[arg-type]


@pytest.fixture
def password_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    return "TEST_SMTP_PASSWORD"


async def test_plain_delivery_and_receipt(smtp_sink: SmtpSink) -> None:
    sender = SmtpSender(mailbox_for(smtp_sink, from_name="Example Support"))
    receipt = await sender.send(outbound(cc=(Address("bob@example.com"),)))
    assert receipt.external_id == "<0a1b2c.cas-000001@support.example.com>"
    [got] = smtp_sink.received
    assert got.rcpt_tos == ("ann@example.com", "bob@example.com")
    assert got.message["From"] == "Example Support <support@example.com>"
    assert got.message["Subject"] == "Re: Printer on fire [CAS-000001]"


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
async def test_tls_with_our_ca_file(smtp_sink_factory: Factory, smtp_cert: Cert, tls: str) -> None:
    sink = smtp_sink_factory(tls=tls, cert=smtp_cert)
    sender = SmtpSender(mailbox_for(sink, tls=tls, ca_file=smtp_cert.cert))
    await sender.send(outbound())
    assert sink.message_ids() == ["<0a1b2c.cas-000001@support.example.com>"]


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
async def test_unverifiable_certificate_is_refused_by_default(
    smtp_sink_factory: Factory, smtp_cert: Cert, tls: str
) -> None:
    sink = smtp_sink_factory(tls=tls, cert=smtp_cert)
    sender = SmtpSender(mailbox_for(sink, tls=tls))
    with pytest.raises(PermanentDeliveryError, match="certificate could not be verified"):
        await sender.send(outbound())
    assert sink.received == []


async def test_verification_can_be_switched_off(
    smtp_sink_factory: Factory, smtp_cert: Cert
) -> None:
    sink = smtp_sink_factory(tls="starttls", cert=smtp_cert)
    await SmtpSender(mailbox_for(sink, tls="starttls", verify=False)).send(outbound())
    assert len(sink.received) == 1


async def test_starttls_required_but_not_offered(smtp_sink: SmtpSink) -> None:
    sender = SmtpSender(mailbox_for(smtp_sink, tls="starttls"))
    with pytest.raises(PermanentDeliveryError, match="STARTTLS"):
        await sender.send(outbound())


def with_login(sink: SmtpSink, cert: Cert, **kw: object) -> SmtpSender:
    return SmtpSender(mailbox_for(sink, tls="starttls", ca_file=cert.cert, username="agent", **kw))


async def test_login_with_password_from_env_or_file(
    smtp_sink_factory: Factory, smtp_cert: Cert, password_env: str, tmp_path: Path
) -> None:
    sink = smtp_sink_factory(tls="starttls", cert=smtp_cert, auth=("agent", PASSWORD))
    await with_login(sink, smtp_cert, password_env=password_env).send(outbound())
    secret = tmp_path / "smtp-password"
    secret.write_text(PASSWORD + "\n")
    await with_login(sink, smtp_cert, password_file=str(secret)).send(
        outbound(message_id="<second@support.example.com>")
    )
    assert sink.logins == [("agent", True), ("agent", True)]
    assert len(sink.received) == 2


async def test_failed_login_is_permanent_clear_and_never_shows_the_password(
    smtp_sink_factory: Factory, smtp_cert: Cert, password_env: str
) -> None:
    sink = smtp_sink_factory(tls="starttls", cert=smtp_cert, auth=("agent", "the-right-one"))
    sender = with_login(sink, smtp_cert, password_env=password_env)
    with structlog.testing.capture_logs() as logs, pytest.raises(PermanentDeliveryError) as info:
        await sender.send(outbound(text="secret body text"))
    message = str(info.value)
    assert "login failed" in message
    assert "check the username and the password" in message
    assert f"127.0.0.1:{sink.port}" in message
    assert PASSWORD not in message
    assert logs
    logged = repr(logs)
    assert PASSWORD not in logged
    assert "secret body text" not in logged
    assert sink.received == []


def test_missing_password_stops_at_start_up(smtp_sink: SmtpSink) -> None:
    with pytest.raises(ConfigError, match="NO_SUCH_VARIABLE is not set"):
        SmtpSender(mailbox_for(smtp_sink, username="agent", password_env="NO_SUCH_VARIABLE"))


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.3.0 Try again later", TransientDeliveryError),
        ("421 4.7.0 Too many connections", TransientDeliveryError),
        ("554 5.7.1 Rejected", PermanentDeliveryError),
        ("552 5.3.4 Message too big", PermanentDeliveryError),
    ],
)
async def test_data_replies_are_classified(
    smtp_sink: SmtpSink, reply: str, error: type[Exception]
) -> None:
    smtp_sink.fail_next(1, reply)
    with pytest.raises(error, match=reply.split(" ", 1)[0]) as info:
        await SmtpSender(mailbox_for(smtp_sink)).send(outbound())
    assert type(info.value) is error
    await SmtpSender(mailbox_for(smtp_sink)).send(outbound())  # the next one goes through
    assert len(smtp_sink.received) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("550 5.1.1 No such user", PermanentDeliveryError),
        ("450 4.2.1 Mailbox busy", TransientDeliveryError),
    ],
)
async def test_refused_recipients_are_classified(
    smtp_sink: SmtpSink, reply: str, error: type[Exception]
) -> None:
    smtp_sink.refuse_recipients(1, reply)
    with pytest.raises(error, match=r"recipients refused: ann@example\.com") as info:
        await SmtpSender(mailbox_for(smtp_sink)).send(outbound())
    assert type(info.value) is error


async def test_one_refused_recipient_of_two_still_delivers(smtp_sink: SmtpSink) -> None:
    smtp_sink.refuse_recipients(1)
    await SmtpSender(mailbox_for(smtp_sink)).send(outbound(cc=(Address("bob@example.com"),)))
    [got] = smtp_sink.received
    assert got.rcpt_tos == ("bob@example.com",)


async def test_connection_refused_is_transient(smtp_sink: SmtpSink) -> None:
    smtp_sink.down()
    with pytest.raises(TransientDeliveryError, match=f"127.0.0.1:{smtp_sink.port}"):
        await SmtpSender(mailbox_for(smtp_sink)).send(outbound())


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


async def test_timeout_is_transient(smtp_sink: SmtpSink, silent_server: int) -> None:
    box = mailbox_for(smtp_sink)
    assert box.smtp is not None
    settings = box.smtp.model_copy(update={"port": silent_server})
    with pytest.raises(TransientDeliveryError, match="Timed out"):
        await SmtpSender(box, settings, timeout=0.3).send(outbound())


async def test_uncomposable_message_is_permanent(smtp_sink: SmtpSink) -> None:
    with pytest.raises(PermanentDeliveryError, match="not a plain email address"):
        await SmtpSender(mailbox_for(smtp_sink)).send(
            outbound(to=(Address("ann@example.com\r\nRCPT TO:<evil@example.net>"),))
        )
    assert smtp_sink.attempts == 0


async def test_email_sender_picks_the_mailbox(smtp_sink_factory: Factory, tmp_path: Path) -> None:
    sales_sink = smtp_sink_factory()
    boxes = [mailbox_for(None, "support"), mailbox_for(sales_sink, "sales")]
    sender = EmailSender.from_settings(boxes, tmp_path)
    await sender.send(outbound(mailbox="sales"))
    assert [r.mail_from for r in sales_sink.received] == ["sales@example.com"]
    await sender.send(outbound(mailbox=""))  # a phone case: the first mailbox
    await sender.send(outbound(mailbox="removed", message_id="<x@support.example.com>"))
    written = sorted(p.name for p in (tmp_path / "outgoing" / "support").iterdir())
    assert written == ["0a1b2c.cas-000001@support.example.com.eml", "x@support.example.com.eml"]
    with pytest.raises(PermanentDeliveryError, match="no mailbox is configured"):
        await EmailSender({}).send(outbound())
