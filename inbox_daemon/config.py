"""Settings: ``inbox-daemon.toml`` plus ``INBOX_DAEMON_*`` environment overrides, validated.

The file is found through ``--config``, then ``$INBOX_DAEMON_CONFIG``, then ``./inbox-daemon.toml``.
Any key can be overridden from the environment: ``INBOX_DAEMON_DATABASE__URL`` sets
``[database] url`` (sections and keys joined by a double underscore). Relative paths are taken
from the folder of the config file. Secrets are never required inline: a ``*_env`` key names an
environment variable and a ``*_file`` key a file (``credential:NAME`` means the systemd credential
NAME in ``$CREDENTIALS_DIRECTORY``).
"""

from __future__ import annotations

import os
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.channels.slack.settings import SlackSettings
from inbox_daemon.errors import ConfigError

CONFIG_FILENAME = "inbox-daemon.toml"
ENV_CONFIG = "INBOX_DAEMON_CONFIG"
ENV_PREFIX = "INBOX_DAEMON_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    #: ``sqlite:///path/to/file.db`` (the default) or ``postgresql+asyncpg://user@host/db``.
    url: str = "sqlite:///var/inbox-daemon.db"


class StorageSettings(_Section):
    #: Attachments (content-addressed), quarantine and the outgoing-mail folder live here.
    path: Path = Path("var/storage")
    #: A larger attachment is not kept: the activity says so instead.
    max_attachment_mb: float = Field(default=25, gt=0)


class RulesSettings(_Section):
    path: Path = Path("rules.yaml")


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    #: ``auto``: readable on a terminal, JSON lines otherwise.
    format: Literal["auto", "json", "console"] = "auto"


