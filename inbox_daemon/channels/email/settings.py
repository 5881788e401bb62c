"""The ``[[mailbox]]`` sections of ``inbox-daemon.toml``: an email mailbox and its servers.

This module owns :class:`MailboxSettings` (one support mailbox, IMAP or Maildir), the
``[mailbox.smtp]`` server it sends through (:class:`SmtpSettings`) and its XOAUTH2 flow
(:class:`OAuth2Settings`), as :mod:`inbox_daemon.channels.slack.settings` owns ``[slack]``;
:mod:`inbox_daemon.config` assembles them into the whole configuration. Secrets are never inline:
``*_env`` names an environment variable and ``*_file`` a file (``credential:NAME`` for a systemd
credential), read with :func:`inbox_daemon.credentials.read_secret`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["MailboxSettings", "OAuth2Settings", "SmtpSettings", "TlsMode"]


class _Section(BaseModel):
    # As every section of inbox-daemon.toml: an unknown key is an error.
    model_config = ConfigDict(extra="forbid")


TlsMode = Literal["none", "starttls", "ssl"]


class SmtpSettings(_Section):
    """How a mailbox sends mail. Without it, outgoing mail is written to a local folder."""

    host: str
    port: int | None = None
    tls: TlsMode = "starttls"
    verify: bool = True
    ca_file: Path | None = None
    username: str = ""
    password_env: str | None = None
    password_file: str | None = None
    from_name: str = ""
    reply_to: str | None = None


class OAuth2Settings(_Section):
    """XOAUTH2 with a refresh-token flow (Microsoft 365, Gmail)."""

    token_endpoint: str
    client_id: str
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    refresh_token_env: str | None = None
    refresh_token_file: str | None = None
    scope: str = ""
    #: When the refresh token expires, if the provider says (warn well before).
    refresh_token_expires: str | None = None


class MailboxSettings(_Section):
    """A support mailbox: ``[[mailbox]]`` in the file."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    #: Our address: replies go out from it, mail from it is never a customer's.
    address: str
    kind: Literal["imap", "maildir"] = "imap"
    host: str = ""
    port: int | None = None
    tls: TlsMode = "ssl"
    verify: bool = True
    ca_file: Path | None = None
    username: str = ""
    password_env: str | None = None
    password_file: str | None = None
    oauth2: OAuth2Settings | None = None
    folder: str = "INBOX"
    processed_folder: str = ""
    #: IMAP only: keep a copy of every mail we send in this folder (e.g. "Sent").
    sent_folder: str = ""
    poll_interval: float = Field(default=60, gt=0)
    idle: bool = True
    #: Messages taken in (committed and acknowledged) together, at most.
    batch_messages: int = Field(default=100, ge=1, le=500)
    path: Path | None = None
    #: Extra addresses of ours (aliases) whose mail is never a customer's.
    aliases: list[str] = Field(default_factory=list)
    smtp: SmtpSettings | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "<> \r\n"):
            raise ValueError("must be a bare address like support@example.com")
        return value.lower()

    @property
    def our_addresses(self) -> frozenset[str]:
        return frozenset({self.address, *(a.lower() for a in self.aliases)})
