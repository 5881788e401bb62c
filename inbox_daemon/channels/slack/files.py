"""The files of a Slack message, downloaded with the bot token into attachments.

Slack serves ``url_private`` only with the bot token (``files:read``); without it the answer is
a sign-in page, which is recognised and refused. Files past the size limit, deleted ones and
ones that cannot be fetched are skipped, and the notes returned say which and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from inbox_daemon.logging import get_logger
from inbox_daemon.messages import Attachment

from .errors import error_code

__all__ = ["FileFetcher"]

log = get_logger("inbox_daemon.channels.slack")


class FileFetcher:
    """Downloads a message's files (``url_private``, with the bot token) into memory.

    A file that cannot be had (too big, gone, no access) is skipped; the returned notes say
    which and why, and are added to the message so the agent knows.
    """

    def __init__(
        self,
        client: AsyncWebClient,
        token: str,
        *,
        max_bytes: int = 25 * 1024 * 1024,
        timeout: float = 30.0,
    ) -> None:
        self.client = client
        self._token = token
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._http: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Authorization": f"Bearer {self._token}"},
            )
        return self._http

    async def fetch(
        self, files: Sequence[Mapping[str, Any]]
    ) -> tuple[tuple[Attachment, ...], tuple[str, ...]]:
        attachments: list[Attachment] = []
        notes: list[str] = []
        for info in files:
            name = str(info.get("name") or info.get("title") or info.get("id") or "file")
            try:
                attachments.append(await self._one(info, name))
            except _Skipped as skip:
                notes.append(f"file {name!r} not taken in: {skip}")
                log.warning("slack file skipped", file=info.get("id"), reason=str(skip))
        return tuple(attachments), tuple(notes)

    async def _one(self, info: Mapping[str, Any], name: str) -> Attachment:
        if info.get("mode") in ("tombstone", "hidden_by_limit"):
            raise _Skipped("Slack no longer offers it")
        if info.get("file_access") == "check_file_info" or not info.get("url_private"):
            try:
                resp = await self.client.files_info(file=str(info.get("id", "")))
            except SlackApiError as exc:
                raise _Skipped(f"files.info: {error_code(exc)}") from None
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise _Skipped(f"files.info: {exc!r}") from None
            info = resp.get("file") or {}
        url = info.get("url_private_download") or info.get("url_private")
        if not url:
            raise _Skipped("no download URL")
        size = int(info.get("size") or 0)
        if size > self.max_bytes:
            raise _Skipped(f"{size} bytes is more than the limit of {self.max_bytes}")
        mimetype = str(info.get("mimetype") or "application/octet-stream")
        try:
            async with self._session().get(str(url), allow_redirects=False) as got:
                if got.status != 200:
                    raise _Skipped(f"download answered HTTP {got.status}")
                if got.content_type == "text/html" and mimetype != "text/html":
                    raise _Skipped("download answered a web page (is files:read granted?)")
                data = bytearray()
                async for chunk in got.content.iter_chunked(1 << 16):
                    data += chunk
                    if len(data) > self.max_bytes:
                        raise _Skipped(f"more than the limit of {self.max_bytes} bytes")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Skipped(f"download failed: {exc!r}") from None
        return Attachment(filename=name, content_type=mimetype, size=len(data), content=bytes(data))


class _Skipped(Exception):
    pass
