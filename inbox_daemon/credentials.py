"""Secrets named by the configuration: read from the environment, a file or systemd.

This module owns :func:`read_secret`, the one way a ``*_env`` / ``*_file`` pair of keys becomes a
secret (``credential:NAME`` is the systemd credential NAME in ``$CREDENTIALS_DIRECTORY``). It is
a leaf: the settings of every channel use it, and it imports nothing of inbox_daemon but
:mod:`inbox_daemon.errors`.
"""

from __future__ import annotations

import os
from pathlib import Path

from inbox_daemon.errors import ConfigError

__all__ = ["read_secret"]


def read_secret(*, env: str | None = None, file: str | None = None, what: str = "secret") -> str:
    """A secret from an environment variable or a file (``credential:NAME`` for systemd)."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}: environment variable {env} is not set")
        return value
    if file:
        if file.startswith("credential:"):
            creds = os.environ.get("CREDENTIALS_DIRECTORY")
            if not creds:
                raise ConfigError(f"{what}: {file} needs systemd's $CREDENTIALS_DIRECTORY")
            path = Path(creds) / file.removeprefix("credential:")
        else:
            path = Path(file)
        try:
            return path.read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
    raise ConfigError(f"{what}: give *_env or *_file")
