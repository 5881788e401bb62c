"""The IMAP channel against a real Dovecot: delivery, acknowledgement, checkpoints, IDLE,
reconnects, TLS, authentication (password and XOAUTH2) and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web
from channel_helpers import Sink, simple_parse
from servers.dovecot import DovecotServer, MailAccount

from inbox_daemon.channels.base import Checkpoint, Delivery, IngestResult
from inbox_daemon.channels.email.delivery import parse_lazily
from inbox_daemon.channels.email.imap import Backoff, ImapChannel
from inbox_daemon.channels.email.imap_auth import OAuth2TokenProvider, xoauth2_string
from inbox_daemon.channels.email.imap_session import ImapSession
from inbox_daemon.channels.email.imap_wire import (
    encode_folder,
    parse_fetch,
    parse_internaldate,
    parse_listing,
    uid_set,
)
from inbox_daemon.channels.email.parse_worker import ParseWorker
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.errors import ChannelAuthError, ChannelUnavailable, RejectedMessage
from inbox_daemon.messages import InboundMessage

FAST = Backoff(initial=0.05, maximum=0.2)


def make_mail(subject: str = "Printer on fire", body: str = "Please help.\r\n") -> bytes:
    msgid = f"<{secrets.token_hex(8)}@customer.example>"
    return (
        "From: Customer <customer@example.com>\r\n"
        "To: support@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {msgid}\r\n"
        "Date: Mon, 06 Jan 2025 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}"
    ).encode()


def settings_for(account: MailAccount, **overrides: Any) -> MailboxSettings:
    values: dict[str, Any] = {
        "name": "support",
        "address": "support@example.com",
        "host": account.host,
        "port": account.port,
        "tls": "none",
        "username": account.user,
        "poll_interval": 30,
    }
    values.update(overrides)
    return MailboxSettings(**values)


def channel_for(account: MailAccount, **kwargs: Any) -> ImapChannel:
    settings = kwargs.pop("settings", None) or settings_for(account)
    kwargs.setdefault("password", account.password)
    kwargs.setdefault("parse", simple_parse)
    kwargs.setdefault("backoff", FAST)
    kwargs.setdefault("timeout", 5.0)
    return ImapChannel(settings, **kwargs)


@contextlib.asynccontextmanager
async def running(channel: ImapChannel, sink: Sink) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(channel.run(sink))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], bool], within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def flags(account: MailAccount, uid: int, folder: str = "INBOX") -> set[str]:
    return await asyncio.to_thread(account.flags, uid, folder)


async def until_idling(channel: ImapChannel) -> None:
    """Wait until the channel is connected and (after a short pause) sits in IDLE."""
    await eventually(lambda: channel.connected)
    await asyncio.sleep(0.2)


# -- delivery and acknowledgement ------------------------------------------------------------


async def test_new_mail_is_delivered_and_flagged_seen_only_after_the_sink_returned(
    dovecot: MailAccount,
) -> None:
    raw = make_mail("Printer on fire")
    uid = dovecot.append(raw)
    uidvalidity = dovecot.uidvalidity()
    seen_inside: list[set[str]] = []

    async def look(delivery: Delivery) -> None:
        seen_inside.append(await flags(dovecot, uid))

    sink = Sink(look)
    channel = channel_for(dovecot, parse=parse_lazily)
    async with running(channel, sink):
        [delivery] = await sink.wait_for(1)
        await eventually(lambda: channel.position == Checkpoint(uidvalidity, uid))
        assert "\\Seen" in await flags(dovecot, uid)

    assert "\\Seen" not in seen_inside[0]
    assert delivery.channel == "email"
    assert delivery.mailbox == "support"
    assert delivery.external_id == f"{uidvalidity}:{uid}"
    assert delivery.checkpoint == Checkpoint(uidvalidity, uid)
    assert delivery.error is None
    assert delivery.message is not None  # the real parser (parse_message)
    assert delivery.message.subject == "Printer on fire"
    assert delivery.message.external_id == f"{uidvalidity}:{uid}"
    assert delivery.raw == raw
    assert delivery.message.received_at is not None


async def test_mail_already_seen_by_someone_else_is_still_delivered(dovecot: MailAccount) -> None:
    uid = dovecot.append(make_mail("Read on the phone"), flags="\\Seen")
    sink = Sink()
    async with running(channel_for(dovecot), sink):
        [delivery] = await sink.wait_for(1)
    assert delivery.external_id.endswith(f":{uid}")
    assert delivery.message is not None
    assert delivery.message.subject == "Read on the phone"


async def test_a_checkpoint_delivers_only_later_uids(dovecot: MailAccount) -> None:
    uids = [dovecot.append(make_mail(f"n{i}")) for i in range(3)]
    uidvalidity = dovecot.uidvalidity()
    sink = Sink()
    channel = channel_for(dovecot, checkpoint=Checkpoint(uidvalidity, uids[1]))
    async with running(channel, sink):
        await sink.wait_for(1)
        await eventually(lambda: channel.position == Checkpoint(uidvalidity, uids[2]))
        await asyncio.sleep(0.2)
    assert sink.ids == [f"{uidvalidity}:{uids[2]}"]
    assert "\\Seen" not in await flags(dovecot, uids[0])


async def test_a_changed_uidvalidity_delivers_the_whole_folder_again(dovecot: MailAccount) -> None:
    dovecot.create("Queue")
    for i in range(2):
        dovecot.append(make_mail(f"old {i}"), folder="Queue")
    old = Checkpoint(dovecot.uidvalidity("Queue"), dovecot.uids("Queue")[-1])
    # The folder is recreated: UIDs start again at 1, under a new UIDVALIDITY.
    dovecot.delete("Queue")
    dovecot.create("Queue")
    new_uid = dovecot.append(make_mail("after the rebuild"), folder="Queue")
    new_validity = dovecot.uidvalidity("Queue")
    assert new_validity != old.uidvalidity
    assert new_uid <= old.uid

    sink = Sink()
    channel = channel_for(dovecot, settings=settings_for(dovecot, folder="Queue"), checkpoint=old)
    async with running(channel, sink):
        [delivery] = await sink.wait_for(1)
    assert delivery.external_id == f"{new_validity}:{new_uid}"
    assert delivery.checkpoint == Checkpoint(new_validity, new_uid)


async def test_a_wrong_uidvalidity_in_the_checkpoint_delivers_everything(
    dovecot: MailAccount,
) -> None:
    uids = [dovecot.append(make_mail(f"n{i}")) for i in range(3)]
    uidvalidity = dovecot.uidvalidity()
    sink = Sink()
    channel = channel_for(dovecot, checkpoint=Checkpoint(uidvalidity + 1, uids[-1]))
    async with running(channel, sink):
        await sink.wait_for(3)
    assert sink.ids == [f"{uidvalidity}:{u}" for u in uids]


async def test_a_backlog_is_fetched_in_batches_and_delivered_in_uid_order(
    dovecot: MailAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    with dovecot.connect() as conn:
        for i in range(60):
            conn.append("INBOX", None, None, make_mail(f"bulk {i}"))
    uids = dovecot.uids()
    fetches: list[int] = []
    real_fetch = ImapSession.fetch

    async def counting_fetch(self: ImapSession, batch: Any) -> Any:
        batch = list(batch)
        fetches.append(len(batch))
        return await real_fetch(self, batch)

    monkeypatch.setattr(ImapSession, "fetch", counting_fetch)
    sink = Sink()
    async with running(channel_for(dovecot), sink):
        await sink.wait_for(60)
    assert [int(i.split(":")[1]) for i in sink.ids] == uids
    assert [d.message.subject for d in sink.deliveries if d.message] == [
        f"bulk {i}" for i in range(60)
    ]
    assert fetches == [10, 50]  # a small first group starts the pipeline sooner


async def test_a_rejected_message_is_delivered_with_its_reason_and_acknowledged(
    dovecot: MailAccount,
) -> None:
    uid = dovecot.append(make_mail("garbage"))

    def rejecting(raw: bytes, **_: Any) -> InboundMessage:
        raise RejectedMessage("not a mail at all")

    sink = Sink()
    channel = channel_for(dovecot, parse=rejecting)
    async with running(channel, sink):
        [delivery] = await sink.wait_for(1)
        await eventually(lambda: channel.position is not None and channel.position.uid == uid)
    assert delivery.message is None
    assert delivery.error == "not a mail at all"
    assert delivery.raw.startswith(b"From: Customer")
    assert "\\Seen" in await flags(dovecot, uid)


@pytest.mark.parametrize(
    "hide", [(), ("MOVE",), ("MOVE", "UIDPLUS")], ids=["move", "uidplus", "expunge"]
)
async def test_processed_mail_is_moved_to_the_processed_folder(
    dovecot: MailAccount, monkeypatch: pytest.MonkeyPatch, hide: tuple[str, ...]
) -> None:
    real = ImapSession.has_capability
    monkeypatch.setattr(
        ImapSession, "has_capability", lambda self, name: name not in hide and real(self, name)
    )
    folder = "Erledigt – done"  # a space and a non-ASCII character
    wire = encode_folder(folder).strip('"')
    assert wire == "Erledigt &IBM- done"
    uids = [dovecot.append(make_mail(f"m{i}")) for i in range(2)]
    listings: list[int] = []
    real_list = ImapSession.list_after

    async def counting_list(self: ImapSession, uid: int) -> list[tuple[int, int]]:
        listings.append(uid)
        return await real_list(self, uid)

    monkeypatch.setattr(ImapSession, "list_after", counting_list)
    sink = Sink()
    channel = channel_for(dovecot, settings=settings_for(dovecot, processed_folder=folder))
    async with running(channel, sink):
        await sink.wait_for(2)
        await eventually(lambda: len(dovecot.uids(wire)) == 2)
        settled = len(listings)
        await asyncio.sleep(0.3)
        assert len(listings) <= settled + 1  # our own moves do not keep waking the channel
    assert dovecot.uids() == []
    for uid in dovecot.uids(wire):
        assert "\\Seen" in dovecot.flags(uid, wire)
        assert "\\Deleted" not in dovecot.flags(uid, wire)
    assert [d.message.subject for d in sink.deliveries if d.message] == ["m0", "m1"]
    assert len(uids) == 2


async def test_run_once_delivers_the_backlog_and_returns(dovecot: MailAccount) -> None:
    uids = [dovecot.append(make_mail(f"n{i}")) for i in range(3)]
    sink = Sink()
    channel = channel_for(dovecot)
    assert await asyncio.wait_for(channel.run_once(sink), 5) == 3
    assert [int(i.split(":")[1]) for i in sink.ids] == uids
    assert all("\\Seen" in dovecot.flags(u) for u in uids)
    assert not channel.connected
    assert await asyncio.wait_for(channel.run_once(sink), 5) == 0  # resumes after the last


class BatchSink(Sink):
    """A sink that takes batches: records each batch's external ids."""

    def __init__(self, hook: Callable[[Delivery], Awaitable[None]] | None = None) -> None:
        super().__init__(hook)
        self.batches: list[list[str]] = []

    async def batch(self, deliveries: Sequence[Delivery]) -> list[IngestResult]:
        self.batches.append([d.external_id for d in deliveries])
        return [await self(d) for d in deliveries]


