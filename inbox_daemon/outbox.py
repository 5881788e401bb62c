"""The outbox: delivers pending outgoing activities through their channel.

One pass (:meth:`Outbox.run_once`) has the case service's :class:`DeliveryLedger` claim the due
rows under a lease, in a short transaction that commits before anything is sent (several
daemons share the work without sending a message twice). Then each message goes to the sender
of its channel and the ledger marks its row: ``sent``; or ``pending`` again after an
exponential, jittered back-off, with the error; or ``failed`` (a permanent error, or too many
attempts), audited on the case. A resend after a crash carries the Message-ID stored on the
row, never a new one, so the customer's mail client shows a duplicate at worst. The outbox
decides when and how often; the ledger writes.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from inbox_daemon.channels.base import OutboundChannel
from inbox_daemon.errors import DeliveryError, PermanentDeliveryError
from inbox_daemon.kinds import UnknownChannelKind, kind_of
from inbox_daemon.logging import get_logger
from inbox_daemon.messages import Attachment, DeliveryReceipt, OutboundMessage
from inbox_daemon.service.delivery import Claimed, DeliveryLedger, GivenUp
from inbox_daemon.store.db import Database
from inbox_daemon.store.files import FileStore
from inbox_daemon.store.tables import ActivityRow, AttachmentRow, CaseRow

__all__ = ["Claim", "Outbox", "OutboxPolicy", "build_message"]

log = get_logger("inbox_daemon.outbox")


@dataclass(frozen=True)
class OutboxPolicy:
    #: Attempts before a message is given up as failed.
    max_attempts: int = 8
    base_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)
    #: Each delay is stretched or shrunk by up to this fraction, so retries do not bunch up.
    jitter: float = 0.2
    #: Rows claimed per pass.
    batch_size: int = 20
    #: Messages of one batch sent at the same time.
    concurrency: int = 4
    #: A claimed row not marked within this time is taken again (its daemon died mid-send).
    lease: timedelta = timedelta(minutes=10)
    #: One send may take this long, then it counts as a transient failure. A batch thus ends
    #: well within its lease: batch_size / concurrency * send_timeout < lease.
    send_timeout: timedelta = timedelta(seconds=90)

    def backoff(self, attempts: int, rng: random.Random) -> timedelta:
        """The wait after the ``attempts``-th failed attempt: 30 s, 1 min, 2 min … at most 1 h."""
        base = self.base_backoff.total_seconds() * 2 ** max(attempts - 1, 0)
        seconds = min(base, self.max_backoff.total_seconds())
        return timedelta(seconds=seconds * rng.uniform(1 - self.jitter, 1 + self.jitter))


@dataclass(frozen=True)
class Claim:
    """A row taken for delivery: the lease we set on it, and the message (or why there is none)."""

    activity_id: int
    case_id: int
    lease: datetime
    attempts: int
    message: OutboundMessage | None
    error: str | None = None


def build_message(
    activity: ActivityRow, case: CaseRow, attachments: Sequence[Attachment] = ()
) -> OutboundMessage:
    """The message an outgoing activity stands for, with the Message-ID stored on the row."""
    if not activity.message_id:
        raise PermanentDeliveryError(activity.channel or "?", f"activity {activity.id} has no id")
    try:
        spec = kind_of(activity.channel)
    except UnknownChannelKind as exc:
        raise PermanentDeliveryError(activity.channel or "?", str(exc)) from None
    contact = {(case.contact_email or "").lower(), (case.contact_slack or "").lower()} - {""}
    to = tuple(
        spec.address(r, case.contact_name if r.lower() in contact else "")
        for r in activity.recipients
    )
    return OutboundMessage(
        channel=spec.name,
        mailbox=activity.mailbox or "",
        message_id=activity.message_id,
        to=to,
        cc=tuple(spec.address(c) for c in activity.cc),
        subject=activity.subject or case.title,
        text=activity.body_text,
        html=activity.body_html,
        in_reply_to=activity.in_reply_to,
        references=tuple(activity.references),
        automatic=activity.automatic,
        attachments=tuple(attachments),
        slack_channel=activity.slack_channel,
        slack_thread_ts=activity.slack_thread_ts,
        case_number=case.number,
    )


class Outbox:
    """The delivery worker. ``senders`` maps a channel name (``email``, ``slack``) to its sender.

    Rows of a channel without a sender are left alone (for a daemon running without Slack).
    """

    def __init__(
        self,
        db: Database,
        senders: Mapping[str, OutboundChannel],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        policy: OutboxPolicy | None = None,
        files: FileStore | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.senders = dict(senders)
        self.clock = clock
        #: The case service's record of what is due and what became of it.
        self.ledger = DeliveryLedger(db, clock)
        self.policy = policy or OutboxPolicy()
        self.files = files
        self.rng = rng or random.Random()
        #: Set it (or call :meth:`wake`) to deliver now rather than at the next interval.
        self.wakeup = asyncio.Event()
        #: Told (case number, error) after a message was given up, e.g. to tell the agents.
        self.on_failed: list[Callable[[str, str], Awaitable[None]]] = []
        self._failed: list[GivenUp] = []

    def wake(self) -> None:
        """Deliver now rather than at the next interval (wired to the service's replies)."""
        self.wakeup.set()

    # --- one pass ------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim due rows and deliver them; returns how many rows were claimed."""
        claims = await self.claim()
        if claims:
            gate = asyncio.Semaphore(max(self.policy.concurrency, 1))

            async def deliver(claim: Claim) -> None:
                async with gate:
                    await self._deliver(claim)

            await asyncio.gather(*(deliver(c) for c in claims))
        await self._report_failures()
        return len(claims)

    async def _report_failures(self) -> None:
        """Tell the listeners about messages given up (after their transactions committed)."""
        failed, self._failed = self._failed, []
        for given_up in failed:
            for listener in self.on_failed:
                try:
                    await listener(given_up.case_number, given_up.error)
                except Exception as exc:  # a listener never stops delivery
                    log.warning("failure report not delivered", case=given_up.case_number,
                                error=str(exc))  # fmt: skip

    async def claim(self) -> list[Claim]:
        """Take up to a batch of due rows in a short transaction of its own."""
        if not self.senders:
            return []
        lease = self.clock() + self.policy.lease
        found = await self.ledger.claim(
            list(self.senders), lease=lease, limit=self.policy.batch_size,
            max_attempts=self.policy.max_attempts,
        )  # fmt: skip
        self._failed.extend(found.given_up)
        return [self._claim(taken) for taken in found.claimed]

    def _claim(self, taken: Claimed) -> Claim:
        activity, case = taken.activity, taken.case
        try:
            message: OutboundMessage | None = build_message(
                activity, case, self._attachments(taken.attachments)
            )
            problem = None
        except (DeliveryError, ValueError) as exc:
            message, problem = None, str(exc)
        return Claim(activity.id, case.id, taken.lease, activity.attempts, message, problem)

    def _attachments(self, rows: Sequence[AttachmentRow]) -> list[Attachment]:
        if self.files is None:
            return []
        return [
            Attachment(
                filename=row.filename,
                content_type=row.content_type,
                size=row.size,
                path=self.files.path_for(row.sha256),
                content_id=row.content_id,
                inline=row.inline,
            )
            for row in rows
        ]

    async def _deliver(self, claim: Claim) -> None:
        if claim.message is None:
            await self._mark_failed(claim, claim.error or "cannot build the message")
            return
        msg = claim.message
        sender = self.senders[msg.channel]
        try:
            receipt = await asyncio.wait_for(
                sender.send(msg), self.policy.send_timeout.total_seconds()
            )
        except TimeoutError:
            await self._retry_or_fail(claim, f"no answer within {self.policy.send_timeout}")
        except PermanentDeliveryError as exc:
            await self._mark_failed(claim, str(exc))
        except DeliveryError as exc:
            await self._retry_or_fail(claim, str(exc))
        except Exception as exc:  # a bug in a sender: retried, and given up after the limit
            log.exception("sender crashed", activity=claim.activity_id, message_id=msg.message_id)
            await self._retry_or_fail(claim, f"{type(exc).__name__}: {exc}")
        else:
            await self._mark_sent(claim, receipt)

    # --- marking -------------------------------------------------------------------------

    async def _mark_sent(self, claim: Claim, receipt: DeliveryReceipt) -> None:
        sent_id = None
        if claim.message is not None and kind_of(claim.message.channel).keeps_sent_id:
            sent_id = receipt.external_id
        marked = await self.ledger.mark_delivered(
            claim.activity_id, sent_at=receipt.sent_at, sent_id=sent_id
        )
        if not marked:
            log.warning("sent, but the row changed meanwhile", activity=claim.activity_id)
        log.info("delivered", activity=claim.activity_id, attempts=claim.attempts,
                 message_id=claim.message.message_id if claim.message else None)  # fmt: skip

    async def _retry_or_fail(self, claim: Claim, error: str) -> None:
        if claim.attempts >= self.policy.max_attempts:
            await self._mark_failed(claim, f"gave up after {claim.attempts} attempts: {error}")
            return
        delay = self.policy.backoff(claim.attempts, self.rng)
        retried = await self.ledger.retry_later(
            claim.activity_id, claim.lease, at=self.clock() + delay, error=error
        )
        if not retried:
            log.warning("lease lost before the retry was recorded", activity=claim.activity_id)
            return
        log.warning("delivery failed, will retry", activity=claim.activity_id,
                    attempts=claim.attempts, retry_in=round(delay.total_seconds()),
                    error=error)  # fmt: skip

    async def _mark_failed(self, claim: Claim, error: str) -> None:
        given_up = await self.ledger.mark_failed(claim.activity_id, claim.lease, error)
        if given_up is None:
            log.warning("lease lost before the failure was recorded", activity=claim.activity_id)
            return
        self._failed.append(given_up)

    # --- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, interval: float = 10.0) -> None:
        """Deliver until ``stop`` is set; a pass under way is finished first (SIGTERM drain)."""
        failures = 0
        while not stop.is_set():
            self.wakeup.clear()  # a wake-up during the pass below makes the next one start at once
            try:
                claimed = await self.run_once()
                failures = 0
            except Exception:
                failures += 1
                claimed = 0
                log.exception("outbox pass failed", failures=failures)
            if claimed >= self.policy.batch_size and not failures:
                continue  # more may be due right now
            wait = interval if not failures else min(interval * 2**failures, 300.0)
            await self._sleep(stop, wait)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(self.wakeup.wait())]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
