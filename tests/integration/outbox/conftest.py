"""Fixtures of the outbox tests: the SMTP sink (tests/servers/smtp.py), a clock, the service."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from inbox_daemon.service import CaseService
from inbox_daemon.store.db import Database

# tests/servers is imported as the top-level package ``servers``, whether or not ``tests`` is
# itself a package (pytest puts tests/ on sys.path only when it is not).
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from outbox_helpers import DIRECTORY, DOMAIN, Clock  # noqa: E402
from servers.smtp import smtp_cert, smtp_sink, smtp_sink_factory  # noqa: E402

__all__ = ["smtp_cert", "smtp_sink", "smtp_sink_factory"]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def svc(db: Database, clock: Clock) -> CaseService:
    return CaseService(db, directory=DIRECTORY, clock=clock, message_domain=DOMAIN)