async def test_a_batch_sink_takes_a_fetched_batch_at_once(dovecot: MailAccount) -> None:
    uids = [dovecot.append(make_mail(f"n{i}")) for i in range(5)]
    sink = BatchSink()
    channel = channel_for(dovecot, settings=settings_for(dovecot, batch_messages=3))
    assert await asyncio.wait_for(channel.run_once(sink), 5) == 5
    v = dovecot.uidvalidity()
    assert sink.batches == [[f"{v}:{u}" for u in uids[:3]], [f"{v}:{u}" for u in uids[3:]]]
    assert all("\\Seen" in dovecot.flags(u) for u in uids)
    assert channel.position == Checkpoint(v, uids[-1])
    assert channel.position is not None
    assert channel.position.group_start == uids[3]
    # Each delivery carries the checkpoint of its batch, for the sink to commit with it.
    assert [d.checkpoint.group_start for d in sink.deliveries if d.checkpoint] == [uids[0]] * 3 + [
        uids[3]
    ] * 2


async def test_batches_parsed_in_a_worker_arrive_in_order_while_the_sink_works(
    dovecot: MailAccount,
) -> None:
    uids = [dovecot.append(make_mail(f"n{i}")) for i in range(5)]
    worker = ParseWorker()
    order: list[str] = []

    async def slow(delivery: Delivery) -> None:
        order.append(delivery.external_id)
        await asyncio.sleep(0.05)  # the next batch is fetched and parsed meanwhile

    sink = BatchSink(slow)
    channel = channel_for(
        dovecot, settings=settings_for(dovecot, batch_messages=2), parse=parse_lazily,
        parse_worker=worker,
    )  # fmt: skip
    try:
        assert await asyncio.wait_for(channel.run_once(sink), 10) == 5
    finally:
        worker.close()
    v = dovecot.uidvalidity()
    assert order == [f"{v}:{u}" for u in uids]
    assert sink.batches == [order[0:2], order[2:4], order[4:]]
    assert [d.message.subject for d in sink.deliveries if d.message] == [f"n{i}" for i in range(5)]
    assert all("\\Seen" in dovecot.flags(u) for u in uids)


