"""The whole pipeline under load: one table, a JSON file and a chart.

Usage (from the repo root)::

    python bench/bench_e2e.py [--broker tansu|kafka] [--seconds 20] [--runs 3]
                              [--shops 20] [--conversations 600]

Starts the stack as the local run does (``devstack.stack``: broker, every service as its
own process with a short window, the sandbox platform, the mail sink and the sellers' DNS in
this process), onboards ``--shops`` shops, then per run:

1. **stack**: ``--conversations`` fresh conversations each get ``--messages`` buyer messages
   (one second apart) as signed type-14 webhooks POSTed to ingest, on a fixed schedule over
   ``--seconds`` (the offered rate is conversations x messages / seconds, whatever ingest
   answers). Each digest that reaches the sink is answered, for ``--reply-share`` of the
   conversations, with a Gmail-style reply sent to its reply address through the reply front.
   Timed from outside: ingest's 2xx, the sink's 250 (``received_at``), the reply front's 250,
   the part's arrival at the sandbox (``received_at``). A digest's deadline is the ingest's
   answer to the conversation's last message plus the window.
2. **bare**: the same schedule through ``bench/bare_chain.py`` (FastAPI + acks=all send, raw
   consume/produce, aiosmtplib send of a prepared digest, httpx post): CPU per 1,000 buyer
   messages of every stack process over that of the bare chain is the figure of record.
3. **slow relay**: the mailer's own loop (``bench_mailer.mailer_run``) and a bare aiosmtplib
   loop with the same connection count against a relay taking 50-100 ms per transaction.

Prints the medians over the runs (with lowest and highest) and writes
``var/bench/e2e-BROKER.json`` (every run, per-second series) and ``var/bench/e2e-BROKER.png``
(throughput and latency per second of the median run, a line per stage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
from aiokafka import AIOKafkaProducer  # noqa: E402
from bench_fanout import workload  # noqa: E402
from bench_mailer import bare_loop, fresh_key, mailer_run, signed_digest  # noqa: E402
from bench_mailer import start_sink_process as start_relay_process  # noqa: E402
from e2e_report import (  # noqa: E402
    STAGES,
    RunResult,
    cpu_per_thousand,
    draw_chart,
    latency_per_second,
    median_figures,
    per_second,
    percentile,
    rate,
    report_json,
    table,
    write_json,
)
from process_stats import (  # noqa: E402
    process_cpu_seconds,
    process_rss_bytes,
    tree_cpu_seconds,
    tree_rss_bytes,
)

from devstack.broker import EmbeddedBroker, free_port  # noqa: E402
from devstack.chat_sandbox import SandboxState, message_webhook, platform_message  # noqa: E402
from devstack.kafka import KafkaCluster, KafkaUnavailable  # noqa: E402
from devstack.mail_sink import SinkState, gmail_style_reply, start_sink_smtp  # noqa: E402
from devstack.stack import (  # noqa: E402
    Platforms,
    Ports,
    ServiceProcesses,
    stack_env,
    start_platforms,
    wait_healthy,
)
from mailer.mailer_settings import MailerSettings  # noqa: E402
from shared.chat_platform.tiktok_signing import sign_webhook  # noqa: E402
from shared.codec import encode  # noqa: E402
from shared.config import ChatPlatformSettings  # noqa: E402
from shared.events import ShopSettings  # noqa: E402
from shared.kafka import ensure_topics  # noqa: E402
from shared.logging import now_ms  # noqa: E402
from shared.tokens import TokenError, parse_keys, verify_token  # noqa: E402
from shared.topics import CHAT_EVENTS, SHOP_SETTINGS, TopicSpec  # noqa: E402

SELLER = "seller@shop.localhost"  # the digests' destination and the replies' author
RELAY_DELAY_MS = (50.0, 100.0)
RELAY_MAILS = 200
SETTINGS_APPLY_S = 2.0  # every service's settings view applies a record within this
DRAIN_S = 90.0  # after the schedule, how long the bench waits for the last digest or part
REPLY_CONNECTIONS = 4  # sellers' mail servers answering at once
POST_INFLIGHT = 256  # webhooks in flight at most (the schedule does not wait for answers)


@dataclass(frozen=True)
class Schedule:
    """Who writes when: ``(seconds after the start, conversation index, message number)``."""

    conversations: list[tuple[str, str]]
    sends: list[tuple[float, int, int]]
    replied: frozenset[int]  # conversation indexes whose digest is answered

    @classmethod
    def make(
        cls, conversations: list[tuple[str, str]], messages: int, seconds: float, reply_share: float
    ) -> Schedule:
        gap = min(1.0, seconds / (2 * messages))
        span = max(seconds - (messages - 1) * gap, 0.0)
        count = len(conversations)
        sends = sorted(
            (c * span / count + k * gap, c, k) for c in range(count) for k in range(messages)
        )
        replied = frozenset(
            c for c in range(count) if int((c + 1) * reply_share) > int(c * reply_share)
        )
        return cls(conversations, sends, replied)


@dataclass
class Observed:
    """What the bench saw from outside during one phase (wall-clock times, time.time())."""

    accepted: list[float] = field(default_factory=list)
    rejected: int = 0
    last_accepted: dict[int, float] = field(default_factory=dict)
    digests: list[float] = field(default_factory=list)
    digested: set[int] = field(default_factory=set)  # conversations with a digest
    extra_digests: list[str] = field(default_factory=list)  # a second digest for one
    notices: list[str] = field(default_factory=list)  # notices about the conversations
    digest_latency: list[tuple[float, float]] = field(default_factory=list)
    replies: dict[int, float] = field(default_factory=dict)  # conversation -> front's 250
    reply_errors: int = 0
    parts: list[float] = field(default_factory=list)
    part_latency: list[tuple[float, float]] = field(default_factory=list)


class StackDefaults(ChatPlatformSettings):
    """The services' defaults the bench needs: the platform's keys (ingest, fan-out) and the
    mailer's relay pool size (the bare loop gets as many connections)."""

    smtp_pool_size: int = MailerSettings.model_fields["smtp_pool_size"].default


