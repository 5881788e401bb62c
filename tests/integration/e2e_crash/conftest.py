"""Fixtures of the crash-and-restart test: the private Dovecot of tests/servers/dovecot.py."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/servers is imported as the top-level package ``servers``, whether or not ``tests`` is
# itself a package (pytest puts tests/ on sys.path only when it is not).
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from servers.dovecot import dovecot, dovecot_server  # noqa: E402

__all__ = ["dovecot", "dovecot_server"]
