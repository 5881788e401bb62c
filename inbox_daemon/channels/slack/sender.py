"""Outgoing Slack messages: an agent's reply posted into the customer's thread.

:class:`SlackSender` is the outbox's sender for channel ``slack``: ``chat.postMessage`` into
``message.slack_channel`` with ``thread_ts = message.slack_thread_ts``; the receipt's id is the
new message's ts. Slack's answers are
sorted for the outbox: rate limits, server errors and network trouble are transient (retry
later), everything else (no such channel, not invited, bad token, …) is permanent.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from inbox_daemon.errors import DeliveryError, PermanentDeliveryError, TransientDeliveryError
from inbox_daemon.messages import DeliveryReceipt, OutboundMessage

from .errors import error_code

__all__ = ["TRANSIENT_ERRORS", "SlackSender", "delivery_error"]

CHANNEL = "slack"
#: Slack error codes worth retrying; any other error code is permanent.
TRANSIENT_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)
MAX_TEXT = 39_000  # chat.postMessage truncates at 40,000 characters


def delivery_error(exc: SlackApiError) -> DeliveryError:
    """A Slack API error as the outbox's transient or permanent delivery error."""
    status = exc.response.status_code
    what = code = error_code(exc)
    if status == 429 or status >= 500 or code in TRANSIENT_ERRORS:
        retry_after = exc.response.headers.get("Retry-After") if exc.response.headers else None
        suffix = f" (retry after {retry_after}s)" if retry_after else ""
        return TransientDeliveryError(CHANNEL, f"Slack answered {what}{suffix}")
    return PermanentDeliveryError(CHANNEL, f"Slack refused the message: {what}")


class SlackSender:
    """``async send(OutboundMessage) -> DeliveryReceipt`` through the Slack Web API."""

    name = CHANNEL

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if not message.slack_channel:
            raise PermanentDeliveryError(
                CHANNEL, f"message {message.message_id} names no Slack channel to post in"
            )
        text = message.text if len(message.text) <= MAX_TEXT else message.text[:MAX_TEXT] + "…"
        if message.attachments:
            names = ", ".join(a.filename for a in message.attachments)
            text = f"{text}\n\n(files not sent through Slack: {names})"
        try:
            resp = await self.client.chat_postMessage(
                channel=message.slack_channel,
                thread_ts=message.slack_thread_ts,
                text=text or " ",
                unfurl_links=False,
                unfurl_media=False,
                metadata={
                    "event_type": "inbox_daemon_reply",
                    "event_payload": {
                        "message_id": message.message_id,
                        "case": message.case_number or "",
                    },
                },
            )
        except SlackApiError as exc:
            raise delivery_error(exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise TransientDeliveryError(CHANNEL, f"Slack could not be reached: {exc!r}") from None
        # The outbox records the receipt's id as the activity's slack_ts.
        return DeliveryReceipt(external_id=str(resp["ts"]), sent_at=datetime.now(UTC))
