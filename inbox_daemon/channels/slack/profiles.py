"""Slack users as the daemon needs them: names for senders, emails to map agents.

``users.info`` and ``users.lookupByEmail`` answers are cached for an hour, so a busy channel
does not cost an API call per message; Slack being unreachable is ``ChannelUnavailable``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from inbox_daemon.errors import ChannelUnavailable

from .errors import error_code

__all__ = ["Profile", "SlackProfiles"]

CHANNEL = "slack"


@dataclass(frozen=True, slots=True)
class Profile:
    """What ``users.info`` says about a Slack user."""

    user: str
    name: str
    email: str | None
    is_bot: bool = False
    deleted: bool = False


class SlackProfiles:
    """``users.info`` lookups, cached for ``ttl`` seconds (names, and emails to map agents)."""

    def __init__(
        self,
        client: AsyncWebClient,
        *,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[float, Profile | None]] = {}
        self._by_email: dict[str, tuple[float, str | None]] = {}

    async def get(self, user: str) -> Profile | None:
        """The user's profile, or None if Slack does not know them.

        Raises ChannelUnavailable when Slack cannot be asked right now.
        """
        hit = self._cache.get(user)
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        try:
            resp = await self.client.users_info(user=user)
        except SlackApiError as exc:
            if error_code(exc) in ("user_not_found", "user_not_visible"):
                self._cache[user] = (self.clock(), None)
                return None
            raise ChannelUnavailable(CHANNEL, f"users.info failed: {error_code(exc)}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelUnavailable(CHANNEL, f"users.info failed: {exc!r}") from None
        data: Mapping[str, Any] = resp.get("user") or {}
        prof: Mapping[str, Any] = data.get("profile") or {}
        name = (
            prof.get("display_name")
            or prof.get("real_name")
            or data.get("real_name")
            or data.get("name")
            or ""
        )
        email = prof.get("email")
        profile = Profile(
            user=user,
            name=str(name),
            email=str(email).lower() if email else None,
            is_bot=bool(data.get("is_bot")),
            deleted=bool(data.get("deleted")),
        )
        self._cache[user] = (self.clock(), profile)
        return profile

    async def by_email(self, email: str) -> str | None:
        """The Slack user id with this email (``users.lookupByEmail``), or None."""
        key = email.lower()
        hit = self._by_email.get(key)
        if hit is not None and self.clock() - hit[0] < self.ttl:
            return hit[1]
        try:
            resp = await self.client.users_lookupByEmail(email=key)
        except SlackApiError as exc:
            if error_code(exc) == "users_not_found":
                self._by_email[key] = (self.clock(), None)
                return None
            raise ChannelUnavailable(CHANNEL, f"users.lookupByEmail: {error_code(exc)}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelUnavailable(CHANNEL, f"users.lookupByEmail: {exc!r}") from None
        user = (resp.get("user") or {}).get("id")
        self._by_email[key] = (self.clock(), str(user) if user else None)
        return str(user) if user else None
