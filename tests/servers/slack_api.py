"""A stand-in of Slack for the tests: the Web API, file downloads and Socket Mode, on 127.0.0.1.

:class:`SlackStandIn` is an aiohttp server on a free port of 127.0.0.1. Point
``AsyncWebClient(base_url=stand_in.api_url)`` at it. It records every Web API call (method name,
the parameters from the query string, form or JSON body, and the token) and answers like Slack:
``auth.test``, ``chat.postMessage`` (a new ts each time), ``chat.update``, ``chat.postEphemeral``,
``users.info`` and ``users.lookupByEmail`` (from :attr:`SlackStandIn.users`), ``views.open``,
``conversations.info``, ``conversations.open`` (a direct-message channel ``D…`` per user),
``files.info`` and the file's download URL (which needs the bot token), the upload of a file
(``files.getUploadURLExternal``, a POST of its bytes to the URL given, unsigned as Slack's are,
``files.completeUploadExternal``: :attr:`SlackStandIn.uploads`), ``apps.connections.open`` (the
URL of its own Socket Mode endpoint). :meth:`SlackStandIn.fail`
makes the next call(s) of a method answer an error (``ratelimited`` with HTTP 429, an HTTP 500…)
and :meth:`SlackStandIn.slow` makes a method slow to answer.

Socket Mode: ``/socket`` is a WebSocket endpoint that greets with ``hello``, sends the envelopes
given to :meth:`SlackStandIn.send_envelope` and records the acknowledgements the app sends back
(:meth:`SlackStandIn.wait_ack`). The fixture ``slack_api`` starts one per test.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import WSMsgType, web

HOST = "127.0.0.1"
BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
SIGNING_SECRET = "test-signing-secret"
TEAM = "T0TEST"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"


@dataclass(frozen=True)
class Call:
    """One Web API call as the stand-in received it."""

    method: str
    params: dict[str, Any]
    token: str | None

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    @property
    def blocks_text(self) -> str:
        """Everything in the call's blocks and text, as one string to search."""
        return json.dumps([self.params.get("blocks"), self.params.get("text")])


@dataclass
class _Failure:
    error: str
    status: int
    times: int
    headers: dict[str, str]


@dataclass
class Upload:
    """A file uploaded to Slack: its bytes, and where it was shared (once completed)."""

    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel: str | None = None
    initial_comment: str | None = None


