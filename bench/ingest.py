"""Benchmark of email intake: parsing alone, the whole IMAP → database path, and memory.

Generates N mails deterministically (``--seed``): about 45 % plain text, 40 % text + HTML,
15 % with one 10 KB - 1 MB attachment (log-uniform, so most are small), 30 % replies to an
earlier mail (In-Reply-To, References, quoted text), a third with non-ASCII subjects as RFC 2047
encoded words (UTF-8 base64 or Latin-1 quoted-printable), and 2 % malformed (no headers, a
multipart cut short, broken base64, an unknown charset with raw 8-bit bytes, header lines
without a colon). It starts a private Dovecot (``tests/servers/dovecot.py``), appends the mails
and measures:

(a) mail-parser alone: ``mailparser.parse_from_bytes`` over the raw mails, on one core;
(b) our parser alone: ``parse_message`` (mail-parser plus our extraction), on one core;
(c) full intake: ``ImapChannel.run_once`` into the ``Ingestor`` that ``Runtime`` builds, on a
    fresh database, until every mail has been taken in; its rate relative to (a) (the target
    is at least 0.55);
(d) peak RSS growth while one mail with a 50 MB attachment is taken in, in a child process,
    above its RSS when idle (the target is under 150 MB);
(e) only when asked for (``--only …,maildir``): the same mails taken in from a Maildir.

Rates are wall-clock mails/s; CPU-time rates are shown too, since the machine may be shared.
Run with ``python bench/ingest.py [--count N] [--seed N] [--db sqlite|postgres]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import imaplib
import logging
import math
import multiprocessing
import os
import platform
import quopri
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MB = 1024 * 1024
PASSWORD_ENV = "INBOX_BENCH_IMAP_PASSWORD"
TARGET_RATIO = 0.55
TARGET_RSS_MB = 150.0
BIG_ATTACHMENT = 50 * MB

WORDS = [
    "printer",
    "invoice",
    "refund",
    "password",
    "login",
    "error",
    "crash",
    "outage",
    "slow",
    "billing",
    "upgrade",
    "cancel",
    "renew",
    "license",
    "export",
    "import",
    "report",
    "dashboard",
    "api",
    "token",
    "webhook",
    "timeout",
    "vpn",
    "mobile",
    "sync",
    "backup",
    "restore",
    "account",
    "access",
    "permission",
    "team",
    "seat",
    "trial",
    "order",
    "shipment",
    "delivery",
    "payment",
    "card",
]
SUBJECTS_NON_ASCII = [
    "Rückerstattung für Rechnung",
    "Problème de connexion à l'espace client",
    "¡Urgente! pago duplicado",
    "Заказ не пришёл",
    "請求書の再発行について",
    "Printer on fire 🔥",
    "Åtkomst nekad för användare",
    "Zamówienie – błąd płatności",
]
NAMES = [
    "Ann Smith",
    "José Núñez",
    "Zoë Müller",
    "李雷",
    "Björn Ågren",
    "Chloé Dubois",
    "Raj Patel",
]
ATTACHMENT_TYPES = [
    ("application/pdf", "pdf"),
    ("image/png", "png"),
    ("application/zip", "zip"),
    ("text/csv", "csv"),
    ("application/octet-stream", "bin"),
]


# --- the mail --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    kind: str  # plain | html | attachment | malformed:<how>
    raw: bytes
    reply: bool


def _encoded(text: str, rng: random.Random) -> str:
    """``text`` as RFC 2047 encoded words if it is not ASCII: UTF-8 (base64) or, where it fits,
    half the time Latin-1 (quoted-printable)."""
    if text.isascii():
        return text
    charset = "utf-8"
    if rng.random() < 0.5:
        with contextlib.suppress(UnicodeEncodeError):
            text.encode("iso-8859-1")
            charset = "iso-8859-1"
    return Header(text, charset).encode()


def _paragraphs(rng: random.Random, lines: int) -> list[str]:
    return [
        " ".join(rng.choices(WORDS, k=rng.randint(6, 14))).capitalize() + "." for _ in range(lines)
    ]


def _qp(text: str) -> str:
    return quopri.encodestring(text.replace("\n", "\r\n").encode("utf-8")).decode("ascii")


def _b64(data: bytes) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return "\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _html(lines: list[str]) -> str:
    body = "".join(f"<p>{line}</p>\n" for line in lines)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>p{margin:0}</style></head>'
        f'<body><div class="mail">{body}<br><table><tr><td>Kind regards</td></tr></table>'
        "</div></body></html>\n"
    )


def _part(content_type: str, body: str, encoding: str, extra: str = "") -> str:
    return (
        f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: {encoding}\r\n{extra}"
        f"\r\n{body}\r\n"
    )


def _multipart(subtype: str, parts: list[str], boundary: str, close: bool = True) -> str:
    out = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'
    out += "This is a multi-part message in MIME format.\r\n"
    for part in parts:
        out += f"--{boundary}\r\n{part}"
    if close:
        out += f"--{boundary}--\r\n"
    return out


def attachment_part(rng: random.Random, size: int, index: int) -> str:
    content_type, ext = rng.choice(ATTACHMENT_TYPES)
    name = f"file-{index}.{ext}"
    return _part(
        f'{content_type}; name="{name}"',
        _b64(rng.randbytes(size)),
        "base64",
        f'Content-Disposition: attachment; filename="{name}"\r\n',
    )


def generate(count: int, seed: int) -> list[Mail]:
    """``count`` mails, the same ones for the same seed."""
    rng = random.Random(seed)
    start = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
    mails: list[Mail] = []
    threads: list[tuple[str, str, list[str]]] = []  # (message id, subject, text lines)
    for n in range(count):
        customer = rng.randrange(400)
        domain = f"customer{customer % 97}.example"
        name = rng.choice(NAMES) if rng.random() < 0.5 else f"Customer {customer}"
        mid = f"<{n}.{rng.getrandbits(40):010x}@{domain}>"
        lines = _paragraphs(rng, rng.randint(3, 30))
        reply = bool(threads) and rng.random() < 0.30
        if reply:
            parent_id, parent_subject, parent_lines = threads[rng.randrange(len(threads))]
            subject = f"Re: {parent_subject}"
            lines += ["", f"On Mon, 3 Mar 2025 at 09:00, {name} wrote:"]
            lines += [f"> {line}" for line in parent_lines[:20]]
        elif rng.random() < 0.33:
            subject = f"{rng.choice(SUBJECTS_NON_ASCII)} #{n}"
        else:
            subject = f"{rng.choice(WORDS).capitalize()} {rng.choice(WORDS)} problem #{n}"
        headers = [
            f"From: {_encoded(name, rng)} <customer{customer}@{domain}>",
            "To: Support <support@example.com>",
            f"Subject: {_encoded(subject, rng)}",
            f"Date: {format_datetime(start + timedelta(seconds=37 * n))}",
            f"Message-ID: {mid}",
            "MIME-Version: 1.0",
            f"Received: from mx.{domain} by mx.example.com; "
            f"{format_datetime(start + timedelta(seconds=37 * n + 2))}",
        ]
        if reply:
            headers += [f"In-Reply-To: {parent_id}", f"References: {parent_id}"]
        text = "\n".join(lines) + "\n"
        roll = rng.random()
        boundary = f"=_b{n}_{rng.getrandbits(32):08x}"
        if rng.random() < 0.02:
            kind, raw = _malformed(rng, n, headers, text, boundary)
            mails.append(Mail(kind, raw, reply))
            continue
        if roll < 0.45:
            kind = "plain"
            body = _part("text/plain; charset=utf-8", _qp(text), "quoted-printable")
        elif roll < 0.85:
            kind = "html"
            body = _multipart(
                "alternative",
                [
                    _part("text/plain; charset=utf-8", _qp(text), "quoted-printable"),
                    _part("text/html; charset=utf-8", _qp(_html(lines)), "quoted-printable"),
                ],
                boundary,
            )
        else:
            kind = "attachment"
            size = int(math.exp(rng.uniform(math.log(10 * 1024), math.log(MB))))
            body = _multipart(
                "mixed",
                [
                    _part("text/plain; charset=utf-8", _qp(text), "quoted-printable"),
                    attachment_part(rng, size, n),
                ],
                boundary,
            )
        raw = ("\r\n".join(headers) + "\r\n" + body).encode("utf-8")
        mails.append(Mail(kind, raw, reply))
        threads.append((mid, subject.removeprefix("Re: "), lines[:20]))
    return mails


def _malformed(
    rng: random.Random, n: int, headers: list[str], text: str, boundary: str
) -> tuple[str, bytes]:
    how = rng.choice(["no-headers", "truncated", "bad-base64", "bad-charset", "bad-headers"])
    head = "\r\n".join(headers) + "\r\n"
    if how == "no-headers":
        return f"malformed:{how}", b"\r\n" + rng.randbytes(rng.randint(100, 2000))
    if how == "truncated":
        body = _multipart(
            "mixed",
            [
                _part("text/plain; charset=utf-8", _qp(text), "quoted-printable"),
                attachment_part(rng, rng.randint(5000, 50000), n),
            ],
            boundary,
            close=False,
        )
        return f"malformed:{how}", (head + body[: len(body) * 2 // 3]).encode()
    if how == "bad-base64":
        junk = _b64(rng.randbytes(4000))
        junk = junk[:1000] + "!!**@@" + junk[1000:2001] + "=\r\n" + junk[2001:]
        body = _multipart(
            "mixed",
            [
                _part("text/plain; charset=utf-8", _qp(text), "quoted-printable"),
                _part('application/pdf; name="x.pdf"', junk, "base64"),
            ],
            boundary,
        )
        return f"malformed:{how}", (head + body).encode()
    if how == "bad-charset":
        raw_head = head.replace("Subject: ", "Subject: Caf\udce9 ", 1)
        data = raw_head.encode("utf-8", "surrogateescape")
        data += b'Content-Type: text/plain; charset="x-no-such-charset"\r\n'
        data += b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        return f"malformed:{how}", data + text.encode("latin-1", "replace") + b"caf\xe9\r\n"
    broken = [*headers[:3], "this header line has no colon at all", *headers[3:]]
    return f"malformed:{how}", (
        "\r\n".join(broken) + "\r\nContent-Type: text/plain\r\n\r\n" + text
    ).encode("utf-8")


def big_mail(size: int = BIG_ATTACHMENT, seed: int = 50) -> bytes:
    rng = random.Random(seed)
    head = (
        "From: Big Sender <big@customer.example>\r\nTo: support@example.com\r\n"
        "Subject: The full log archive\r\nMessage-ID: <big-attachment@customer.example>\r\n"
        "Date: Mon, 03 Mar 2025 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
    body = _multipart(
        "mixed",
        [
            _part("text/plain; charset=utf-8", "The logs are attached.\r\n", "7bit"),
            attachment_part(rng, size, 0),
        ],
        "=_big",
    )
    return (head + body).encode("ascii")


# --- the server --------------------------------------------------------------------------------


@dataclass
class Account:
    host: str
    port: int
    user: str
    password: str


@contextlib.contextmanager
def dovecot() -> Iterator[Any]:
    from tests.servers.dovecot import DovecotServer

    try:
        server = DovecotServer.create()
    except BaseException as exc:
        _no_dovecot(exc)
        raise
    try:
        try:
            server.start()
        except BaseException as exc:
            _no_dovecot(exc)
            raise
        yield server
    finally:
        server.close()


def _no_dovecot(exc: BaseException) -> None:
    """The server's helpers skip the calling test when Dovecot cannot run: say so and stop."""
    if type(exc).__name__ == "Skipped":
        raise SystemExit(f"cannot run the intake benchmarks: {exc}") from None