async def test_a_batch_whose_acknowledgement_is_lost_is_offered_again_whole(
    dovecot: MailAccount,
) -> None:
    uids = [dovecot.append(make_mail(f"n{i}")) for i in range(3)]

    async def drop_once(delivery: Delivery) -> None:
        if len(sink.deliveries) == 3:
            assert await asyncio.to_thread(dovecot.kick)  # the batch's acknowledgement fails

    sink = BatchSink(drop_once)
    channel = channel_for(dovecot)
    async with running(channel, sink):
        await sink.wait_for(6)
        await eventually(lambda: channel.position is not None and channel.position.uid == uids[2])
        await asyncio.sleep(0.2)
    v = dovecot.uidvalidity()
    assert sink.batches == [[f"{v}:{u}" for u in uids]] * 2
    assert all("\\Seen" in dovecot.flags(u) for u in uids)


async def test_resuming_acknowledges_the_checkpoints_batch_and_nothing_before_it(
    dovecot: MailAccount,
) -> None:
    uids = [dovecot.append(make_mail(f"n{i}")) for i in range(4)]
    v = dovecot.uidvalidity()
    # A crash after the commit of uids[1:3], before their acknowledgement.
    sink = BatchSink()
    channel = channel_for(dovecot, checkpoint=Checkpoint(v, uids[2], group_start=uids[1]))
    assert await asyncio.wait_for(channel.run_once(sink), 5) == 1
    assert sink.ids == [f"{v}:{uids[3]}"]
    assert "\\Seen" not in dovecot.flags(uids[0])  # someone marked it unread: left so
    assert all("\\Seen" in dovecot.flags(u) for u in uids[1:])


