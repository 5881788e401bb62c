"""What the mail intake channels (IMAP, Maildir) share: raw bytes → :class:`Delivery`.

This module owns the type of the parse callable the channels take (the signature of
:func:`inbox_daemon.channels.email.parse.parse_message`), a default that imports the real parser
on first use, and :func:`make_delivery`, which parses one message off the event loop and turns a
rejection into a delivery that carries its reason (the pipeline quarantines it).
:func:`make_file_delivery` does the same for a large mail in a file (see
:mod:`inbox_daemon.channels.email.spool`), which is never read into memory whole.
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Callable, Collection
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from inbox_daemon.channels.base import Checkpoint, Delivery
from inbox_daemon.errors import RejectedMessage
from inbox_daemon.messages import InboundMessage

CHANNEL = "email"


class ParseMessage(Protocol):
    """``parse_message(raw, *, channel_mailbox, external_id, our_addresses, received_at)``."""

    def __call__(
        self,
        raw: bytes,
        *,
        channel_mailbox: str,
        external_id: str,
        our_addresses: Collection[str] = (),
        received_at: datetime | None = None,
    ) -> InboundMessage: ...


def parse_lazily(
    raw: bytes,
    *,
    channel_mailbox: str,
    external_id: str,
    our_addresses: Collection[str] = (),
    received_at: datetime | None = None,
) -> InboundMessage:
    """The real parser, imported on first use."""
    from inbox_daemon.channels.email.parse import parse_message

    return parse_message(
        raw,
        channel_mailbox=channel_mailbox,
        external_id=external_id,
        our_addresses=our_addresses,
        received_at=received_at,
    )


class ParseFile(Protocol):
    """``parse_file(path, *, channel_mailbox, external_id, our_addresses, received_at,
    spool_dir)``: the signature of :func:`inbox_daemon.channels.email.spool.parse_file`."""

    def __call__(
        self,
        path: Path,
        *,
        channel_mailbox: str,
        external_id: str,
        our_addresses: Collection[str] = (),
        received_at: datetime | None = None,
        spool_dir: Path,
    ) -> InboundMessage: ...


def parse_file_lazily(
    path: Path,
    *,
    channel_mailbox: str,
    external_id: str,
    our_addresses: Collection[str] = (),
    received_at: datetime | None = None,
    spool_dir: Path,
) -> InboundMessage:
    """The real file parser, imported on first use."""
    from inbox_daemon.channels.email.spool import parse_file

    return parse_file(
        path,
        channel_mailbox=channel_mailbox,
        external_id=external_id,
        our_addresses=our_addresses,
        received_at=received_at,
        spool_dir=spool_dir,
    )


async def make_delivery(
    raw: bytes,
    *,
    parse: ParseMessage,
    mailbox: str,
    external_id: str,
    our_addresses: Collection[str],
    log: Any,
    received_at: datetime | None = None,
    checkpoint: Checkpoint | None = None,
) -> Delivery:
    """Parse ``raw`` in a worker thread; a rejection (or a parser crash) becomes ``error``.

    A parser crash is treated like a rejection so that one odd message cannot stop a mailbox:
    the pipeline keeps the raw bytes in quarantine with the reason.
    """
    call = partial(
        parse,
        raw,
        channel_mailbox=mailbox,
        external_id=external_id,
        our_addresses=our_addresses,
        received_at=received_at,
    )
    message, error = await _parsed(call, external_id, log)
    return Delivery(
        channel=CHANNEL,
        mailbox=mailbox,
        external_id=external_id,
        raw=raw,
        message=message,
        error=error,
        checkpoint=checkpoint,
    )


async def make_file_delivery(
    path: Path,
    *,
    mailbox: str,
    external_id: str,
    our_addresses: Collection[str],
    log: Any,
    spool_dir: Path,
    received_at: datetime | None = None,
    checkpoint: Checkpoint | None = None,
    parse: ParseFile = parse_file_lazily,
) -> Delivery:
    """:func:`make_delivery` for a mail in the file ``path``: ``raw`` is empty, ``raw_path`` set.

    Large attachments are decoded into files under ``spool_dir``, which the caller removes after
    the sink returned (``path`` too must stay until then). An :class:`OSError` (``path``
    unreadable, ``spool_dir`` not writable) is raised, not turned into a rejection: the mail
    itself may be fine.
    """
    call = partial(
        parse,
        path,
        channel_mailbox=mailbox,
        external_id=external_id,
        our_addresses=our_addresses,
        received_at=received_at,
        spool_dir=spool_dir,
    )
    message, error = await _parsed(call, external_id, log, passing=(OSError,))
    return Delivery(
        channel=CHANNEL,
        mailbox=mailbox,
        external_id=external_id,
        raw=b"",
        raw_path=path,
        message=message,
        error=error,
        checkpoint=checkpoint,
    )


#: A parse's answer: the message, or None with why and (for a parser crash) the traceback.
Parsed = tuple[InboundMessage | None, str | None, str | None]


def parse_one(
    call: Callable[[], InboundMessage], passing: tuple[type[Exception], ...] = ()
) -> Parsed:
    """``call()``: a rejection or a parser crash is an answer, not an exception (those in
    ``passing`` are raised). Runs wherever the parsing runs: a thread or the parse worker."""
    try:
        return call(), None, None
    except RejectedMessage as exc:
        return None, str(exc) or "rejected by the parser", None
    except passing:
        raise
    except Exception as exc:
        return None, f"parser failed: {type(exc).__name__}: {exc}", traceback.format_exc()


def log_parsed(log: Any, external_id: str, error: str | None, trace: str | None) -> None:
    """Say why a mail was not parsed (nothing when it was)."""
    if error is None:
        return
    if trace is None:
        log.info("mail.rejected", external_id=external_id, reason=error)
    else:
        log.error("mail.parser_failed", external_id=external_id, error=error, traceback=trace)


async def _parsed(
    call: Callable[[], InboundMessage],
    external_id: str,
    log: Any,
    passing: tuple[type[Exception], ...] = (),
) -> tuple[InboundMessage | None, str | None]:
    """:func:`parse_one` in a worker thread, logged."""
    message, error, trace = await asyncio.to_thread(parse_one, call, passing)
    log_parsed(log, external_id, error, trace)
    return message, error