def new_account(server: Any) -> Account:
    acc = server.add_account()
    return Account(acc.host, acc.port, acc.user, acc.password)


def append(account: Account, raws: list[bytes]) -> None:
    conn = imaplib.IMAP4(account.host, account.port, timeout=120)
    try:
        conn.login(account.user, account.password)
        for raw in raws:
            typ, data = conn.append("INBOX", None, None, raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
    finally:
        with contextlib.suppress(Exception):
            conn.logout()


# --- (a) and (b): parsing alone ----------------------------------------------------------------


@dataclass
class Rate:
    mails: int
    wall: float
    cpu: float
    note: str = ""

    @property
    def per_s(self) -> float:
        return self.mails / self.wall if self.wall else 0.0

    @property
    def per_cpu_s(self) -> float:
        return self.mails / self.cpu if self.cpu else 0.0


def timed(fn: Callable[[], Any], repeat: int, mails: int) -> Rate:
    """The best of ``repeat`` runs (least disturbed by other work on the machine)."""
    best: Rate | None = None
    for _ in range(repeat):
        gc.collect()
        wall, cpu = time.perf_counter(), time.thread_time()
        fn()
        rate = Rate(mails, time.perf_counter() - wall, time.thread_time() - cpu)
        if best is None or rate.wall < best.wall:
            best = rate
    assert best is not None
    return best


def bench_mailparser(raws: list[bytes], repeat: int) -> Rate:
    import mailparser

    failures = 0

    def run() -> None:
        nonlocal failures
        failures = 0
        for raw in raws:
            try:
                mailparser.parse_from_bytes(raw)
            except Exception:
                failures += 1

    rate = timed(run, repeat, len(raws))
    rate.note = f"{failures} raised"
    return rate


def bench_parser(raws: list[bytes], repeat: int) -> Rate:
    from inbox_daemon.channels.email.parse import parse_message
    from inbox_daemon.errors import RejectedMessage

    rejected = 0

    def run() -> None:
        nonlocal rejected
        rejected = 0
        for n, raw in enumerate(raws):
            try:
                parse_message(
                    raw,
                    channel_mailbox="support",
                    external_id=str(n),
                    our_addresses=("support@example.com",),
                )
            except RejectedMessage:
                rejected += 1

    rate = timed(run, repeat, len(raws))
    rate.note = f"{rejected} rejected"
    return rate


# --- (c): the whole intake ---------------------------------------------------------------------


def settings_with(workdir: Path, db_url: str, **mailbox: Any) -> Any:
    """The daemon's settings for one mailbox "support" (``mailbox``: its kind and the rest),
    with the template's rules.yaml and storage under ``workdir``."""
    from inbox_daemon.config import Settings

    rules = workdir / "rules.yaml"
    shutil.copy(REPO / "inbox_daemon" / "templates" / "rules.yaml", rules)
    return Settings(
        database={"url": db_url},
        storage={"path": str(workdir / "storage")},
        rules={"path": str(rules)},
        mailbox=[{"name": "support", "address": "support@example.com", **mailbox}],
    )


def make_settings(workdir: Path, account: Account, db_url: str) -> Any:
    os.environ[PASSWORD_ENV] = account.password
    return settings_with(
        workdir, db_url, kind="imap", host=account.host, port=account.port, tls="none",
        username=account.user, password_env=PASSWORD_ENV,
    )  # fmt: skip


async def _intake(settings: Any) -> tuple[float, float, int, dict[str, int]]:
    from sqlalchemy import func, select

    from inbox_daemon.cases.enums import Direction
    from inbox_daemon.gc_tuning import tune_gc
    from inbox_daemon.runtime import Runtime
    from inbox_daemon.store.migrate import upgrade
    from inbox_daemon.store.tables import ActivityRow, ReceiptRow

    runtime = Runtime(settings)
    try:
        await upgrade(runtime.db)
        (channel,) = await runtime.inbound_channels()
        gc.collect()
        tune_gc()  # as the daemon does once it has started
        wall, cpu = time.perf_counter(), time.process_time()
        delivered = await channel.run_once(runtime.sink)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        async with runtime.db.transaction() as session:
            outcomes = dict(
                (
                    await session.execute(
                        select(ReceiptRow.outcome, func.count()).group_by(ReceiptRow.outcome)
                    )
                ).all()
            )
            activities = await session.scalar(
                select(func.count()).where(ActivityRow.direction == Direction.INCOMING.value)
            )
        outcomes["incoming activities"] = int(activities or 0)
        return wall, cpu, delivered, outcomes
    finally:
        await runtime.close()


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'inbox.db'}"
        return
    from tests.conftest import drop_postgres_database, make_postgres_database

    url = asyncio.run(make_postgres_database())
    try:
        yield url
    finally:
        asyncio.run(drop_postgres_database(url))


