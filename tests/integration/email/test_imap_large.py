"""Large mail over IMAP against a real Dovecot: ImapSession.fetch_to_file fetches a message in
partial fetches straight into a file, byte for byte, with a size check; the channel takes a mail
above its spool threshold that way and parses it from the file."""

from __future__ import annotations

import base64
import hashlib
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from servers.dovecot import MailAccount

from inbox_daemon.channels.base import Delivery, IngestResult
from inbox_daemon.channels.email.imap import ImapChannel
from inbox_daemon.channels.email.imap_session import ImapSession
from inbox_daemon.channels.email.settings import MailboxSettings
from inbox_daemon.errors import ChannelUnavailable

MiB = 1024 * 1024


def large_mail(size: int, seed: int = 10, pad: int = 0) -> bytes:
    encoded = base64.b64encode(random.Random(seed).randbytes(size)).decode("ascii")
    lines = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return (
        "From: Big Sender <big@customer.example>\r\nTo: support@example.com\r\n"
        "Subject: Large\r\nMessage-ID: <large@customer.example>\r\n"
        f"Date: Mon, 06 Jan 2025 10:00:00 +0000\r\nX-Pad: {'x' * pad}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: application/zip; name="big.zip"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{lines}\r\n"
    ).encode("ascii")


async def test_a_10_mb_message_is_fetched_in_chunks_byte_for_byte(
    dovecot: MailAccount, session: ImapSession, tmp_path: Path
) -> None:
    raw = large_mail(10 * MiB)
    uid = dovecot.append(raw)
    await session.noop()
    [(listed, size)] = await session.list_after(0)
    assert (listed, size) == (uid, len(raw))
    dest = tmp_path / "message.eml"
    tracemalloc.start()
    try:
        internal = await session.fetch_to_file(uid, dest, size=size, chunk=MiB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dest.read_bytes() == raw
    assert internal is not None
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert "\\Seen" not in dovecot.flags(uid)  # BODY.PEEK


@pytest.mark.parametrize("chunk", [MiB, 7_000_000, 64 * MiB])
async def test_chunks_of_any_size_give_the_same_bytes(
    dovecot: MailAccount, session: ImapSession, tmp_path: Path, chunk: int
) -> None:
    raw = large_mail(3 * MiB, seed=11)
    uid = dovecot.append(raw)
    await session.noop()
    dest = tmp_path / "message.eml"
    await session.fetch_to_file(uid, dest, size=len(raw), chunk=chunk)
    assert dest.read_bytes() == raw


async def test_a_message_of_exactly_n_chunks(
    dovecot: MailAccount, session: ImapSession, tmp_path: Path
) -> None:
    raw = large_mail(100_000, seed=12)
    raw = large_mail(100_000, seed=12, pad=-len(raw) % 4)
    assert len(raw) % 4 == 0
    uid = dovecot.append(raw)
    await session.noop()
    dest = tmp_path / "message.eml"
    await session.fetch_to_file(uid, dest, size=len(raw), chunk=len(raw) // 4)
    assert dest.read_bytes() == raw
    await session.fetch_to_file(uid, dest, size=len(raw), chunk=len(raw))
    assert dest.read_bytes() == raw


@pytest.mark.parametrize("wrong", [-1, +1, +5 * MiB])
async def test_a_size_that_does_not_match_is_an_error(
    dovecot: MailAccount, session: ImapSession, tmp_path: Path, wrong: int
) -> None:
    raw = large_mail(2 * MiB, seed=13)
    uid = dovecot.append(raw)
    await session.noop()
    with pytest.raises(ChannelUnavailable, match=rf"UID {uid}: fetched \d+ bytes"):
        await session.fetch_to_file(uid, tmp_path / "m.eml", size=len(raw) + wrong, chunk=MiB)


async def test_a_message_that_is_gone_is_an_error(session: ImapSession, tmp_path: Path) -> None:
    with pytest.raises(ChannelUnavailable, match="gone"):
        await session.fetch_to_file(4242, tmp_path / "m.eml", size=1000)


# -- the channel --------------------------------------------------------------------------------


def multipart_mail(attachment: bytes, subject: str) -> bytes:
    encoded = base64.b64encode(attachment).decode("ascii")
    lines = "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    return (
        "From: Big Sender <big@customer.example>\r\nTo: support@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{subject}@customer.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b1\r\n\r\n"
        "--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe logs, attached.\r\n"
        '--b1\r\nContent-Type: application/zip; name="logs.zip"\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{lines}\r\n--b1--\r\n"
    ).encode("ascii")


class Seen:
    """A sink that reads what it is given while it is there (spool files go afterwards)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, bool, list[str], str]] = []

    async def __call__(self, delivery: Delivery) -> IngestResult:
        msg = delivery.message
        assert msg is not None, delivery.error
        digests = [
            hashlib.sha256(a.path.read_bytes() if a.path else a.content or b"").hexdigest()
            for a in msg.attachments
        ]
        self.got.append((msg.subject, delivery.raw_path is not None, digests, msg.text.strip()))
        return IngestResult("created")


def imap_channel(dovecot: MailAccount, spool: Path, threshold: int) -> ImapChannel:
    settings = MailboxSettings(
        name="support", address="support@example.com", host=dovecot.host,
        port=dovecot.port, tls="none", username=dovecot.user,
    )  # fmt: skip
    return ImapChannel(
        settings, password=dovecot.password, spool_threshold=threshold, spool_parent=spool
    )


async def test_the_channel_takes_a_large_mail_through_a_file(
    dovecot: MailAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big, small = random.Random(1).randbytes(600_000), random.Random(2).randbytes(1000)
    dovecot.append(multipart_mail(small, "small-before"))
    dovecot.append(multipart_mail(big, "big"))
    dovecot.append(multipart_mail(small, "small-after"))
    partial: list[int] = []
    real = ImapSession.fetch_to_file

    async def counting(self: ImapSession, uid: int, dest: Path, **kwargs: Any) -> Any:
        partial.append(uid)
        return await real(self, uid, dest, **kwargs, chunk=256 * 1024)

    monkeypatch.setattr(ImapSession, "fetch_to_file", counting)
    spool = tmp_path / "spool"
    spool.mkdir()
    sink = Seen()
    assert await imap_channel(dovecot, spool, threshold=100_000).run_once(sink) == 3
    sha = hashlib.sha256
    assert sink.got == [
        ("small-before", False, [sha(small).hexdigest()], "The logs, attached."),
        ("big", True, [sha(big).hexdigest()], "The logs, attached."),
        ("small-after", False, [sha(small).hexdigest()], "The logs, attached."),
    ]
    assert partial == [dovecot.uids()[1]]
    assert list(spool.iterdir()) == []  # the spool directory went with the delivery
    assert all("\\Seen" in dovecot.flags(u) for u in dovecot.uids())


async def test_a_failed_partial_fetch_falls_back_to_a_whole_fetch(
    dovecot: MailAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = random.Random(3).randbytes(300_000)
    dovecot.append(multipart_mail(big, "big"))

    async def wrong_size(self: ImapSession, uid: int, dest: Path, **kwargs: Any) -> Any:
        raise ChannelUnavailable("test", f"UID {uid}: fetched 1 bytes where the server said 2")

    monkeypatch.setattr(ImapSession, "fetch_to_file", wrong_size)
    sink = Seen()
    assert await imap_channel(dovecot, tmp_path, threshold=100_000).run_once(sink) == 1
    assert sink.got == [("big", False, [hashlib.sha256(big).hexdigest()], "The logs, attached.")]
