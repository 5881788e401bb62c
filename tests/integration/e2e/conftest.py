"""Fixtures of the end-to-end email tests: a real Dovecot (tests/servers/dovecot.py), a real
SMTP sink (tests/servers/smtp.py) and the pipeline between them, built as the daemon builds it
(``inbox_daemon.runtime.Runtime``) on the ``db`` fixture, so on SQLite and on PostgreSQL."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# tests/servers is imported as the top-level package ``servers``, whether or not ``tests`` is
# itself a package (pytest puts tests/ on sys.path only when it is not).
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from e2e_helpers import MESSAGE_DOMAIN, OUR_ADDRESS, RULES, Clock, Pipeline  # noqa: E402
from servers.dovecot import MailAccount, dovecot, dovecot_server  # noqa: E402
from servers.smtp import SmtpSink, smtp_cert, smtp_sink, smtp_sink_factory  # noqa: E402

from inbox_daemon.acknowledge import load_templates  # noqa: E402
from inbox_daemon.channels.email.settings import MailboxSettings, SmtpSettings  # noqa: E402
from inbox_daemon.channels.email.smtp import EmailSender  # noqa: E402
from inbox_daemon.ingest import Ingestor, IntakeOptions  # noqa: E402
from inbox_daemon.outbox import Outbox  # noqa: E402
from inbox_daemon.router.loader import LoadedRules, load_rules_text  # noqa: E402
from inbox_daemon.service import CaseService  # noqa: E402
from inbox_daemon.store.db import Database  # noqa: E402
from inbox_daemon.store.files import FileStore  # noqa: E402

__all__ = ["dovecot", "dovecot_server", "smtp_cert", "smtp_sink", "smtp_sink_factory"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rules() -> LoadedRules:
    return load_rules_text(RULES, "rules.yaml")


@pytest.fixture
def mailbox(dovecot: MailAccount, smtp_sink: SmtpSink) -> MailboxSettings:
    """The support mailbox: IMAP on the test Dovecot, SMTP through the sink."""
    return MailboxSettings(
        name="support",
        address=OUR_ADDRESS,
        kind="imap",
        host=dovecot.host,
        port=dovecot.port,
        tls="none",
        username=dovecot.user,
        idle=True,
        poll_interval=60,
        smtp=SmtpSettings(host=smtp_sink.host, port=smtp_sink.port, tls="none"),
    )


@pytest.fixture
def pipeline(
    db: Database,
    clock: Clock,
    rules: LoadedRules,
    dovecot: MailAccount,
    smtp_sink: SmtpSink,
    mailbox: MailboxSettings,
    tmp_path: Path,
) -> Pipeline:
    """Case service, intake, outbox and IMAP channel wired as ``runtime.Runtime`` wires them."""
    service = CaseService(db, directory=rules.directory, clock=clock, message_domain=MESSAGE_DOMAIN)
    files = FileStore(tmp_path / "attachments")
    ingestor = Ingestor(
        service,
        files=files,
        quarantine=FileStore(tmp_path / "quarantine"),
        rules=lambda: rules,
        options=IntakeOptions(
            our_addresses=mailbox.our_addresses,
            acknowledgements=load_templates(),
            auto_answers_per_hour=3,
        ),
    )
    sender = EmailSender.from_settings([mailbox], tmp_path, clock=clock)
    outbox = Outbox(db, {"email": sender}, clock=clock, files=files)
    service.on_outgoing = outbox.wake
    return Pipeline(
        db=db,
        clock=clock,
        service=service,
        ingestor=ingestor,
        outbox=outbox,
        smtp=smtp_sink,
        account=dovecot,
        settings=mailbox,
    )
