"""The Slack sender: replies posted into the customer's thread, Slack's errors sorted for the
outbox, and the whole way from an agent's thread reply to the customer's Slack thread."""

from __future__ import annotations

import pytest
from servers.slack_api import BOT_TOKEN, SlackStandIn
from slack_helpers import AGENTS_CHANNEL, ALICE, CUSTOMER, INTAKE, World, message_event
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from inbox_daemon.channels.slack.sender import SlackSender
from inbox_daemon.errors import PermanentDeliveryError, TransientDeliveryError
from inbox_daemon.messages import Address, ChannelKind, OutboundMessage
from inbox_daemon.outbox import Outbox
from inbox_daemon.store.tables import ActivityRow


def reply(**fields: object) -> OutboundMessage:
    values: dict[str, object] = {
        "channel": ChannelKind.SLACK,
        "mailbox": "T0TEST",
        "message_id": "<abc.cas-000001@support.example.com>",
        "to": (Address(slack_user=CUSTOMER),),
        "subject": "",
        "text": "We are on it.",
        "slack_channel": INTAKE,
        "slack_thread_ts": "1710000000.000001",
        "case_number": "CAS-000001",
    }
    values.update(fields)
    return OutboundMessage(**values)  # type: ignore[arg-type]


def sender_for(api: SlackStandIn) -> SlackSender:
    return SlackSender(AsyncWebClient(token=BOT_TOKEN, base_url=api.api_url, timeout=5))


async def test_posts_into_the_customers_thread(slack_api: SlackStandIn) -> None:
    receipt = await sender_for(slack_api).send(reply())
    [call] = slack_api.calls_to("chat.postMessage")
    assert (call["channel"], call["thread_ts"], call["text"]) == (
        INTAKE,
        "1710000000.000001",
        "We are on it.",
    )
    assert call["metadata"]["event_payload"]["case"] == "CAS-000001"
    assert (INTAKE, receipt.external_id) in slack_api.messages


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        ("ratelimited", 429, TransientDeliveryError),
        ("internal_error", 200, TransientDeliveryError),
        ("oops", 503, TransientDeliveryError),
        ("channel_not_found", 200, PermanentDeliveryError),
        ("not_in_channel", 200, PermanentDeliveryError),
        ("invalid_auth", 200, PermanentDeliveryError),
    ],
)
async def test_errors_are_sorted_for_the_outbox(
    slack_api: SlackStandIn, error: str, status: int, kind: type[Exception]
) -> None:
    slack_api.fail("chat.postMessage", error, status=status, headers={"Retry-After": "3"})
    with pytest.raises(kind) as caught:
        await sender_for(slack_api).send(reply())
    assert (error if status < 500 else "HTTP 503") in str(caught.value)


async def test_unreachable_slack_and_missing_channel() -> None:
    client = AsyncWebClient(
        token=BOT_TOKEN, base_url="http://127.0.0.1:9/api/", timeout=2, retry_handlers=[]
    )
    with pytest.raises(TransientDeliveryError):
        await SlackSender(client).send(reply())
    with pytest.raises(PermanentDeliveryError):
        await SlackSender(client).send(reply(slack_channel=None))


async def test_agent_reply_reaches_the_customer_thread_through_the_outbox(world: World) -> None:
    first = message_event("My parcel is lost")
    await world.event(first)
    await world.settle()
    card = await world.card("CAS-000001")
    await world.event(
        message_event(
            "Found it, arriving today", user=ALICE, channel=AGENTS_CHANNEL, thread_ts=card.ts
        )
    )
    outbox = Outbox(world.db, {"slack": SlackSender(world.app.client)})
    assert await outbox.run_once() == 1
    [call] = world.posts(INTAKE)
    assert (call["thread_ts"], call["text"]) == (first["ts"], "Found it, arriving today")
    async with world.db.transaction() as session:
        stmt = select(ActivityRow).where(ActivityRow.direction == "outgoing")
        [out] = (await session.execute(stmt)).scalars()
    assert (out.kind, out.delivery_state, out.recipients) == ("slack_message", "sent", [CUSTOMER])
    assert (INTAKE, out.slack_ts) in world.api.messages
