"""A mail we send through SMTP is also kept in the IMAP mailbox's Sent folder, when asked."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest
from servers.dovecot import MailAccount
from servers.smtp import SmtpSink, smtp_sink, smtp_sink_factory

from inbox_daemon.channels.email.settings import MailboxSettings, SmtpSettings
from inbox_daemon.channels.email.smtp import EmailSender
from inbox_daemon.messages import Address, ChannelKind, OutboundMessage

__all__ = ["smtp_sink", "smtp_sink_factory"]


def mailbox(account: MailAccount, sink: SmtpSink, **extra: Any) -> MailboxSettings:
    return MailboxSettings(
        name="support", address="support@example.com", kind="imap", host=account.host,
        port=account.port, tls="none", username=account.user,
        smtp=SmtpSettings(host=sink.host, port=sink.port, tls="none"), **extra,
    )  # fmt: skip


def reply() -> OutboundMessage:
    return OutboundMessage(
        channel=ChannelKind.EMAIL, mailbox="support", message_id="<sent-1.cas-000001@example.com>",
        to=(Address("ann@example.com"),), subject="Re: Printer [CAS-000001]", text="Fixed.",
    )  # fmt: skip


def fetch_all(account: MailAccount, folder: str) -> list[email.message.EmailMessage]:
    with account.connect() as conn:
        assert conn.select(f'"{folder}"', readonly=True)[0] == "OK"
        _typ, data = conn.uid("SEARCH", "ALL")
        found = []
        for uid in (data[0] or b"").split():
            _typ, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = parts[0][1]  # type: ignore[index]
            found.append(email.message_from_bytes(raw, policy=email.policy.default))
        return found  # type: ignore[return-value]


async def test_sent_mail_is_kept_in_the_sent_folder(
    dovecot: MailAccount, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", dovecot.password)
    box = mailbox(dovecot, smtp_sink, password_env="TEST_IMAP_PASSWORD", sent_folder="Sent")
    sender = EmailSender.from_settings([box], storage=dovecot.server.root)
    await sender.send(reply())
    assert smtp_sink.message_ids() == ["<sent-1.cas-000001@example.com>"]
    [kept] = fetch_all(dovecot, "Sent")
    assert kept["Message-ID"] == "<sent-1.cas-000001@example.com>"
    assert kept["Subject"] == "Re: Printer [CAS-000001]"


async def test_a_failed_copy_does_not_fail_the_delivery(
    dovecot: MailAccount, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "wrong password")
    box = mailbox(dovecot, smtp_sink, password_env="TEST_IMAP_PASSWORD", sent_folder="Sent")
    sender = EmailSender.from_settings([box], storage=dovecot.server.root)
    receipt = await sender.send(reply())  # the copy fails to log in: logged, not raised
    assert receipt.external_id == "<sent-1.cas-000001@example.com>"
    assert smtp_sink.message_ids() == ["<sent-1.cas-000001@example.com>"]