@dataclass
class SlackStandIn:
    """The fake Slack. ``users``: user id -> {"email", "name", "is_bot"}."""

    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    acks: list[dict[str, Any]] = field(default_factory=list)
    #: (channel, ts) -> the message as posted or last updated.
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    missing_channels: set[str] = field(default_factory=set)
    #: file id -> the files uploaded through files.getUploadURLExternal.
    uploads: dict[str, Upload] = field(default_factory=dict)
    port: int = 0
    _files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    _failures: dict[str, list[_Failure]] = field(default_factory=dict)
    _delays: dict[str, float] = field(default_factory=dict)
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _ts: int = 0
    _ack_event: asyncio.Event = field(default_factory=asyncio.Event)
    _connected: asyncio.Event = field(default_factory=asyncio.Event)

    # --- running ---------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/files/{file_id}/{name}", self._download)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    # --- telling it what to do ---------------------------------------------------------------

    def add_user(
        self, user_id: str, *, name: str, email: str | None = None, is_bot: bool = False
    ) -> None:
        self.users[user_id] = {"name": name, "email": email, "is_bot": is_bot}

    def add_file(self, file_id: str, name: str, content: bytes, mimetype: str) -> dict[str, Any]:
        """A file Slack would attach to a message; returns the file object of the event."""
        info = {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "size": len(content),
            "url_private": f"{self.url}/files/{file_id}/{name}",
            "url_private_download": f"{self.url}/files/{file_id}/{name}?download=1",
        }
        self._files[file_id] = (info, content)
        return dict(info)

    def fail(
        self,
        method: str,
        error: str = "ratelimited",
        *,
        status: int = 200,
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` answer ``error`` (with HTTP ``status``)."""
        self._failures.setdefault(method, []).append(
            _Failure(error, status, times, dict(headers or {}))
        )

    def slow(self, method: str, seconds: float) -> None:
        """Make every call of ``method`` take ``seconds`` before it is answered."""
        self._delays[method] = seconds

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    # --- the Web API -------------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.can_read_body:
            if request.content_type == "application/json":
                params.update(await request.json())
            else:
                form = await request.post()
                params.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in ("blocks", "view", "metadata", "attachments"):
            value = params.get(key)
            if isinstance(value, str) and value[:1] in "[{":
                params[key] = json.loads(value)
        return params

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else params.get("token")
        self.calls.append(Call(method, params, token))
        if method in self._delays:
            await asyncio.sleep(self._delays[method])
        failures = self._failures.get(method)
        if failures:
            failure = failures[0]
            failure.times -= 1
            if failure.times <= 0:
                failures.pop(0)
            if failure.status >= 500:
                return web.Response(status=failure.status, text="upstream trouble")
            return web.json_response(
                {"ok": False, "error": failure.error},
                status=failure.status,
                headers=failure.headers,
            )
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        result: dict[str, Any] = handler(params)
        return web.json_response(result)

    def _next_ts(self) -> str:
        self._ts += 1
        return f"1700000000.{self._ts:06d}"

    def _m_auth_test(self, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test.slack.example/",
            "team": "Test",
            "user": "inbox",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
        }

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        if not channel or channel in self.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        ts = self._next_ts()
        message = {
            "type": "message",
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "ts": ts,
            "text": p.get("text", ""),
            "blocks": p.get("blocks"),
            "thread_ts": p.get("thread_ts"),
        }
        self.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        key = (str(p.get("channel")), str(p.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        self.messages[key].update(text=p.get("text", ""), blocks=p.get("blocks"))
        return {"ok": True, "channel": key[0], "ts": key[1], "text": p.get("text", "")}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "message_ts": self._next_ts()}

    def _user(self, user_id: str) -> dict[str, Any]:
        data = self.users[user_id]
        profile = {"display_name": data["name"], "real_name": data["name"]}
        if data.get("email"):
            profile["email"] = data["email"]
        return {
            "id": user_id,
            "team_id": TEAM,
            "name": data["name"].lower(),
            "real_name": data["name"],
            "is_bot": data.get("is_bot", False),
            "deleted": False,
            "profile": profile,
        }

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("user", ""))
        if user not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": self._user(user)}

    def _m_users_lookupByEmail(self, p: dict[str, Any]) -> dict[str, Any]:
        email = str(p.get("email", "")).lower()
        for user_id, data in self.users.items():
            if (data.get("email") or "").lower() == email:
                return {"ok": True, "user": self._user(user_id)}
        return {"ok": False, "error": "users_not_found"}

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("trigger_id"):
            return {"ok": False, "error": "invalid_trigger_id"}
        return {"ok": True, "view": {"id": f"V{uuid.uuid4().hex[:8].upper()}", **p["view"]}}

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel", ""))
        if channel in self.missing_channels:
            return {"ok": False, "error": "channel_not_found"}
        return {"ok": True, "channel": {"id": channel, "name": channel.lower()}}

    def _m_conversations_open(self, p: dict[str, Any]) -> dict[str, Any]:
        users = str(p.get("users", "")).split(",")
        if len(users) != 1 or users[0] not in self.users:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": "D" + users[0].removeprefix("U")}}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        filename, length = str(p.get("filename", "")), str(p.get("length", ""))
        if not filename or not length.isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{uuid.uuid4().hex[:10].upper()}"
        self.uploads[file_id] = Upload(file_id, filename, int(length))
        return {"ok": True, "file_id": file_id, "upload_url": f"{self.url}/upload/{file_id}"}

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        listed = p.get("files")
        files = json.loads(listed) if isinstance(listed, str) else listed
        done = []
        for item in files or []:
            upload = self.uploads.get(str(item.get("id")))
            if upload is None or upload.content is None:
                return {"ok": False, "error": "file_not_found"}
            upload.title = item.get("title") or upload.filename
            upload.channel = p.get("channel_id")
            upload.initial_comment = p.get("initial_comment")
            done.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
        if not done:
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True, "files": done}

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404)
        content = await request.read()
        if len(content) != upload.length:
            return web.Response(status=400, text="length does not match")
        upload.content = content
        return web.Response(text=f"OK - {len(content)}")

    def _m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        found = self._files.get(str(p.get("file", "")))
        if found is None:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": found[0]}

    def _m_apps_connections_open(self, _: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://{HOST}:{self.port}/socket"}

    async def _download(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["file_id"])
        if request.headers.get("Authorization") != f"Bearer {BOT_TOKEN}":
            # Slack answers a login page, not an error, to a request without the token.
            return web.Response(text="<html>sign in</html>", content_type="text/html")
        if found is None:
            return web.Response(status=404)
        info, content = found
        return web.Response(body=content, content_type=info["mimetype"])

    # --- Socket Mode -------------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "stand-in"},
                "connection_info": {"app_id": "A0TEST"},
            }
        )
        self._connected.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if "envelope_id" in data:
                        self.acks.append(data)
                        self._ack_event.set()
        finally:
            self._sockets.remove(ws)
        return ws

    async def wait_connected(self, within: float = 5.0) -> None:
        await asyncio.wait_for(self._connected.wait(), within)

    async def send_envelope(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        accepts_response_payload: bool = False,
        retry_attempt: int = 0,
    ) -> str:
        """Send an envelope (events_api, interactive, slash_commands) on the open socket."""
        if not self._sockets:
            raise RuntimeError("no Socket Mode client is connected")
        envelope_id = str(uuid.uuid4())
        await self._sockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": accepts_response_payload,
                "retry_attempt": retry_attempt,
                "retry_reason": "timeout" if retry_attempt else "",
            }
        )
        return envelope_id

    async def wait_ack(self, envelope_id: str, within: float = 5.0) -> dict[str, Any]:
        """The acknowledgement of an envelope, once the app has sent it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for ack in self.acks:
                if ack.get("envelope_id") == envelope_id:
                    return ack
            self._ack_event.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no acknowledgement of envelope {envelope_id}")
            try:
                await asyncio.wait_for(self._ack_event.wait(), left)
            except TimeoutError:
                continue


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackStandIn]:
    """A running Slack stand-in (no users yet: ``add_user`` them)."""
    stand_in = SlackStandIn()
    await stand_in.start()
    try:
        yield stand_in
    finally:
        await stand_in.stop()