class CasesSettings(_Section):
    #: A resolved case is closed for good after this many days.
    auto_close_after_days: float = Field(default=7, gt=0)
    #: The domain of the Message-IDs we make: ``<…@message_domain>``.
    message_domain: str = "inbox-daemon.invalid"
    #: A reply to a case resolved more than this many days ago opens a new case (0: never).
    reopen_window_days: float = Field(default=0, ge=0)
    #: Answer a new case created from email with an acknowledgement (templates beside rules.yaml).
    acknowledge: bool = True
    #: At most this many automatic answers to one sender per hour (stops autoresponder loops).
    auto_answers_per_hour: int = Field(default=3, ge=0)
    #: The seeds' diagnostic task (Creatio): a case that becomes active with an assignee gets
    #: an open task for them, closed with a result when the case is resolved, cancelled, waits
    #: for the customer or goes to someone else. Off by default: it adds an activity to every
    #: assigned case, which an installation upgrading should choose.
    diagnostic_tasks: bool = False
    #: Tell an agent (or a team's members) when a case is assigned or escalated to them, or
    #: taken over from them: a Slack DM when they have a Slack id, else an email.
    notify_agents: bool = True

    @property
    def auto_close_after(self) -> timedelta:
        return timedelta(days=self.auto_close_after_days)

    @field_validator("message_domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not value or any(c in value for c in "<>@ \r\n"):
            raise ValueError("must be a bare domain like support.example.com")
        return value


class OutboxSettings(_Section):
    """Delivery of outgoing messages: retries with exponential backoff, then failed."""

    max_attempts: int = Field(default=8, ge=1)
    #: Seconds between passes when nothing wakes the worker earlier.
    interval_seconds: float = Field(default=10, gt=0)
    #: A message claimed by a daemon that died is sent again after this many minutes.
    lease_minutes: float = Field(default=10, gt=0)


class HttpSettings(_Section):
    """The health and metrics endpoint: ``/healthz`` (JSON) and ``/metrics`` (Prometheus)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9465, ge=0, le=65535)


class DaemonSettings(_Section):
    """How the daemon runs: stopping and sharing mailboxes between instances."""

    #: On SIGTERM, in-flight messages and the outbox pass under way get this long to finish.
    drain_seconds: float = Field(default=20, ge=0)
    #: PostgreSQL: a mailbox is polled by the instance holding its lease, renewed every third of
    #: this; a lease not renewed for this long is taken over by another instance.
    lease_seconds: float = Field(default=30, gt=0)
    #: IMAP mail is parsed in a worker process beside the database work (false: in a thread
    #: of the daemon itself).
    parse_in_worker: bool = True


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    rules: RulesSettings = RulesSettings()
    logging: LoggingSettings = LoggingSettings()
    cases: CasesSettings = CasesSettings()
    mailbox: list[MailboxSettings] = Field(default_factory=list)
    outbox: OutboxSettings = OutboxSettings()
    slack: SlackSettings | None = None
    http: HttpSettings = HttpSettings()
    daemon: DaemonSettings = DaemonSettings()
    #: Where the settings came from (not a key of the file).
    source: Path | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, which arrives as init values.
        return env_settings, init_settings

    @field_validator("mailbox")
    @classmethod
    def _unique_mailboxes(cls, value: list[MailboxSettings]) -> list[MailboxSettings]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox names must be unique: {', '.join(dupes)}")
        for box in value:
            if box.kind == "imap" and not box.host:
                raise ValueError(f"mailbox {box.name}: kind imap needs host")
            if box.kind == "maildir" and box.path is None:
                raise ValueError(f"mailbox {box.name}: kind maildir needs path")
        return value

    @property
    def mailboxes(self) -> list[MailboxSettings]:
        """The mailboxes with their relative paths (Maildir, CA files) taken from the config's
        folder."""
        resolved = []
        for box in self.mailbox:
            updates: dict[str, Any] = {}
            if box.path is not None:
                updates["path"] = self.path(box.path)
            if box.ca_file is not None:
                updates["ca_file"] = self.path(box.ca_file)
            if box.smtp is not None and box.smtp.ca_file is not None:
                updates["smtp"] = box.smtp.model_copy(
                    update={"ca_file": self.path(box.smtp.ca_file)}
                )
            resolved.append(box.model_copy(update=updates))
        return resolved

    @property
    def our_addresses(self) -> frozenset[str]:
        """Every address of ours: mail from them is never a customer's."""
        return frozenset(a for box in self.mailbox for a in box.our_addresses)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source is not None else Path.cwd()

    def path(self, value: Path) -> Path:
        """A configured path, relative ones taken from the config file's folder."""
        value = value.expanduser()
        return value if value.is_absolute() else self.base_dir / value

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute."""
        url = self.database.url
        prefix, sep, rest = url.partition(":///")
        if sep and prefix.startswith("sqlite") and not rest.startswith("/"):
            return f"{prefix}:///{self.path(Path(rest))}"
        return url

    @property
    def storage_path(self) -> Path:
        return self.path(self.storage.path)

    @property
    def rules_path(self) -> Path:
        return self.path(self.rules.path)


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The config file to use, or ConfigError saying where we looked."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        return path.resolve()
    env = os.environ.get(ENV_CONFIG)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"config file {path} (from ${ENV_CONFIG}) not found")
        return path.resolve()
    path = Path.cwd() / CONFIG_FILENAME
    if path.is_file():
        return path
    raise ConfigError(
        f"no {CONFIG_FILENAME} in {Path.cwd()}: pass --config FILE, set ${ENV_CONFIG}, "
        "or create one with `inbox-daemon init`"
    )


def _env_source(loc: tuple[int | str, ...]) -> str | None:
    """The environment variable a value at ``loc`` came from, if one is set
    (``INBOX_DAEMON_OUTBOX__MAX_ATTEMPTS``, or a whole section as JSON)."""
    present = {name.upper() for name in os.environ}
    names = [str(part) for part in loc if not isinstance(part, int)]
    for end in range(len(names), 0, -1):
        name = ENV_PREFIX + "__".join(names[:end]).upper()
        if name in present:
            return name
    return None


def _format_errors(path: Path, exc: ValidationError) -> str:
    """One line for every bad value, each blamed on where it came from: the environment
    variable that set it, else the file."""
    from_file, from_env = [], []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        env = _env_source(tuple(err["loc"]))
        if env is not None:
            from_env.append(f"${env} ({loc}): {msg}")
        else:
            from_file.append(f"{loc}: {msg}" if loc else msg)
    parts = [f"{path}: " + "; ".join(from_file)] if from_file else []
    return "; ".join(parts + from_env)


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = find_config(explicit)
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return Settings(**data, source=path)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