# -- waiting for mail ------------------------------------------------------------------------


async def test_idle_delivers_new_mail_within_two_seconds(dovecot: MailAccount) -> None:
    sink = Sink()
    channel = channel_for(dovecot, settings=settings_for(dovecot, poll_interval=300))
    async with running(channel, sink):
        await until_idling(channel)
        for n in (1, 2):
            started = time.monotonic()
            await asyncio.to_thread(dovecot.append, make_mail(f"while idling {n}"))
            await sink.wait_for(n, within=2.0)
            assert time.monotonic() - started < 2.0
    assert [d.message.subject for d in sink.deliveries if d.message] == [
        "while idling 1",
        "while idling 2",
    ]


async def test_idle_is_renewed(dovecot: MailAccount, monkeypatch: pytest.MonkeyPatch) -> None:
    idles: list[bool] = []
    real_idle = ImapSession.idle

    async def counting_idle(self: ImapSession, max_wait: float) -> bool:
        woke = await real_idle(self, max_wait)
        idles.append(woke)
        return woke

    monkeypatch.setattr(ImapSession, "idle", counting_idle)
    sink = Sink()
    channel = channel_for(dovecot, idle_renew=0.2)
    async with running(channel, sink):
        await until_idling(channel)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(dovecot.append, make_mail("after renewals"))
        await sink.wait_for(1, within=2.0)
    assert idles[:2] == [False, False]  # ended by the renewal timer, not by mail