def onboarded(shop_id: str) -> ShopSettings:
    return ShopSettings(
        shop_id=shop_id,
        alerts_enabled=True,
        destination_email=SELLER,
        authorized_senders=(SELLER,),
        updated_at_ms=now_ms(),
        updated_by="bench_e2e",
    )


async def onboard(bootstrap: str, shop_ids: set[str]) -> None:
    """Record the shops as onboarded (alerts on, digests to SELLER, replies from SELLER)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(
            *[
                await producer.send(SHOP_SETTINGS.name, encode(onboarded(s)), key=s.encode())
                for s in shop_ids
            ]
        )
    finally:
        await producer.stop()


async def open_conversations(
    http: httpx.AsyncClient, sandbox: str, conversations: list[tuple[str, str]]
) -> None:
    bound = asyncio.Semaphore(32)

    async def one(shop: str, conv: str) -> None:
        async with bound:
            for attempt in range(3):  # a kept-alive connection the server just closed
                try:
                    resp = await http.post(
                        f"{sandbox}/sandbox/conversations",
                        json={"shop_id": shop, "conversation_id": conv},
                    )
                except httpx.TransportError:
                    if attempt == 2:
                        raise
                    continue
                resp.raise_for_status()
                return

    await asyncio.gather(*(one(s, c) for s, c in conversations))


def webhook_bodies(schedule: Schedule, cfg: StackDefaults, run: int) -> list[tuple[bytes, str]]:
    """Each scheduled buyer message as the platform would push it: (body, Authorization)."""
    secret = cfg.platform_app_secret.get_secret_value()
    out = []
    for i, (_, c, k) in enumerate(schedule.sends):
        shop, conv = schedule.conversations[c]
        msg = platform_message(
            str(7_400_000_000_000_000_000 + run * 10_000_000 + i),
            "BUYER",
            {"im_user_id": f"buyer-{c}", "nickname": "Zoë"},
            "TEXT",
            {"content": f"Is it wool? ({k + 1}) 🧦"},
        )
        body = orjson.dumps(message_webhook(shop, conv, msg, f"{run}-{i}"))
        out.append((body, sign_webhook(cfg.platform_app_key, body, secret)))
    return out


async def drive(
    http: httpx.AsyncClient,
    url: str,
    schedule: Schedule,
    bodies: list[tuple[bytes, str]],
    seen: Observed,
) -> None:
    """POST every webhook at its scheduled time (open loop: answers are not waited for)."""
    loop = asyncio.get_running_loop()
    bound = asyncio.Semaphore(POST_INFLIGHT)
    tasks = []

    async def post(conv: int, body: bytes, signature: str) -> None:
        try:
            resp = await http.post(
                url,
                content=body,
                headers={"Authorization": signature, "Content-Type": "application/json"},
            )
        except httpx.HTTPError:
            seen.rejected += 1
        else:
            if resp.status_code // 100 == 2:
                now = time.time()
                seen.accepted.append(now)
                seen.last_accepted[conv] = max(seen.last_accepted.get(conv, 0.0), now)
            else:
                seen.rejected += 1
        finally:
            bound.release()

    start = loop.time()
    for (offset, conv, _), (body, signature) in zip(schedule.sends, bodies, strict=True):
        if (delay := start + offset - loop.time()) > 0:
            await asyncio.sleep(delay)
        await bound.acquire()
        tasks.append(asyncio.create_task(post(conv, body, signature)))
    await asyncio.gather(*tasks)


class ReplyDesk:
    """Reads new digests off the sink and answers the chosen ones through the reply front,
    as a seller's mail server would (a few connections, each one transaction at a time)."""

    def __init__(
        self,
        sink: SinkState,
        schedule: Schedule,
        window_s: float,
        inbound_port: int,
        token_keys: str,
        seen: Observed,
    ) -> None:
        self.sink, self.schedule, self.window_s = sink, schedule, window_s
        self.inbound_port, self.seen = inbound_port, seen
        self.keys = parse_keys(token_keys)
        self.index = {conv: c for c, (_, conv) in enumerate(schedule.conversations)}
        self.cursor = len(sink.mails)
        self.first_mail = self.cursor
        self.answered: set[int] = set()
        self.queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()

    def conversation_of(self, reply_to: str) -> int | None:
        local = reply_to.rpartition("<")[2].partition("@")[0]
        try:
            token = verify_token(local, self.keys, now_s=time.time())
        except TokenError:
            return None
        return self.index.get(token.conversation_id)

    async def watch(self) -> None:
        while True:
            while self.cursor < len(self.sink.mails):
                n, mail = self.cursor, self.sink.mails[self.cursor]
                self.cursor += 1
                conv = self.conversation_of(mail.summary.reply_to)
                if conv is None:
                    continue
                if mail.summary.notice:
                    self.seen.notices.append(mail.summary.notice)
                    continue
                if conv in self.seen.digested:
                    self.seen.extra_digests.append(f"{n}: {mail.summary.subject}")
                self.seen.digests.append(mail.received_at)
                self.seen.digested.add(conv)
                last = self.seen.last_accepted.get(conv)
                if last is not None and mail.received_at >= last:
                    self.seen.digest_latency.append(
                        (mail.received_at, mail.received_at - (last + self.window_s))
                    )
                if conv in self.schedule.replied and conv not in self.answered:
                    self.answered.add(conv)
                    self.queue.put_nowait((conv, n))
            await asyncio.sleep(0.05)

    async def answer(self) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=self.inbound_port, timeout=60)
        while True:
            conv, n = await self.queue.get()
            reply = gmail_style_reply(
                self.sink.mails[n].message, f"Yes, it is wool. Ships today ({conv}).", SELLER
            )
            try:
                if not client.is_connected:
                    await client.connect()
                await client.send_message(reply)
            except aiosmtplib.SMTPException:
                self.seen.reply_errors += 1
                client.close()
            else:
                self.seen.replies[conv] = time.time()

    def duplicates(self) -> int:
        """Extra copies of this run's digests at the sink (same Message-ID)."""
        return sum(
            len([n for n in ns if n >= self.first_mail]) - 1
            for ns in self.sink.duplicates().values()
            if any(n >= self.first_mail for n in ns)
        )