def bench_intake(account: Account, count: int, db: str, repeat: int) -> tuple[Rate, dict[str, int]]:
    best: Rate | None = None
    outcomes: dict[str, int] = {}
    for _ in range(repeat):
        workdir = Path(tempfile.mkdtemp(prefix="inbox-bench-"))
        try:
            with database(db, workdir) as url:
                settings = make_settings(workdir, account, url)
                wall, cpu, delivered, outcomes = asyncio.run(_intake(settings))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if delivered != count:
            raise RuntimeError(f"intake delivered {delivered} of {count} mails")
        rate = Rate(count, wall, cpu)
        if best is None or rate.wall < best.wall:
            best = rate
    assert best is not None
    return best, outcomes


# --- (e): the Maildir channel (the embedded default) ------------------------------------------


def bench_maildir(raws: list[bytes], db: str) -> Rate:
    """The mails as files in a Maildir's ``new/`` (settled: a minute old), taken in by
    ``MaildirChannel.run_once`` into the Runtime's Ingestor, on a fresh database."""
    workdir = Path(tempfile.mkdtemp(prefix="inbox-bench-"))
    try:
        new = workdir / "maildir" / "new"
        new.mkdir(parents=True)
        old = time.time() - 60
        for i, raw in enumerate(raws):
            path = new / f"{1_700_000_000 + i}.M{i}P1.bench"
            path.write_bytes(raw)
            os.utime(path, (old + i / 1000, old + i / 1000))
        with database(db, workdir) as url:
            settings = settings_with(workdir, url, kind="maildir", path=str(workdir / "maildir"))
            wall, cpu, delivered, _outcomes = asyncio.run(_intake(settings))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if delivered != len(raws):
        raise RuntimeError(f"intake delivered {delivered} of {len(raws)} mails")
    return Rate(len(raws), wall, cpu)


