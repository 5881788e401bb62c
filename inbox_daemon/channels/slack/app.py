"""The Slack channel: a slack-bolt ``AsyncApp`` served over Socket Mode or HTTP.

:class:`SlackApp` owns the bolt app, its Web API client (``AsyncWebClient(base_url=…)``), the
HTTP endpoint or the Socket Mode connection, and the background work done after Slack has
been answered. What the requests mean is in ``handlers.py``; the agent actions it calls are the
:class:`AgentActions` protocol, implemented above the channel layer (``inbox_daemon.agents``).

The daemon starts it with ``await app.start(sink)`` and stops it with ``await app.stop()``
(Socket Mode: ``connect_async``/``close_async``, never ``start_async``; HTTP: an aiohttp site
on ``http_host:http_port`` serving ``http_path``), or runs ``await app.run(sink)`` as a task
until it is cancelled. In HTTP mode bolt checks each request's signature and timestamp (a forged
or replayed request is answered 401); in Socket Mode the connection itself is authenticated.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from inbox_daemon.channels.base import Sink
from inbox_daemon.errors import ChannelAuthError, ChannelUnavailable
from inbox_daemon.logging import get_logger

from .actions import (
    ActionResult,
    ActivityLine,
    AgentActions,
    AgentRefused,
    CaseDetails,
    CaseListing,
)
from .background import Background
from .errors import error_code
from .files import FileFetcher
from .handlers import SlackHandlers
from .intake import MessageRevision, RevisionSink
from .profiles import SlackProfiles
from .settings import SlackSecrets, SlackSettings

__all__ = [
    "ActionResult",
    "ActivityLine",
    "AgentActions",
    "AgentRefused",
    "CaseDetails",
    "CaseListing",
    "MessageRevision",
    "RevisionSink",
    "SlackApp",
    "SlackSettings",
    "make_client",
]

log = get_logger("inbox_daemon.channels.slack")

_AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)


def make_client(settings: SlackSettings, token: str) -> AsyncWebClient:
    """The Web API client for the bot token, talking to ``settings.api_url``."""
    return AsyncWebClient(
        token=token,
        base_url=settings.api_url,
        timeout=settings.api_timeout,
        logger=logging.getLogger("inbox_daemon.slack.web"),
    )


class SlackApp:
    """The Slack workspace as a channel: customer intake, case cards, agent actions."""

    name = "slack"

    def __init__(
        self,
        settings: SlackSettings,
        *,
        actions: AgentActions,
        client: AsyncWebClient | None = None,
        secrets: SlackSecrets | None = None,
        background: Background | None = None,
        profiles: SlackProfiles | None = None,
        on_revision: RevisionSink | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self._secrets = secrets if secrets is not None else settings.secrets()
        self.client = (
            client if client is not None else make_client(settings, self._secrets.bot_token)
        )
        self.background = background if background is not None else Background()
        self.profiles = profiles if profiles is not None else SlackProfiles(self.client)
        self.connect_timeout = connect_timeout
        self.files = FileFetcher(
            self.client, self._secrets.bot_token, max_bytes=settings.max_file_bytes
        )
        self.handlers = SlackHandlers(
            client=self.client,
            actions=actions,
            profiles=self.profiles,
            files=self.files,
            background=self.background,
            intake_channels=settings.intake_channels,
            note_marker=settings.note_marker,
            command=settings.command,
            on_revision=on_revision,
        )
        self.bolt = AsyncApp(
            name="inbox-daemon",
            client=self.client,
            signing_secret=self._secrets.signing_secret or "",
            # Slack is answered when the listener returns: after the sink committed, before
            # the slow work (cards, notices), which runs in self.background.
            process_before_response=True,
            logger=logging.getLogger("inbox_daemon.slack.bolt"),
        )
        self.handlers.register(self.bolt)
        self.bot_user_id: str | None = None
        self.team_id: str | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self, sink: Sink) -> None:
        """Check the token, then listen (HTTP) or connect (Socket Mode)."""
        self.handlers.sink = sink
        await self._identify()
        try:
            if self.settings.mode == "http":
                await self._serve_http()
            else:
                await self._connect_socket()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "slack app started",
            mode=self.settings.mode,
            team=self.team_id,
            bot_user=self.bot_user_id,
            url=self.http_url,
        )

    async def stop(self) -> None:
        """Stop taking requests, let the background work finish (briefly), release it all."""
        if self._socket is not None:
            socket, self._socket = self._socket, None
            await socket.close_async()  # type: ignore[no-untyped-call]
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        await self.background.close()
        await self.files.close()

    async def run(self, sink: Sink) -> None:
        """The channel's task: serve until cancelled, then stop cleanly."""
        await self.start(sink)
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    @property
    def http_url(self) -> str | None:
        """Where the HTTP endpoint listens (with the real port when 0 was configured)."""
        if self._runner is None or not self._runner.addresses:
            return None
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}{self.settings.http_path}"

    async def _identify(self) -> None:
        try:
            resp = await self.client.auth_test()
        except SlackApiError as exc:
            code = error_code(exc)
            if code in _AUTH_ERRORS:
                raise ChannelAuthError(self.name, f"the bot token was refused: {code}") from None
            raise ChannelUnavailable(self.name, f"auth.test failed: {code}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelUnavailable(self.name, f"Slack could not be reached: {exc!r}") from None
        self.bot_user_id = resp.get("user_id")
        self.team_id = resp.get("team_id")
        self.handlers.bot_user_id = self.bot_user_id

    async def _serve_http(self) -> None:
        web_app = web.Application()
        web_app.router.add_post(self.settings.http_path, self._http_request)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.settings.http_host, self.settings.http_port)
        await site.start()

    async def _http_request(self, request: web.Request) -> web.Response:
        bolt_response = await self.bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def _connect_socket(self) -> None:
        token = self._secrets.app_token
        if not token:
            raise ChannelAuthError(self.name, "Socket Mode needs the app-level token")
        try:
            opened = await self.client.apps_connections_open(app_token=token)
        except SlackApiError as exc:
            code = error_code(exc)
            if code in _AUTH_ERRORS:
                raise ChannelAuthError(self.name, f"the app token was refused: {code}") from None
            raise ChannelUnavailable(self.name, f"apps.connections.open: {code}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelUnavailable(self.name, f"Slack could not be reached: {exc!r}") from None
        handler = AsyncSocketModeHandler(
            self.bolt,
            app_token=token,
            web_client=self.client,
            logger=logging.getLogger("inbox_daemon.slack.socket"),
        )
        handler.client.wss_uri = str(opened["url"])
        self._socket = handler
        try:
            connecting = handler.connect_async()  # type: ignore[no-untyped-call]
            await asyncio.wait_for(connecting, self.connect_timeout)
        except TimeoutError:
            raise ChannelUnavailable(self.name, "Socket Mode connection timed out") from None