async def test_without_idle_the_folder_is_polled(dovecot: MailAccount) -> None:
    sink = Sink()
    channel = channel_for(dovecot, settings=settings_for(dovecot, idle=False, poll_interval=0.2))
    async with running(channel, sink):
        await eventually(lambda: channel.connected)
        await asyncio.to_thread(dovecot.append, make_mail("polled"))
        await sink.wait_for(1, within=2.0)


# -- failures --------------------------------------------------------------------------------


async def test_a_failing_sink_leaves_the_message_unseen_and_it_comes_again(
    dovecot: MailAccount,
) -> None:
    uid = dovecot.append(make_mail("fragile"))

    async def explode(delivery: Delivery) -> None:
        raise RuntimeError("database is down")

    channel = channel_for(dovecot)
    failing = Sink(explode)
    with pytest.raises(RuntimeError, match="database is down"):
        await asyncio.wait_for(channel.run(failing), 5)
    assert len(failing.deliveries) == 1
    assert "\\Seen" not in await flags(dovecot, uid)

    # The supervisor runs the channel again: the same message is offered again.
    sink = Sink()
    async with running(channel, sink):
        [delivery] = await sink.wait_for(1)
        await eventually(lambda: channel.position is not None and channel.position.uid == uid)
    assert delivery.external_id == failing.deliveries[0].external_id
    assert "\\Seen" in await flags(dovecot, uid)


async def test_a_connection_dropped_by_the_server_is_survived(dovecot: MailAccount) -> None:
    first = dovecot.append(make_mail("before"))
    sink = Sink()
    channel = channel_for(dovecot)
    async with running(channel, sink):
        await sink.wait_for(1)
        await until_idling(channel)
        assert await asyncio.to_thread(dovecot.kick)
        await eventually(lambda: not channel.connected)
        second = await asyncio.to_thread(dovecot.append, make_mail("after"))
        await sink.wait_for(2)
        await eventually(lambda: channel.position is not None and channel.position.uid == second)
        await asyncio.sleep(0.2)
    assert [int(i.split(":")[1]) for i in sink.ids] == [first, second]


async def test_a_connection_lost_in_flight_redelivers_only_that_message(
    dovecot: MailAccount,
) -> None:
    first = dovecot.append(make_mail("in flight"))
    second = dovecot.append(make_mail("next"))

    async def drop_once(delivery: Delivery) -> None:
        if len(sink.deliveries) == 1:
            assert await asyncio.to_thread(dovecot.kick)  # the ack after this call fails

    sink = Sink(drop_once)
    channel = channel_for(dovecot)
    async with running(channel, sink):
        await sink.wait_for(3)
        await eventually(lambda: channel.position is not None and channel.position.uid == second)
        await asyncio.sleep(0.2)
    assert [int(i.split(":")[1]) for i in sink.ids] == [first, first, second]
    assert "\\Seen" in await flags(dovecot, first)
    assert "\\Seen" in await flags(dovecot, second)


async def test_a_server_restart_is_survived(
    dovecot: MailAccount, dovecot_server: DovecotServer
) -> None:
    first = dovecot.append(make_mail("before the restart"))
    sink = Sink()
    channel = channel_for(dovecot)
    async with running(channel, sink):
        await sink.wait_for(1)
        await until_idling(channel)
        await asyncio.to_thread(dovecot_server.restart)
        second = await asyncio.to_thread(dovecot.append, make_mail("after the restart"))
        await sink.wait_for(2, within=5)
        await asyncio.sleep(0.2)
    assert [int(i.split(":")[1]) for i in sink.ids] == [first, second]


