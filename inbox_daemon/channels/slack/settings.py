"""The ``[slack]`` section of ``inbox-daemon.toml`` and the secrets it names.

Socket Mode needs the bot token and an app-level token (``xapp-…``); HTTP mode needs the bot
token and the signing secret. Secrets are never inline: ``*_env`` names an environment variable
and ``*_file`` a file (``credential:NAME`` for a systemd credential), as everywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from inbox_daemon.credentials import read_secret

__all__ = ["SlackSecrets", "SlackSettings"]

_CHANNEL_ID = re.compile(r"^[A-Z0-9]{2,32}$")


class SlackSettings(BaseModel):
    """How the daemon talks to one Slack workspace."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``socket``: the daemon connects out to Slack (no public URL needed);
    #: ``http``: Slack posts events, interactions and slash commands to ``http_path``.
    mode: Literal["socket", "http"] = "socket"
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=3000, ge=0, le=65535)
    http_path: str = "/slack/events"
    bot_token_env: str | None = None
    bot_token_file: str | None = None
    app_token_env: str | None = None
    app_token_file: str | None = None
    signing_secret_env: str | None = None
    signing_secret_file: str | None = None
    #: The Web API's base URL (tests point it at a local stand-in).
    api_url: str = "https://slack.com/api/"
    #: Channels whose messages are customer messages (channel ids such as C0123ABCD).
    intake_channels: list[str] = Field(default_factory=list)
    #: A message in a case card's thread that starts with this stays an internal note.
    note_marker: str = "!note"
    #: The slash command agents use.
    command: str = "/case"
    #: Files larger than this are not downloaded (the message says so instead).
    max_file_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    #: Seconds one Web API call may take.
    api_timeout: int = Field(default=10, gt=0)

    @field_validator("intake_channels")
    @classmethod
    def _channel_ids(cls, value: list[str]) -> list[str]:
        bad = [c for c in value if not _CHANNEL_ID.match(c)]
        if bad:
            raise ValueError(f"not Slack channel ids (like C0123ABCD): {', '.join(bad)}")
        return value

    @field_validator("note_marker")
    @classmethod
    def _marker(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError("must be a slash command like /case")
        return value

    @field_validator("http_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with /")
        return value

    @model_validator(mode="after")
    def _secrets_given(self) -> SlackSettings:
        if not (self.bot_token_env or self.bot_token_file):
            raise ValueError("give bot_token_env or bot_token_file")
        if self.mode == "socket" and not (self.app_token_env or self.app_token_file):
            raise ValueError("mode socket needs app_token_env or app_token_file")
        if self.mode == "http" and not (self.signing_secret_env or self.signing_secret_file):
            raise ValueError("mode http needs signing_secret_env or signing_secret_file")
        return self

    def secrets(self) -> SlackSecrets:
        """Read the secrets this mode needs (ConfigError names the one missing)."""
        bot = read_secret(
            env=self.bot_token_env, file=self.bot_token_file, what="[slack] bot token"
        )
        app = signing = None
        if self.mode == "socket":
            app = read_secret(
                env=self.app_token_env, file=self.app_token_file, what="[slack] app token"
            )
        else:
            signing = read_secret(
                env=self.signing_secret_env,
                file=self.signing_secret_file,
                what="[slack] signing secret",
            )
        return SlackSecrets(bot_token=bot, app_token=app, signing_secret=signing)


@dataclass(frozen=True, slots=True)
class SlackSecrets:
    """The tokens read from the environment or files; never logged."""

    bot_token: str
    app_token: str | None = None
    signing_secret: str | None = None

    def __repr__(self) -> str:
        return "SlackSecrets(…)"