# --- (d): peak memory with one big attachment ---------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False if the kernel refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _rss_child(conn: Connection, account: Account, workdir: str) -> None:
    """Warm up on a small mail, tell the parent, wait for the big one, report the peak RSS."""
    from inbox_daemon.gc_tuning import tune_gc
    from inbox_daemon.logging import configure
    from inbox_daemon.runtime import Runtime
    from inbox_daemon.store.migrate import upgrade

    configure("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115

    async def go() -> dict[str, Any]:
        settings = make_settings(Path(workdir), account, f"sqlite:///{workdir}/inbox.db")
        runtime = Runtime(settings)
        try:
            await upgrade(runtime.db)
            (channel,) = await runtime.inbound_channels()
            await channel.run_once(runtime.sink)  # the small warm-up mail
            tune_gc()  # as the daemon does once it has started
            conn.send("warm")
            if conn.recv() != "go":
                raise RuntimeError("parent gave up")
            gc.collect()
            idle = _status_kb("VmRSS")
            reset = _reset_peak()
            started = time.perf_counter()
            delivered = await channel.run_once(runtime.sink)
            elapsed = time.perf_counter() - started
            return {
                "idle_kb": idle,
                "peak_kb": _status_kb("VmHWM"),
                "reset": reset,
                "delivered": delivered,
                "seconds": elapsed,
            }
        finally:
            await runtime.close()

    try:
        conn.send(asyncio.run(go()))
    except BaseException as exc:
        conn.send({"error": f"{type(exc).__name__}: {exc}"})
        raise


def bench_rss(server: Any, size: int) -> dict[str, Any]:
    account = new_account(server)
    append(account, [generate(1, seed=99)[0].raw])
    workdir = tempfile.mkdtemp(prefix="inbox-bench-rss-")
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    proc = context.Process(target=_rss_child, args=(child, account, workdir))
    proc.start()
    try:
        if not parent.poll(120):
            raise RuntimeError("the memory child did not warm up in 120 s")
        first = parent.recv()
        if first != "warm":
            raise RuntimeError(f"the memory child failed: {first}")
        raw = big_mail(size)
        append(account, [raw])
        raw_mb = len(raw) / MB
        del raw
        parent.send("go")
        if not parent.poll(600):
            raise RuntimeError("the memory child did not finish in 600 s")
        result: dict[str, Any] = parent.recv()
        result["raw_mb"] = raw_mb
        return result
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        shutil.rmtree(workdir, ignore_errors=True)


# --- main ------------------------------------------------------------------------------------


def _rates(rate: Rate) -> tuple[str, str]:
    return f"{rate.per_s:,.0f}", f"{rate.per_cpu_s:,.0f}"


def _versus(rate: Rate, base: Rate | None, target: float | None) -> str:
    """``rate`` relative to (a), on wall time and on CPU time."""
    note = rate.note
    if base is not None:
        ratios = f"{rate.per_s / base.per_s:.2f} / {rate.per_cpu_s / base.per_cpu_s:.2f} x (a)"
        note = f"{note}; {ratios}" if note else ratios
        if target is not None:
            note += f", target >= {target}"
    return note


def _rss_row(result: dict[str, Any], big_mb: int) -> tuple[str, str, str, str]:
    name = f"(d) peak RSS, {big_mb} MB attachment"
    if "error" in result:
        return name, "", "", result["error"]
    growth = (result["peak_kb"] - result["idle_kb"]) / 1024
    note = (
        f"+{growth:,.0f} MB above idle ({result['idle_kb'] / 1024:,.0f} MB), target < "
        f"{TARGET_RSS_MB:.0f} MB; mail {result['raw_mb']:.0f} MB on the wire, taken in in "
        f"{result['seconds']:.1f} s"
    )
    if not result["reset"]:
        note += " (VmHWM could not be reset: an upper bound)"
    return name, "", "", note


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="mails to generate (1000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generator (1)")
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--repeat", type=int, default=3, help="parsing: best of this many passes (3)"
    )
    parser.add_argument(
        "--intake-repeat", type=int, default=1, help="intake: best of this many runs (1)"
    )
    parser.add_argument(
        "--only",
        default="mailparser,parser,intake,rss",
        help="comma-separated parts to run: mailparser, parser, intake, rss (all), maildir",
    )
    parser.add_argument(
        "--big-mb",
        type=int,
        default=BIG_ATTACHMENT // MB,
        help="size of the attachment of (d) in MB (50)",
    )
    args = parser.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    for key in [k for k in os.environ if k.startswith("INBOX_DAEMON_")]:
        del os.environ[key]  # the figures are for the settings made here

    from inbox_daemon.logging import configure

    # Logging stays on (its cost is part of intake) but goes nowhere; mail-parser's warnings
    # about odd MIME parts are silenced as inbox_daemon's parser does it.
    configure("info", "json", stream=open(os.devnull, "w"))  # noqa: SIM115
    logging.getLogger("mailparser").setLevel(logging.ERROR)

    started = time.perf_counter()
    mails = generate(args.count, args.seed)
    raws = [m.raw for m in mails]
    kinds = Counter(m.kind.split(":")[0] for m in mails)
    total_mb = sum(len(r) for r in raws) / MB
    print(
        f"{args.count} mails (seed {args.seed}), {total_mb:.1f} MB: "
        + ", ".join(f"{kinds[k]} {k}" for k in ("plain", "html", "attachment", "malformed"))
        + f", {sum(m.reply for m in mails)} replies; generated in "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
        + f", database {args.db}"
    )
    rows: list[tuple[str, str, str, str]] = []
    base: Rate | None = None
    if "mailparser" in parts:
        base = bench_mailparser(raws, args.repeat)
        rows.append(("(a) mail-parser alone", *_rates(base), base.note))
    if "parser" in parts:
        ours = bench_parser(raws, args.repeat)
        rows.append(("(b) parse_message alone", *_rates(ours), _versus(ours, base, None)))
    if {"intake", "rss"} & parts:
        with dovecot() as server:
            if "intake" in parts:
                account = new_account(server)
                started = time.perf_counter()
                append(account, raws)
                print(f"appended to Dovecot in {time.perf_counter() - started:.1f} s")
                rate, outcomes = bench_intake(account, args.count, args.db, args.intake_repeat)
                name = f"(c) full intake, IMAP -> {args.db}"
                rows.append((name, *_rates(rate), _versus(rate, base, TARGET_RATIO)))
                taken = ", ".join(f"{v} {k}" for k, v in sorted(outcomes.items()))
                rows.append(("    outcomes", "", "", taken))
            if "rss" in parts:
                rows.append(_rss_row(bench_rss(server, args.big_mb * MB), args.big_mb))
    if "maildir" in parts:
        rate = bench_maildir(raws, args.db)
        rows.append((f"(e) intake, Maildir -> {args.db}", *_rates(rate), _versus(rate, base, None)))
    print()
    header = ("measure", "mails/s", "per CPU-s", "notes (ratios: wall / CPU)")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    print(
        f"{header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]:>{widths[2]}}  {header[3]}"
    )
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