async def test_a_refused_connection_is_retried(dovecot: MailAccount) -> None:
    from servers.dovecot import free_port

    channel = channel_for(dovecot, settings=settings_for(dovecot, port=free_port()))
    task = asyncio.create_task(channel.run(Sink()))
    await asyncio.sleep(0.5)
    assert not task.done()  # still retrying, not failed
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_wrong_password_is_a_permanent_auth_error(dovecot: MailAccount) -> None:
    channel = channel_for(dovecot, password="not-the-password")
    with pytest.raises(ChannelAuthError, match="refused") as info:
        await asyncio.wait_for(channel.run(Sink()), 5)
    assert info.value.channel == "imap:support"
    assert "not-the-password" not in str(info.value)


async def test_shutdown_ends_idle_and_logs_out(dovecot: MailAccount) -> None:
    sink = Sink()
    channel = channel_for(dovecot)
    task = asyncio.create_task(channel.run(sink))
    await until_idling(channel)
    started = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1.0

    def logged_out() -> bool:
        text = dovecot.server.log_path.read_text()
        return bool(re.search(rf"imap\({dovecot.user}\).*Disconnected: Logged out", text))

    await eventually(logged_out)


# -- TLS -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["ssl", "starttls"])
async def test_tls_verified_against_the_ca(dovecot: MailAccount, mode: str) -> None:
    dovecot.append(make_mail("over TLS"))
    port = dovecot.tls_port if mode == "ssl" else dovecot.port
    settings = settings_for(dovecot, tls=mode, port=port, ca_file=dovecot.ca_cert)
    sink = Sink()
    async with running(channel_for(dovecot, settings=settings), sink):
        [delivery] = await sink.wait_for(1)
    assert delivery.message is not None
    assert delivery.message.subject == "over TLS"


@pytest.mark.parametrize("mode", ["ssl", "starttls"])
async def test_tls_without_the_ca_fails_verification(dovecot: MailAccount, mode: str) -> None:
    port = dovecot.tls_port if mode == "ssl" else dovecot.port
    settings = settings_for(dovecot, tls=mode, port=port)
    with pytest.raises(ChannelAuthError, match=r"certificate .* not trusted") as info:
        await asyncio.wait_for(channel_for(dovecot, settings=settings).run(Sink()), 5)
    assert "ca_file" in str(info.value)


async def test_tls_without_verification_connects(dovecot: MailAccount) -> None:
    dovecot.append(make_mail("unverified"))
    settings = settings_for(dovecot, tls="ssl", port=dovecot.tls_port, verify=False)
    sink = Sink()
    async with running(channel_for(dovecot, settings=settings), sink):
        await sink.wait_for(1)


def test_a_missing_ca_file_is_a_config_error(dovecot: MailAccount, tmp_path: Path) -> None:
    from inbox_daemon.errors import ConfigError

    settings = settings_for(dovecot, tls="ssl", ca_file=tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="ca_file"):
        channel_for(dovecot, settings=settings)


# -- XOAUTH2 ---------------------------------------------------------------------------------


