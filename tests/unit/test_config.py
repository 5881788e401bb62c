"""Settings: file, environment overrides, relative paths, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox_daemon.config import load_settings
from inbox_daemon.credentials import read_secret
from inbox_daemon.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("INBOX_DAEMON_"):
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inbox-daemon.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))
    assert settings.database_url == f"sqlite:///{tmp_path}/var/inbox-daemon.db"
    assert settings.storage_path == tmp_path / "var" / "storage"
    assert settings.rules_path == tmp_path / "rules.yaml"
    assert settings.cases.auto_close_after.days == 7


def test_absolute_paths_and_postgres_url_are_kept(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            '[database]\nurl = "postgresql+asyncpg://inbox@db/inbox"\n'
            '[storage]\npath = "/srv/inbox"\n',
        )
    )
    assert settings.database_url == "postgresql+asyncpg://inbox@db/inbox"
    assert settings.storage_path == Path("/srv/inbox")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, '[logging]\nlevel = "info"\n[cases]\nauto_close_after_days = 3\n')
    monkeypatch.setenv("INBOX_DAEMON_LOGGING__LEVEL", "debug")
    monkeypatch.setenv("INBOX_DAEMON_CASES__MESSAGE_DOMAIN", "support.example.com")
    settings = load_settings(path)
    assert settings.logging.level == "debug"
    assert settings.cases.message_domain == "support.example.com"
    assert settings.cases.auto_close_after_days == 3


def test_config_found_through_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "")
    monkeypatch.setenv("INBOX_DAEMON_CONFIG", str(path))
    monkeypatch.chdir("/")
    assert load_settings().source == path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[databse]\n", "databse: unknown key"),
        ("[cases]\nauto_close_after_days = -1\n", "cases.auto_close_after_days"),
        ('[cases]\nmessage_domain = "a@b"\n', "must be a bare domain"),
        ('[logging]\nlevel = "loud"\n', "logging.level"),
        ("[database\n", "invalid TOML"),
    ],
)
def test_invalid_settings(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(write(tmp_path, text))
    assert str(info.value).startswith(str(tmp_path / "inbox-daemon.toml"))
    assert "\n" not in str(info.value)


def test_secrets_from_env_file_and_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAP_PW", "s3cret")
    assert read_secret(env="IMAP_PW") == "s3cret"
    (tmp_path / "pw").write_text("from-file\n")
    assert read_secret(file=str(tmp_path / "pw")) == "from-file"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert read_secret(file="credential:pw") == "from-file"
    with pytest.raises(ConfigError, match="environment variable NOPE is not set"):
        read_secret(env="NOPE", what="imap password")
    with pytest.raises(ConfigError, match="cannot read"):
        read_secret(file=str(tmp_path / "missing"))
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        read_secret(file="credential:pw")
