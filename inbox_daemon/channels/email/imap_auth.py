"""IMAP credentials beyond a password: XOAUTH2 access tokens from a refresh-token flow.

This module owns :class:`OAuth2TokenProvider`, which POSTs ``grant_type=refresh_token`` to the
provider's token endpoint (Microsoft 365, Google), caches the access token until shortly before
it expires, warns when the refresh token itself is about to expire, and
:func:`xoauth2_string`, the SASL XOAUTH2 initial response. Tokens never reach a log line.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import aiohttp

from inbox_daemon.channels.email.settings import MailboxSettings, OAuth2Settings
from inbox_daemon.credentials import read_secret
from inbox_daemon.errors import ChannelAuthError, ChannelUnavailable, ConfigError
from inbox_daemon.logging import get_logger

#: Warn about the refresh token this many days before it expires.
WARN_DAYS = 14.0
#: Refresh the access token this many seconds before the provider says it expires.
REFRESH_MARGIN = 120.0
#: When the provider does not say (``expires_in`` missing), assume this lifetime.
DEFAULT_LIFETIME = 3600.0

log = get_logger("inbox_daemon.channels.email.imap")


class TokenProvider(Protocol):
    """Anything that hands out a current OAuth2 access token."""

    async def access_token(self, *, refresh: bool = False) -> str:
        """A valid access token; ``refresh`` forces a new one (the cached one was refused)."""
        ...


def xoauth2_string(user: str, token: str) -> str:
    """The base64 SASL XOAUTH2 initial response: ``user=…^Aauth=Bearer …^A^A``."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode("ascii")


def parse_expiry(value: str | None) -> datetime | None:
    """``refresh_token_expires`` (an ISO date or date-time; naive means UTC)."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            f"oauth2.refresh_token_expires: {value!r} is not an ISO date like 2025-06-30"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def days_until(expires: datetime | None, now: datetime) -> float | None:
    """Days from ``now`` to ``expires`` (negative once past), None when ``expires`` is."""
    if expires is None:
        return None
    return (expires - now).total_seconds() / 86400


def refresh_token_days_left_for(
    settings: MailboxSettings, *, now: Callable[[], datetime]
) -> Callable[[], float | None] | None:
    """The days left of a mailbox's OAuth2 refresh token, as a function read at each call.

    None when they are unknown: not an IMAP mailbox, no ``oauth2`` or no
    ``oauth2.refresh_token_expires``. The value is the one
    :attr:`OAuth2TokenProvider.refresh_token_days_left` warns about (for the metrics).
    """
    oauth2 = settings.oauth2
    if settings.kind != "imap" or oauth2 is None or not oauth2.refresh_token_expires:
        return None
    expires = parse_expiry(oauth2.refresh_token_expires)
    return lambda: days_until(expires, now())


class OAuth2TokenProvider:
    """Access tokens from a refresh token, cached until shortly before they expire.

    ``refresh_token_days_left`` tells (for metrics) how many days the refresh token has left
    when ``refresh_token_expires`` is configured; each refresh logs a warning once it is under
    :data:`WARN_DAYS`. A refresh token the provider rotates is kept for later refreshes (in
    memory only: the configured one is used again after a restart).
    """

    def __init__(
        self,
        *,
        channel: str,
        token_endpoint: str,
        client_id: str,
        refresh_token: str,
        client_secret: str | None = None,
        scope: str = "",
        refresh_token_expires: str | datetime | None = None,
        timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.channel = channel
        self.token_endpoint = token_endpoint
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self._refresh_token = refresh_token
        self.refresh_token_expires = (
            refresh_token_expires
            if isinstance(refresh_token_expires, datetime) or refresh_token_expires is None
            else parse_expiry(refresh_token_expires)
        )
        self._timeout = timeout
        self._clock = clock
        self._now = now
        self._token: str | None = None
        self._valid_until = 0.0
        self._lock = asyncio.Lock()
        #: How many times a new access token was fetched (for tests and metrics).
        self.refreshes = 0

    @classmethod
    def from_settings(cls, settings: OAuth2Settings, *, channel: str) -> OAuth2TokenProvider:
        """Read the refresh token and client secret from their ``*_env``/``*_file`` keys."""
        refresh_token = read_secret(
            env=settings.refresh_token_env,
            file=settings.refresh_token_file,
            what=f"{channel}: oauth2 refresh token",
        )
        secret = None
        if settings.client_secret_env or settings.client_secret_file:
            secret = read_secret(
                env=settings.client_secret_env,
                file=settings.client_secret_file,
                what=f"{channel}: oauth2 client secret",
            )
        return cls(
            channel=channel,
            token_endpoint=settings.token_endpoint,
            client_id=settings.client_id,
            client_secret=secret,
            scope=settings.scope,
            refresh_token=refresh_token,
            refresh_token_expires=settings.refresh_token_expires,
        )

    @property
    def refresh_token_days_left(self) -> float | None:
        """Days until the refresh token expires (negative once it has), None when unknown."""
        return days_until(self.refresh_token_expires, self._now())

    async def access_token(self, *, refresh: bool = False) -> str:
        async with self._lock:
            if refresh or self._token is None or self._clock() >= self._valid_until:
                await self._refresh()
            assert self._token is not None
            return self._token

    async def _refresh(self) -> None:
        days_left = self.refresh_token_days_left
        if days_left is not None and days_left < WARN_DAYS:
            log.warning(
                "oauth2.refresh_token_expiring",
                channel=self.channel,
                days_left=round(days_left, 1),
                expires=self.refresh_token_expires.isoformat()
                if self.refresh_token_expires
                else None,
            )
        form = {
            "grant_type": "refresh_token",
            "refresh_token": self._refresh_token,
            "client_id": self.client_id,
        }
        if self.client_secret:
            form["client_secret"] = self.client_secret
        if self.scope:
            form["scope"] = self.scope
        started = self._clock()
        data = await self._post(form)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise ChannelAuthError(self.channel, "token endpoint answered without an access_token")
        try:
            lifetime = float(data.get("expires_in", DEFAULT_LIFETIME))
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        rotated = data.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            log.info("oauth2.refresh_token_rotated", channel=self.channel)
        self._token = token
        self._valid_until = started + max(lifetime - REFRESH_MARGIN, lifetime / 2)
        self.refreshes += 1
        log.info("oauth2.access_token_refreshed", channel=self.channel, expires_in=lifetime)

    async def _post(self, form: dict[str, str]) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.post(
                    self.token_endpoint, data=form, headers={"Accept": "application/json"}
                ) as response,
            ):
                status = response.status
                try:
                    data = await response.json(content_type=None)
                except ValueError:
                    data = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ChannelUnavailable(
                self.channel, f"token endpoint unreachable: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(data, dict):
            data = {}
        if status == 200:
            return data
        error = str(data.get("error") or f"HTTP {status}")
        description = str(data.get("error_description") or "").splitlines()[:1]
        detail = f"{error}: {description[0]}" if description else error
        if status in (400, 401, 403):
            # invalid_grant (revoked or expired refresh token), invalid_client, ...
            raise ChannelAuthError(self.channel, f"token endpoint refused the refresh: {detail}")
        raise ChannelUnavailable(self.channel, f"token endpoint failed: {detail}")
