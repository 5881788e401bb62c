"""Benchmark of the routing engine: 1,000 generated rules, 1,000 generated messages.

Prints the load time and the median and p99 decision time per message, as wall time and as
the thread's CPU time (which leaves out time the process waited for a CPU on a busy machine).
Run with ``python bench/router.py [--rules N] [--messages N] [--seed N]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from inbox_daemon.cases.enums import Priority
from inbox_daemon.messages import Address, Attachment, ChannelKind, InboundMessage
from inbox_daemon.router import ThreadFacts, evaluate, load_rules_text

WORDS = [
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
    "printer",
    "vpn",
    "mobile",
    "android",
    "ios",
    "sync",
    "backup",
    "restore",
    "delete",
    "account",
    "access",
    "permission",
    "team",
    "seat",
    "trial",
]
DOMAINS = [f"customer{i}.example" for i in range(200)]
PRIORITIES = [p.value for p in Priority]


def _condition(rng: random.Random, i: int) -> str:
    word = rng.choice(WORDS)
    kind = rng.randrange(14)
    if kind == 0:
        return f"subject: {word}-{i}"
    if kind == 1:
        return f"subject: {{any: [{word}{i}, {rng.choice(WORDS)}{i}]}}"
    if kind == 2:
        return f'subject: {{regex: "(?i)\\\\b{word}[-_ ]?{i}\\\\b"}}'
    if kind == 3:
        return f"body: {{contains: ticket-{i}}}"
    if kind == 4:
        return f'body: {{regex: "order #{i}\\\\d{{3}}", flags: i}}'
    if kind == 5:
        return f'from: ["*@{rng.choice(DOMAINS)}", "vip{i}@example.com"]'
    if kind == 6:
        return f"from_domain: [{rng.choice(DOMAINS)}, sub{i}.example]"
    if kind == 7:
        return f'to: ["support+{i}@example.com", "team{i}-*@example.com"]'
    if kind == 8:
        return f'header: {{name: X-Customer-Tier, equals: "tier{i}"}}'
    if kind == 9:
        return f"all: [{{channel: slack}}, {{slack_channel: [C{i:05d}]}}]"
    if kind == 10:
        return f'attachment_type: ["application/x-{word}{i}"]'
    if kind == 11:
        return (
            f"any: [{{subject: {{any: [{word}{i}]}}}}, "
            f"{{all: [{{is_reply: true}}, {{priority: [{rng.choice(PRIORITIES)}]}}, "
            f"{{from_domain: [{rng.choice(DOMAINS)}]}}]}}]"
        )
    if kind == 12:
        return f"not: {{mailbox: [support, sales, box{i % 7}]}}"
    return f"mailbox: [box{i}]\n      business_hours: true"


def rules_yaml(count: int, rng: random.Random) -> str:
    lines = [
        "version: 1",
        "users: [{id: ann}, {id: bob}]",
        "teams: [{id: t1, members: [ann, bob], strategy: round_robin}]",
        "queues:",
        "  - {id: general, team: t1}",
        "  - {id: special}",
        "business_hours:",
        "  default:",
        "    timezone: Europe/Berlin",
        '    hours: {mon: "09:00-17:00", tue: "09:00-17:00", wed: "09:00-17:00"}',
        "rules:",
    ]
    for i in range(count):
        stop = "true" if rng.random() < 0.8 else "false"
        lines += [
            f"  - name: rule {i}",
            "    when:",
            f"      {_condition(rng, i)}",
            f"    then: {{queue: special, tags: [t{i}], priority: {rng.choice(PRIORITIES)}}}",
            f"    stop: {stop}",
        ]
    lines.append("default: {queue: general}")
    return "\n".join(lines) + "\n"


def messages(
    count: int, rules: int, rng: random.Random
) -> list[tuple[InboundMessage, ThreadFacts]]:
    out = []
    for n in range(count):
        i = rng.randrange(rules * 3)  # about a third of the messages can hit a rule
        words = rng.choices(WORDS, k=rng.randint(100, 400))
        body = " ".join(words) + f"\nticket-{i} order #{i}123\n"
        msg = InboundMessage(
            channel=ChannelKind.SLACK if n % 10 == 0 else ChannelKind.EMAIL,
            mailbox=rng.choice(["support", "sales", f"box{i}"]),
            external_id=str(n),
            sender=Address(email=f"user{n}@{rng.choice(DOMAINS)}"),
            subject=f"Re: {rng.choice(WORDS)} {rng.choice(WORDS)}-{i} problem",
            text=body,
            to=(Address(email=f"support+{i}@example.com"),),
            headers={"x-customer-tier": (f"tier{i}",)} if n % 3 == 0 else {},
            attachments=(Attachment("a", "application/pdf", 10),) if n % 4 == 0 else (),
            slack_channel=f"C{i:05d}" if n % 10 == 0 else None,
        )
        facts = ThreadFacts(
            is_reply=n % 2 == 0,
            current_priority=Priority.HIGH if n % 5 == 0 else None,
        )
        out.append((msg, facts))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    text = rules_yaml(args.rules, rng)
    started = time.perf_counter()
    loaded = load_rules_text(text, "bench-rules.yaml")
    load_ms = (time.perf_counter() - started) * 1000
    batch = messages(args.messages, args.rules, rng)
    monday = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)

    wall: list[float] = []
    cpu: list[float] = []
    fired = 0
    for _round in range(2):  # the first round warms up caches; the second is measured
        wall.clear()
        cpu.clear()
        fired = 0
        for n, (msg, facts) in enumerate(batch):
            now = monday + timedelta(minutes=17 * n)
            w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
            decision = evaluate(loaded.rules, msg, facts, now)
            c1, w1 = time.thread_time_ns(), time.perf_counter_ns()
            wall.append((w1 - w0) / 1000)
            cpu.append((c1 - c0) / 1000)
            fired += bool(decision.rules_fired)

    print(f"rules: {len(loaded.rules.rules)}, messages: {len(batch)}, text: {len(text)} bytes")
    print(f"load + compile: {load_ms:.0f} ms")
    print(f"messages with a firing rule: {fired} (the others try every rule)")
    for name, values in (("wall time", wall), ("CPU time", cpu)):
        values.sort()
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
        print(
            f"decision per message, {name}: median {statistics.median(values):.0f} µs, "
            f"p99 {p99:.0f} µs, max {values[-1]:.0f} µs"
        )


if __name__ == "__main__":
    main()