def collect_parts(sandbox: SandboxState, schedule: Schedule, seen: Observed) -> int:
    """Reply parts the buyers see now; records their times and latencies once."""
    seen.parts.clear()
    seen.part_latency.clear()
    for c in schedule.replied:
        received = sandbox.buyer_view.get(schedule.conversations[c][1], [])
        for part in received:
            seen.parts.append(part["received_at"])
        if received and c in seen.replies:
            first = received[0]["received_at"]
            seen.part_latency.append((first, first - seen.replies[c]))
    return len(seen.parts)


async def stop_tasks(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel until every task is done: aiosmtplib can swallow a cancellation that lands
    inside a send, and the task would then go on waiting on its queue."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)


async def wait_for(done: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        await asyncio.sleep(0.25)


@dataclass
class Bench:
    args: argparse.Namespace
    cfg: StackDefaults
    bootstrap: str
    broker_pids: list[int]
    ports: Ports
    env: dict[str, str]
    services: ServiceProcesses
    platforms: Platforms
    http: httpx.AsyncClient
    tmp: Path
    key_file: str
    digest_file: Path
    bare_sink: SinkState
    bare_sink_port: int

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sandbox}"

    @property
    def sandbox(self) -> SandboxState:
        return self.platforms.sandbox_app.state.sandbox  # type: ignore[attr-defined, no-any-return]

    def stack_cpu(self) -> dict[str, float]:
        return {name: tree_cpu_seconds(proc.pid) for name, proc in self.services.procs.items()}

    def broker_cpu(self) -> float:
        return sum(tree_cpu_seconds(pid) for pid in self.broker_pids)

    def schedule(self, run: int) -> Schedule:
        return Schedule.make(
            workload(self.args.shops, self.args.conversations),
            self.args.messages,
            self.args.seconds,
            self.args.reply_share,
        )

    async def stack_phase(
        self, run: int, schedule: Schedule
    ) -> tuple[Observed, dict[str, float], int, float, float]:
        await onboard(self.bootstrap, {s for s, _ in schedule.conversations})
        await open_conversations(self.http, self.sandbox_url, schedule.conversations)
        await asyncio.sleep(SETTINGS_APPLY_S)
        bodies = webhook_bodies(schedule, self.cfg, run)
        seen = Observed()
        desk = ReplyDesk(
            self.platforms.sink,
            schedule,
            self.args.window,
            self.ports.inbound_smtp,
            self.env.get("BRIDGE_TOKEN_KEYS", "1:dev-only-token-key-change-me"),
            seen,
        )
        duplicates_before = len(self.sandbox.duplicates)
        workers = [asyncio.create_task(desk.watch())] + [
            asyncio.create_task(desk.answer()) for _ in range(REPLY_CONNECTIONS)
        ]
        cpu0, broker0, own0 = self.stack_cpu(), self.broker_cpu(), process_cpu_seconds(os.getpid())
        try:
            await drive(
                self.http,
                f"http://127.0.0.1:{self.ports.ingest}/webhooks/tiktok",
                schedule,
                bodies,
                seen,
            )
            await wait_for(
                lambda: (
                    len(
                        {
                            desk.conversation_of(m.summary.reply_to)
                            for m in self.platforms.sink.mails[desk.first_mail :]
                        }
                        - {None}
                    )
                    >= len(seen.last_accepted)
                ),
                DRAIN_S,
            )
            await wait_for(
                lambda: (
                    collect_parts(self.sandbox, schedule, seen) >= len(seen.replies)
                    and desk.queue.empty()
                ),
                DRAIN_S,
            )
        finally:
            await stop_tasks(workers)
        cpu1 = self.stack_cpu()
        cpu = {name: cpu1[name] - cpu0.get(name, 0.0) for name in cpu1}
        broker = self.broker_cpu() - broker0
        own = process_cpu_seconds(os.getpid()) - own0
        collect_parts(self.sandbox, schedule, seen)
        part_duplicates = len(self.sandbox.duplicates) - duplicates_before
        seen.digests.sort()
        self._digest_duplicates = desk.duplicates()
        return seen, cpu, part_duplicates, broker, own

    async def bare_phase(self, run: int, schedule: Schedule) -> tuple[Observed, float, float]:
        bare = Schedule(
            workload(self.args.shops, self.args.conversations), schedule.sends, schedule.replied
        )
        await open_conversations(self.http, self.sandbox_url, bare.conversations)
        tag = uuid.uuid4().hex[:8]
        topics = [
            TopicSpec(f"bench.bare.events.{tag}", CHAT_EVENTS.partitions),
            TopicSpec(f"bench.bare.digests.{tag}", CHAT_EVENTS.partitions),
        ]
        await ensure_topics(self.bootstrap, topics)
        port = free_port()
        config = {
            "bootstrap": self.bootstrap,
            "events_topic": topics[0].name,
            "digests_topic": topics[1].name,
            "group": f"bench-bare-{tag}",
            "http_port": port,
            "smtp_port": self.bare_sink_port,
            "connections": self.cfg.smtp_pool_size,
            "messages": self.args.messages,
            "digest_file": str(self.digest_file),
            "sandbox": self.sandbox_url,
            "app_key": self.cfg.platform_app_key,
            "app_secret": self.cfg.platform_app_secret.get_secret_value(),
            "access_token": self.env.get("BRIDGE_PLATFORM_ACCESS_TOKEN", "sandbox-access-token"),
            "replied": [bare.conversations[c][1] for c in bare.replied],
        }
        config_file = self.tmp / f"bare-{tag}.json"
        config_file.write_text(json.dumps(config))
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / "bare_chain.py"), str(config_file)],
            stdout=subprocess.PIPE,
            stderr=open(self.tmp / f"bare-{tag}.log", "wb"),
        )  # noqa: SIM115
        seen = Observed()
        try:
            assert proc.stdout is not None
            ready = await asyncio.to_thread(proc.stdout.readline)
            if ready.strip() != b"ready":
                raise RuntimeError(f"bare chain did not start: see {self.tmp}/bare-{tag}.log")
            # Warm: the consumers join their groups before the clock starts.
            await asyncio.sleep(3.0)
            bodies = webhook_bodies(bare, self.cfg, 1000 + run)
            mails0 = len(self.bare_sink.mails)
            cpu0, broker0 = tree_cpu_seconds(proc.pid), self.broker_cpu()
            await drive(self.http, f"http://127.0.0.1:{port}/webhooks/tiktok", bare, bodies, seen)
            await wait_for(
                lambda: (
                    len(self.bare_sink.mails) - mails0 >= len(seen.last_accepted)
                    and collect_parts(self.sandbox, bare, seen) >= len(bare.replied)
                ),
                DRAIN_S,
            )
            cpu, broker = tree_cpu_seconds(proc.pid) - cpu0, self.broker_cpu() - broker0
            seen.digests = [m.received_at for m in self.bare_sink.mails[mails0:]]
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 10)
        return seen, cpu, broker

    async def relay_phase(self, run: int) -> tuple[float, float]:
        """Mails/s of the mailer's loop and of a bare aiosmtplib loop on a 50-100 ms relay."""
        port = free_port()
        relay = start_relay_process(port, RELAY_DELAY_MS)
        try:
            conns = self.cfg.smtp_pool_size
            bare = await bare_loop(port, self.digest_file.read_bytes(), RELAY_MAILS, conns)
            mailer = await mailer_run(
                self.bootstrap, port, RELAY_MAILS, conns, self.key_file, 10_000 + run
            )
        finally:
            relay.terminate()
            await asyncio.to_thread(relay.wait, 10)
        return mailer.rate, bare.rate

    async def run_once(self, run: int) -> RunResult:
        schedule = self.schedule(run)
        stack, cpu, part_dups, broker, own = await self.stack_phase(run, schedule)
        bare, bare_cpu, bare_broker = await self.bare_phase(run, schedule)
        accepted = len(stack.accepted)
        stack_cpu = cpu_per_thousand(cpu, accepted)
        bare_per_1k = bare_cpu / max(len(bare.accepted), 1) * 1000
        start = min(stack.accepted, default=time.time())
        end = max([*stack.digests, *stack.parts, start])
        seconds = int(end - start) + 1
        figures = {
            "offered_msgs_per_s": len(schedule.sends) / self.args.seconds,
            "ingest_msgs_per_s": rate(stack.accepted),
            "digests_per_s": rate(stack.digests),
            "replies_per_s": rate(sorted(stack.replies.values())),
            "parts_per_s": rate(stack.parts),
            "rejected_webhooks": float(stack.rejected),
            "digests_complete": len(stack.digested) / max(len(stack.last_accepted), 1),
            "parts_complete": len(stack.parts) / max(len(stack.replies), 1),
            "digest_p50_s": percentile([x for _, x in stack.digest_latency], 50),
            "digest_p99_s": percentile([x for _, x in stack.digest_latency], 99),
            "part_p50_s": percentile([x for _, x in stack.part_latency], 50),
            "part_p99_s": percentile([x for _, x in stack.part_latency], 99),
            "duplicate_digests": float(self._digest_duplicates),
            "duplicate_parts": float(part_dups),
            "reply_errors": float(stack.reply_errors),
            "stack_cpu_s_per_1k": stack_cpu["total"],
            "bare_cpu_s_per_1k": bare_per_1k,
            "cpu_ratio": stack_cpu["total"] / bare_per_1k if bare_per_1k else math.nan,
            "broker_cpu_s_per_1k": broker / max(accepted, 1) * 1000,
            "bare_broker_cpu_s_per_1k": bare_broker / max(len(bare.accepted), 1) * 1000,
            "driver_cpu_s_per_1k": own / max(accepted, 1) * 1000,
            "bare_ingest_msgs_per_s": rate(bare.accepted),
            "bare_digests_per_s": rate(sorted(bare.digests)),
            "split_digests": float(len(stack.extra_digests)),
            "notices": float(len(stack.notices)),
        }
        series: dict[str, list[object]] = {
            STAGES[0]: per_second(stack.accepted, start, seconds),
            STAGES[1]: per_second(stack.digests, start, seconds),
            STAGES[2]: per_second(list(stack.replies.values()), start, seconds),
            STAGES[3]: per_second(stack.parts, start, seconds),
            "digest latency": latency_per_second(stack.digest_latency, start, seconds),
            "part latency": latency_per_second(stack.part_latency, start, seconds),
            "extra digests (first 10)": stack.extra_digests[:10],
            "notices (first 10)": stack.notices[:10],
        }
        memory = {
            name: tree_rss_bytes(proc.pid) / 2**20 for name, proc in self.services.procs.items()
        }
        memory["broker"] = sum(tree_rss_bytes(pid) for pid in self.broker_pids) / 2**20
        memory["bench driver + sandbox + sink"] = process_rss_bytes(os.getpid()) / 2**20
        print(
            f"run {run}: {accepted} messages accepted, {len(stack.digests)} digests, "
            f"{len(stack.replies)} replies, {len(stack.parts)} parts; stack CPU "
            f"{stack_cpu['total']:.2f} s/1k vs bare {bare_per_1k:.2f} s/1k",
            flush=True,
        )
        return RunResult(figures, series, memory, {"stack": stack_cpu})


