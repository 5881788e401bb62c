"""Fixtures for the email channel tests: a private Dovecot (see tests/servers/dovecot.py) and
a session on its INBOX."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

# tests/servers is imported as the top-level package ``servers``, whether or not ``tests`` is
# itself a package (pytest puts tests/ on sys.path only when it is not).
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from servers.dovecot import MailAccount, dovecot, dovecot_server  # noqa: E402

from inbox_daemon.channels.email.imap_session import ImapSession  # noqa: E402

__all__ = ["dovecot", "dovecot_server", "session"]


@pytest.fixture
async def session(dovecot: MailAccount) -> AsyncIterator[ImapSession]:
    """A session on INBOX; it sees what is appended after it selected once it sent a NOOP."""
    session = await ImapSession.connect(
        dovecot.host, dovecot.port, tls="none", ssl_context=None, channel="test",
        command_timeout=30.0,
    )  # fmt: skip
    try:
        await session.login(dovecot.user, dovecot.password)
        await session.select("INBOX")
        yield session
    finally:
        await session.close()