class TokenEndpoint:
    """A stand-in OAuth2 token endpoint (aiohttp on 127.0.0.1)."""

    def __init__(self, account: MailAccount | None, *, status: int = 200) -> None:
        self.account = account
        self.status = status
        self.requests: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.requests.append({k: str(v) for k, v in form.items()})
        if self.status != 200:
            return web.json_response(
                {"error": "invalid_grant", "error_description": "AADSTS70008: expired"},
                status=self.status,
            )
        token = f"access-{secrets.token_hex(6)}"
        if self.account is not None:
            self.account.register_token(token)
        return web.json_response(
            {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
        )

    async def __aenter__(self) -> TokenEndpoint:
        app = web.Application()
        app.router.add_post("/token", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/token"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


def provider_for(endpoint: TokenEndpoint, **kwargs: Any) -> OAuth2TokenProvider:
    return OAuth2TokenProvider(
        channel="imap:support",
        token_endpoint=endpoint.url,
        client_id="inbox-daemon",
        client_secret="s3cret",
        refresh_token="refresh-1",
        scope="https://outlook.office.com/IMAP.AccessAsUser.All offline_access",
        **kwargs,
    )


def test_xoauth2_string_format() -> None:
    import base64

    encoded = xoauth2_string("support@example.com", "tok")
    assert base64.b64decode(encoded) == b"user=support@example.com\x01auth=Bearer tok\x01\x01"


async def test_xoauth2_login_against_dovecot(dovecot: MailAccount) -> None:
    dovecot.append(make_mail("via oauth"))
    async with TokenEndpoint(dovecot) as endpoint:
        provider = provider_for(endpoint)
        channel = channel_for(dovecot, password=None, token_provider=provider)
        sink = Sink()
        async with running(channel, sink):
            [delivery] = await sink.wait_for(1)
    assert delivery.message is not None
    assert delivery.message.subject == "via oauth"
    [request] = endpoint.requests
    assert request["grant_type"] == "refresh_token"
    assert request["refresh_token"] == "refresh-1"
    assert request["client_id"] == "inbox-daemon"
    assert request["client_secret"] == "s3cret"
    assert request["scope"].startswith("https://outlook.office.com/")


async def test_xoauth2_token_refused_by_the_server_is_an_auth_error(dovecot: MailAccount) -> None:
    async with TokenEndpoint(None) as endpoint:  # tokens unknown to Dovecot
        channel = channel_for(dovecot, password=None, token_provider=provider_for(endpoint))
        with pytest.raises(ChannelAuthError, match="refused"):
            await asyncio.wait_for(channel.run(Sink()), 5)
    assert len(endpoint.requests) == 2  # the cached token, then one fresh token


async def test_token_provider_caches_and_refreshes_before_expiry() -> None:
    now = [1000.0]
    async with TokenEndpoint(None) as endpoint:
        provider = provider_for(endpoint, clock=lambda: now[0])
        first = await provider.access_token()
        assert await provider.access_token() == first
        now[0] += 3600 - 60  # inside the refresh margin
        second = await provider.access_token()
        assert second != first
        assert await provider.access_token(refresh=True) not in (first, second)
    assert len(endpoint.requests) == 3


async def test_token_provider_warns_when_the_refresh_token_expires_soon() -> None:
    soon = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    async with TokenEndpoint(None) as endpoint:
        with structlog.testing.capture_logs() as logs:
            provider = provider_for(endpoint, refresh_token_expires=soon)
            await provider.access_token()
            await provider.access_token(refresh=True)
    warnings = [e for e in logs if e["event"] == "oauth2.refresh_token_expiring"]
    assert len(warnings) == 2
    assert provider.refresh_token_days_left is not None
    assert 3.9 < provider.refresh_token_days_left < 5.1
    assert all("refresh-1" not in str(e) and "access-" not in str(e) for e in logs)

    later = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    async with TokenEndpoint(None) as endpoint:
        with structlog.testing.capture_logs() as logs:
            await provider_for(endpoint, refresh_token_expires=later).access_token()
    assert not [e for e in logs if e["event"] == "oauth2.refresh_token_expiring"]


async def test_token_provider_errors() -> None:
    async with TokenEndpoint(None, status=400) as endpoint:
        with pytest.raises(ChannelAuthError, match="invalid_grant: AADSTS70008"):
            await provider_for(endpoint).access_token()
    async with TokenEndpoint(None, status=503) as endpoint:
        with pytest.raises(ChannelUnavailable):
            await provider_for(endpoint).access_token()
    from servers.dovecot import free_port

    provider = OAuth2TokenProvider(
        channel="imap:support",
        token_endpoint=f"http://127.0.0.1:{free_port()}/token",
        client_id="x",
        refresh_token="r",
    )
    with pytest.raises(ChannelUnavailable, match="unreachable"):
        await provider.access_token()


# -- small pieces ----------------------------------------------------------------------------


def test_folder_names_are_encoded_for_the_wire() -> None:
    assert encode_folder("INBOX") == "INBOX"
    assert encode_folder("Processed Mail") == '"Processed Mail"'
    assert encode_folder("Entwürfe") == "Entw&APw-rfe"
    assert encode_folder("A&B") == "A&-B"
    assert encode_folder("~peter/mail/台北/日本語") == "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_folder('say "hi"') == '"say \\"hi\\""'


def test_uid_sets_are_compact() -> None:
    assert uid_set([5, 1, 2, 3, 9, 10]) == "1:3,5,9:10"
    assert uid_set([7]) == "7"


def test_fetch_responses_are_read_whatever_the_order_of_items() -> None:
    lines = [
        b"3 FETCH (FLAGS (\\Seen))",  # a flag change from another session: no body
        b'4 FETCH (UID 9 INTERNALDATE "06-Jan-2025 10:00:00 +0100" BODY[] {5}',
        bytearray(b"one\r\n"),
        b")",
        b"5 FETCH (BODY[] {5}",
        bytearray(b"two\r\n"),
        b' UID 12 INTERNALDATE " 6-Feb-2025 23:59:59 -0030")',
        b"Fetch completed (0.001 + 0.000 secs).",
    ]
    first, second = parse_fetch(lines)
    assert (first.uid, first.raw) == (9, b"one\r\n")
    assert first.internal_date == datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
    assert (second.uid, second.raw) == (12, b"two\r\n")
    assert second.internal_date == datetime(2025, 2, 7, 0, 29, 59, tzinfo=UTC)
    assert parse_internaldate(b"31-Foo-2025 00:00:00 +0000") is None


def test_listings_ignore_the_last_message_below_the_start() -> None:
    lines = [b"1 FETCH (UID 4 RFC822.SIZE 100)", b"2 FETCH (RFC822.SIZE 7 UID 6)", b"done"]
    assert parse_listing(lines, after=4) == [(6, 7)]
    assert parse_listing([b"1 FETCH (UID 4 RFC822.SIZE 100)"], after=4) == []


async def test_a_large_backlog_is_listed_in_full(
    dovecot: MailAccount, session: ImapSession
) -> None:
    """2,500 waiting mails: one listing response that large once exhausted the recursion limit."""
    with dovecot.connect() as conn:
        for n in range(2500):
            raw = f"From: c{n}@example.com\r\nSubject: {n}\r\nMessage-ID: <big{n}@x>\r\n\r\nx\r\n"
            assert conn.append("INBOX", "", None, raw.encode())[0] == "OK"
    await session.noop()
    listing = await session.list_after(0)
    assert [uid for uid, _size in listing] == list(range(1, 2501))
    assert all(size > 0 for _uid, size in listing)
    assert [uid for uid, _ in await session.list_after(2400)] == list(range(2401, 2501))
    assert await session.list_after(2500) == []


async def test_a_restart_acknowledges_the_message_committed_before_a_crash(
    dovecot: MailAccount,
) -> None:
    """Killed between the commit and \\Seen: the next start flags the checkpoint's message."""
    uid = dovecot.append(b"From: a@example.com\r\nSubject: one\r\nMessage-ID: <c1@x>\r\n\r\nx\r\n")
    assert "\\Seen" not in dovecot.flags(uid)
    channel = channel_for(dovecot, checkpoint=Checkpoint(dovecot.uidvalidity(), uid))
    sink = Sink()
    assert await channel.run_once(sink) == 0  # nothing after the checkpoint to deliver
    assert sink.deliveries == []
    assert "\\Seen" in dovecot.flags(uid)


async def test_each_listing_is_timed_for_the_metrics(dovecot: MailAccount, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from inbox_daemon.metrics import Metrics
    from inbox_daemon.store.db import Database

    dovecot.append(b"From: a@example.com\r\nSubject: one\r\nMessage-ID: <p1@x>\r\n\r\nx\r\n")
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    metrics = Metrics(db)
    timings: list[float] = []
    channel = channel_for(dovecot)
    channel.on_poll += [timings.append, metrics.poller("support")]
    assert channel.last_poll is None
    assert await channel.run_once(Sink()) == 1
    assert len(timings) == 1
    assert 0 <= timings[0] < 5
    assert channel.last_poll is not None
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    counts = [
        s.value
        for s in families["inbox_imap_poll_latency_seconds"].samples
        if s.name.endswith("_count") and s.labels == {"mailbox": "support"}
    ]
    assert counts == [1.0]
    await db.dispose()