def load_summary() -> str:
    """The machine's load while the bench ran (it is shared): load averages and cores."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} {five:.1f} {fifteen:.1f} on {os.cpu_count()} cores"


async def start_broker(kind: str, tmp: Path) -> tuple[str, list[int], object]:
    if kind == "kafka":
        kafka = KafkaCluster(tmp / "kafka", port=free_port())
        try:
            await kafka.start_with_topics()
        except BaseException:
            kafka.stop()
            raise
        return kafka.bootstrap, kafka.pids, kafka
    broker = EmbeddedBroker(log_path=str(tmp / "broker.log"))
    await broker.start_with_topics()
    return broker.bootstrap, [broker.pid or 0], broker


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--broker", choices=("tansu", "kafka"), default="tansu")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the schedule")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shops", type=int, default=20)
    ap.add_argument("--conversations", type=int, default=600, help="per run")
    ap.add_argument("--messages", type=int, default=3, help="buyer messages per conversation")
    ap.add_argument(
        "--reply-share", type=float, default=0.5, help="share of the digests answered by the seller"
    )
    ap.add_argument("--window", type=float, default=3.0, help="consolidation window (s)")
    ap.add_argument(
        "--out",
        default=str(ROOT / "var" / "bench"),
        help="folder for e2e-BROKER.json and e2e-BROKER.png",
    )
    return ap.parse_args(argv)


def dump_tasks() -> None:
    """On SIGUSR1: where every task of the bench waits (for a run that seems stuck)."""
    for task in asyncio.all_tasks():
        task.print_stack(limit=6, file=sys.stderr)


async def main(args: argparse.Namespace) -> int:
    logging.disable(logging.WARNING)  # the in-process mailer of the relay phase
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    this = asyncio.current_task()
    assert this is not None
    for sig in (signal.SIGINT, signal.SIGTERM):  # stop the stack on the way out
        loop.add_signal_handler(sig, this.cancel)
    tmp = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    bootstrap, broker_pids, broker = await start_broker(args.broker, tmp)
    ports = Ports()
    env = stack_env(
        bootstrap,
        ports,
        window_s=args.window,
        data_dir=tmp,
        extra={"BRIDGE_TICK_INTERVAL_S": "0.1", "BRIDGE_LOG_LEVEL": "WARNING"},
    )
    os.environ["KAFKA_BOOTSTRAP"] = bootstrap
    platforms = await start_platforms(ports, env)
    services = ServiceProcesses(env, tmp / "logs")
    http = httpx.AsyncClient(
        timeout=30, limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
    )
    bare_sink = SinkState()
    bare_port = free_port()
    bare_smtp = await start_sink_smtp(bare_sink, "127.0.0.1", bare_port)
    key_file = fresh_key()
    digest_file = tmp / "digest.eml"
    digest_file.write_bytes(signed_digest(key_file))
    started = datetime.now(UTC)
    load_before = load_summary()
    try:
        services.start_all()
        await wait_healthy(ports.http_ports(), timeout_s=120)
        # The defaults the services run with: the platform's keys, the relay pool's size.
        cfg = StackDefaults()
        bench = Bench(
            args,
            cfg,
            bootstrap,
            broker_pids,
            ports,
            env,
            services,
            platforms,
            http,
            tmp,
            key_file,
            digest_file,
            bare_sink,
            bare_port,
        )
        runs = []
        for run in range(1, args.runs + 1):
            runs.append(await bench.run_once(run))
            # Kept after every run: a bench stopped half-way still leaves its figures.
            write_json(
                Path(args.out) / f"e2e-{args.broker}.json",
                report_json({**vars(args), "partial": True}, runs),
            )
        if dead := services.dead():
            print(f"service(s) exited during the bench: {dead}; logs in {tmp / 'logs'}")
        # The relay phase runs the mailer's loop in this process on mail.digests: the
        # stack's own mailer must be gone, or it would take those digests first.
        services.stop_all()
        for run in runs:
            mailer, bare = await bench.relay_phase(runs.index(run) + 1)
            run.figures.update(
                {
                    "relay_mailer_mails_per_s": mailer,
                    "relay_bare_mails_per_s": bare,
                    "relay_ratio": mailer / bare if bare else math.nan,
                }
            )
    finally:
        services.stop_all()
        await http.aclose()
        bare_smtp.close()
        await platforms.stop()
        broker.stop()  # type: ignore[attr-defined]
    config = {
        **vars(args),
        "date": started.isoformat(timespec="seconds"),
        "load_before": load_before,
        "load_after": load_summary(),
        "offered_msgs": len(bench.schedule(0).sends),
    }
    report = report_json(config, runs)
    out = Path(args.out)
    write_json(out / f"e2e-{args.broker}.json", report)
    summary = median_figures(runs)
    middle = sorted(runs, key=lambda r: r.figures["cpu_ratio"])[len(runs) // 2]
    draw_chart(
        out / f"e2e-{args.broker}.png",
        middle,
        f"bench_e2e on {args.broker}, {started:%Y-%m-%d %H:%M} UTC, "
        f"{config['offered_msgs']} buyer messages in {args.seconds:g} s",
    )
    header = (
        f"\nbench_e2e on {args.broker}: {args.conversations} conversations x "
        f"{args.messages} messages over {args.shops} shops in {args.seconds:g} s, "
        f"replies to {args.reply_share:.0%} of the digests, window {args.window:g} s; "
        f"median of {args.runs} runs\n{load_before} (start), {load_summary()} (end)\n"
    )
    print(table(summary, runs[-1].memory_mib, header))
    print(f"\nwritten: {out / f'e2e-{args.broker}.json'}, {out / f'e2e-{args.broker}.png'}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(main(args))
    except KafkaUnavailable as exc:
        print(f"--broker kafka: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(cli())
