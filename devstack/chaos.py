"""A chaos run: the whole stack under load while its parts are killed and its neighbours
misbehave, judged by :mod:`devstack.chaos_checker` from the outside only.

The run starts a broker (embedded Tansu, one Apache Kafka node, or a three-node cluster),
the sandbox platform, the mail sink and every service under :mod:`devstack.supervisor`
(``replicas`` of each consuming service), onboards ``shops`` shops, then for ``seconds``:

- buyers write ``messages`` messages across ``conversations`` conversations (each
  conversation's next message only after ingest acknowledged the previous one's webhook,
  so the order that went in is known);
- when a conversation's last message reaches the sink, a seeded share of conversations
  gets one or two seller replies (some long enough to be split) through the reply front,
  mailed again until it answers 250;
- at seeded random moments: ``kill -9`` of each service in turn (one replica), the
  supervisor restarting it; on Apache Kafka ``kill -9`` of the broker leading the most
  conversation partitions (the only one on a single node: a whole-cluster outage),
  restarted after a while; the SMTP sink down (listener
  closed, open connections cut); 5xx storms (some after the platform stored the message)
  and 429 storms from the sandbox's send API.

Then faults stop, the run waits for everything owed (or ``drain_s``), and the checker
compares its own record of what went in with the sink's mailbox and the buyers' views.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import aiosmtplib
import httpx
from aiokafka import AIOKafkaClient, AIOKafkaProducer, ConsumerRecord
from aiokafka.structs import TopicPartition
from aiosmtpd.smtp import SMTP
from prometheus_client.parser import text_string_to_metric_families

from devstack.broker import EmbeddedBroker
from devstack.chaos_checker import (
    BUYER_MARKER,
    Counts,
    Digest,
    ReplyMailed,
    buyer_text,
    check_digests,
    check_reply_parts,
    longest_stall,
    parse_digest,
    reply_words,
)
from devstack.kafka import KafkaCluster
from devstack.mail_sink import SinkHandler, gmail_style_reply
from devstack.stack import Platforms, Ports, stack_env, start_platforms, wait_healthy
from devstack.supervisor import Supervisor, stack_specs
from devstack.topic_reader import records_so_far
from shared.codec import decode, encode
from shared.events import ChatEvent, ChatEventKind, MailOutcome, ShopSettings
from shared.events import Digest as DigestEvent
from shared.kafka import ensure_topics
from shared.logging import now_ms
from shared.topics import (
    CHAT_EVENTS,
    CHAT_REPLIES,
    MAIL_DIGESTS,
    MAIL_INBOUND,
    MAIL_OUTCOMES,
    SHOP_SETTINGS,
    TopicSpec,
)

T = TypeVar("T")
BROKERS = ("tansu", "kafka", "kafka-cluster")
# The platform redelivers a webhook for hours; the sandbox's default schedule is seconds.
# A chaos run keeps redelivering for about seven minutes, longer than any restart it causes
# (and than a loaded machine's backlog of pushes).
REDELIVERY_S = (0.5, 1.0, 2.0, 3.0, 5.0, 5.0, 10.0, 10.0, 15.0, 15.0, 20.0, 20.0, *(30.0,) * 10)
PUSH_TIMEOUT_S = 5.0  # the sandbox's wait for ingest's answer to one push
CONVERSATION_TOPICS = (CHAT_EVENTS.name, MAIL_DIGESTS.name, MAIL_INBOUND.name, CHAT_REPLIES.name)
SHORT_REPLY_WORDS = 6
LONG_REPLY_WORDS = 200  # about 5,800 characters: three chat parts
PART_WORDS = 68  # marker words in one 2,000-character part (for the stall estimate only)


@dataclass
class ChaosOptions:
    broker: str = "tansu"
    messages: int = 100_000
    conversations: int = 10_000
    shops: int = 50
    seconds: float = 300.0  # the planned load phase (a slow machine stretches it); faults inside
    window_s: float = 5.0
    replicas: int = 2
    reply_share: float = 0.3
    second_reply_share: float = 0.3
    long_reply_share: float = 0.2
    kills_per_service: int = 1
    sink_down_s: float = 8.0
    storm_s: float = 8.0
    broker_down_s: float = 10.0
    kill_broker: bool | None = None  # None: whenever the run starts Apache Kafka itself
    drain_s: float = 240.0
    concurrency: int = 64
    seed: int = 0
    root: Path = Path("var/chaos")
    bootstrap: str = ""  # an outside broker (no broker faults); overrides ``broker``

    @classmethod
    def short(cls, **overrides: Any) -> ChaosOptions:
        """The CI-sized run (``bench/chaos.py --short`` and tests/e2e/test_chaos.py): a
        minute or two of load with one kill of each service, one replica each."""
        base: dict[str, Any] = {
            "messages": 1200,
            "conversations": 200,
            "shops": 10,
            "seconds": 20.0,
            "window_s": 2.0,
            "replicas": 1,
            "sink_down_s": 3.0,
            "storm_s": 3.0,
            "broker_down_s": 3.0,  # when the run kills a broker (the Kafka leg's)
            "drain_s": 120.0,
            "concurrency": 32,
        }
        return cls(**{**base, **overrides})


@dataclass
class Fault:
    at_s: float
    what: str
    name: str = ""


# The mailer's own measure of the documented duplicate window (mailer/mailer_metrics.py).
OUTCOME_RECORD_METRIC = "bridge_mailer_outcome_record_seconds"
RESENDS_UNKNOWN_METRIC = "bridge_digest_resends_unknown_total"


@dataclass
class MailerWindow:
    """The mailers' own figures for the window between the relay's 250 and the outcome
    record, summed over every mailer process of the run. A process's counters die with
    it, so each mailer is scraped just before the run kills it and once more at the end.
    This is the bridge's word, reported beside the checker's outside count, never in it."""

    records: int = 0  # outcomes recorded after a 250
    seconds_sum: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound -> cumulative
    resends_unknown: int = 0  # digests resent because an earlier attempt left no outcome
    scrapes: int = 0
    scrapes_failed: int = 0

    def add(self, metrics_text: str) -> None:
        """Add one mailer process's ``/metrics`` text."""
        self.scrapes += 1
        for family in text_string_to_metric_families(metrics_text):
            for sample in family.samples:
                if sample.name == f"{OUTCOME_RECORD_METRIC}_count":
                    self.records += int(sample.value)
                elif sample.name == f"{OUTCOME_RECORD_METRIC}_sum":
                    self.seconds_sum += sample.value
                elif sample.name == f"{OUTCOME_RECORD_METRIC}_bucket":
                    bound = float(sample.labels["le"])
                    self.buckets[bound] = self.buckets.get(bound, 0.0) + sample.value
                elif sample.name == RESENDS_UNKNOWN_METRIC:
                    self.resends_unknown += int(sample.value)

    def bound(self, q: float) -> float:
        """The upper bound of the histogram bucket holding the ``q`` quantile (``inf``
        past the last finite bucket; 0 when nothing was recorded)."""
        if not self.records:
            return 0.0
        for upper in sorted(self.buckets):
            if self.buckets[upper] >= q * self.records:
                return upper
        return float("inf")

    def line(self) -> str:
        if not self.records:
            return (
                f"mailers' 250->outcome record window: none recorded "
                f"({self.scrapes} scrapes, {self.scrapes_failed} failed)"
            )
        mean_ms = 1000 * self.seconds_sum / self.records
        return (
            f"mailers' 250->outcome record window: n={self.records} mean={mean_ms:.1f}ms "
            f"p50<={_ms(self.bound(0.5))} p99<={_ms(self.bound(0.99))} "
            f"max<={_ms(self.bound(1.0))}; resent with no outcome: {self.resends_unknown} "
            f"(the mailers' own histogram, scraped before each mailer kill and at the end: "
            f"{self.scrapes} scrapes, {self.scrapes_failed} failed)"
        )


def _ms(seconds: float) -> str:
    return "inf" if seconds == float("inf") else f"{1000 * seconds:g}ms"


@dataclass
class ChaosReport:
    options: dict[str, Any]
    digests: Counts
    reply_parts: Counts
    faults: list[str]
    restarts: dict[str, int]
    not_acknowledged: int  # buyer messages ingest never acknowledged (the platform gave up)
    # Where each lost buyer message was last seen on the topics (read after the checker,
    # to help find the cause; never part of the counts).
    trace: list[str]
    replies_refused: int  # replies the reply front refused with a 5xx
    webhook_answers: dict[str, int]  # what ingest answered the platform's pushes, by status
    load_s: float
    drain_s: float
    mailer_window: MailerWindow = field(default_factory=MailerWindow)
    started_at: str = field(
        default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    )

    @property
    def failed(self) -> bool:
        return self.digests.failed or self.reply_parts.failed or self.not_acknowledged > 0

    def lines(self) -> list[str]:
        d, r = self.digests, self.reply_parts
        return [
            f"digests:     {d.line()} (messages in={d.expected} delivered={d.delivered}"
            f"{f' unexpected={d.unexpected}' if d.unexpected else ''})",
            f"  documented window (same Message-ID sent twice, seen at the sink): "
            f"{d.documented_window}",
            f"  {self.mailer_window.line()}",
            f"reply parts: {r.line()} (reply words in={r.expected} parts delivered="
            f"{r.delivered}{f' unexpected={r.unexpected}' if r.unexpected else ''})",
            f"restarts: {sum(self.restarts.values())} "
            f"({', '.join(f'{k}={v}' for k, v in self.restarts.items() if v)}); "
            f"not acknowledged by ingest: {self.not_acknowledged}; replies refused: "
            f"{self.replies_refused}; load {self.load_s:.0f} s, drain {self.drain_s:.0f} s",
            f"webhook pushes answered: {self.webhook_answers}",
        ]

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failed"] = self.failed
        return out


class SinkSwitch:
    """The mail sink's SMTP listener, which a fault can take down (listener closed and
    open connections cut, as a crashed relay) and bring back on the same port."""

    def __init__(self, platforms: Platforms, port: int) -> None:
        self.platforms = platforms
        self.port = port
        self.sessions: set[SMTP] = set()

    def _protocol(self) -> SMTP:
        session = SMTP(
            SinkHandler(self.platforms.sink),
            ident="bridge mail sink",
            data_size_limit=60 * 1024 * 1024,
        )
        self.sessions.add(session)
        return session

    async def up(self) -> None:
        loop = asyncio.get_running_loop()
        self.platforms.smtp_server = await loop.create_server(
            self._protocol, "127.0.0.1", self.port
        )

    async def down(self) -> None:
        self.platforms.smtp_server.close()
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.abort()  # type: ignore[attr-defined]
        self.sessions.clear()
        await self.platforms.smtp_server.wait_closed()


class ChaosRun:
    def __init__(self, opts: ChaosOptions, log: Callable[[str], None]) -> None:
        self.opts = opts
        self.log = log
        self.root = Path(opts.root).resolve()
        self.rng = random.Random(opts.seed)
        base = 5_100_000_000_000_000 + self.rng.randrange(10**15) * 100
        self.convs = [str(base + i) for i in range(opts.conversations)]
        shop_base = 7_200_000_000_000_000_000 + self.rng.randrange(10**15) * 1000
        self.shops = [str(shop_base + i) for i in range(max(1, opts.shops))]
        self.per_conv = {
            c: opts.messages // opts.conversations
            + (1 if i < opts.messages % opts.conversations else 0)
            for i, c in enumerate(self.convs)
        }
        self.acked: dict[str, int] = {c: 0 for c in self.convs}  # messages ingest acknowledged
        self.posted: dict[str, int] = {c: 0 for c in self.convs}
        self.posted_at: list[float] = []  # when each acknowledged message was acknowledged
        self.ack_ids: set[str] = set()
        self.ack_waiters: dict[str, asyncio.Future[None]] = {}
        self.webhook_seen = 0
        self.mails: list[Digest] = []
        self.delivered: set[tuple[str, int]] = set()
        self.replied: set[str] = set()
        self.replies: list[ReplyMailed] = []
        self.reply_tasks: set[asyncio.Task[None]] = set()
        self.replies_refused = 0
        self.replies_pending = 0
        self.fault_log: list[str] = []
        self.samples_digest: list[tuple[float, int, int]] = []
        self.samples_parts: list[tuple[float, int, int]] = []
        self.t0 = 0.0
        self.pending_restores: list[asyncio.Task[None]] = []
        self.bootstrap = ""
        self.mailer_window = MailerWindow()

    # --- set-up -----------------------------------------------------------------------

    def shop_of(self, conv: str) -> str:
        return self.shops[int(conv) % len(self.shops)]

    def seller_of(self, shop: str) -> str:
        return f"seller-{shop[-6:]}@shop.localhost"

    async def onboard(self, bootstrap: str) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for shop in self.shops:
                email = self.seller_of(shop)
                record = ShopSettings(
                    shop_id=shop,
                    alerts_enabled=True,
                    destination_email=email,
                    authorized_senders=(email,),
                    updated_at_ms=now_ms(),
                    updated_by="chaos",
                )
                await producer.send(SHOP_SETTINGS.name, encode(record), key=shop.encode())
            await producer.flush()
        finally:
            await producer.stop()

    async def probe_shops(
        self, platforms: Platforms, sandbox_url: str, timeout_s: float = 180.0
    ) -> None:
        """One buyer message per shop, then wait for each one's digest at the sink: the
        load starts only once every shop is onboarded as the whole stack sees it (a
        message that arrives before a service applied the shop's settings record is not
        emailed, by design: alerts are opt-in)."""
        probes = {shop: str(5_000_000_000_000_000 + n) for n, shop in enumerate(self.shops)}
        deadline = time.monotonic() + timeout_s
        waiting = dict(probes)
        seen = 0
        async with _platform_client(platforms) as http:
            while waiting:
                # Again every round until seen: a probe that came too early is not emailed.
                for shop, conv in waiting.items():
                    resp = await http.post(
                        f"{sandbox_url}/sandbox/buyer_messages",
                        json={"shop_id": shop, "conversation_id": conv, "text": f"probe-{shop}"},
                    )
                    resp.raise_for_status()
                until = time.monotonic() + self.opts.window_s + 10
                while waiting and time.monotonic() < until:
                    for stored in platforms.sink.mails[seen:]:
                        body = stored.message.get_body(("plain",))
                        text = body.get_content() if body is not None else ""
                        waiting = {s: c for s, c in waiting.items() if f"probe-{s}" not in text}
                    seen = len(platforms.sink.mails)
                    await asyncio.sleep(0.5)
                if waiting and time.monotonic() > deadline:
                    raise TimeoutError(
                        f"no probe digest for {len(waiting)} shops in {timeout_s:g} s"
                    )
        self.log("chaos: every shop's probe digest arrived; load starts")

    def message_times(self) -> dict[str, list[float]]:
        """When each conversation's messages are due (seconds into the load phase): some
        close together (one digest), some a window apart (the next digest)."""
        span = self.opts.seconds
        w = self.opts.window_s
        out = {}
        for conv in self.convs:
            t = self.rng.uniform(0, span * 0.6)
            times = []
            for _ in range(self.per_conv[conv]):
                times.append(min(t, span))
                t += (
                    self.rng.uniform(0.05, w * 0.5)
                    if self.rng.random() < 0.6
                    else self.rng.uniform(w + 0.5, 2 * w + 1)
                )
            out[conv] = times
        return out

    def fault_plan(self, names: list[str], kafka: KafkaCluster | None) -> list[Fault]:
        o = self.opts
        plan: list[Fault] = []
        services: dict[str, list[str]] = {}
        for name in names:
            services.setdefault(name.rsplit("-", 1)[0] if name[-1].isdigit() else name, []).append(
                name
            )
        kills = []
        for _ in range(o.kills_per_service):
            order = sorted(services)
            self.rng.shuffle(order)
            kills += [self.rng.choice(services[s]) for s in order]
        moments = sorted(self.rng.uniform(0.1, 0.85) * o.seconds for _ in kills)
        plan += [Fault(t, "kill", name) for t, name in zip(moments, kills, strict=True)]
        plan.append(Fault(self.rng.uniform(0.2, 0.7) * o.seconds, "sink_down"))
        plan.append(Fault(self.rng.uniform(0.1, 0.7) * o.seconds, "storm_5xx"))
        plan.append(Fault(self.rng.uniform(0.1, 0.7) * o.seconds, "storm_429"))
        kill_broker = o.kill_broker if o.kill_broker is not None else kafka is not None
        if kill_broker and kafka is not None:
            plan.append(Fault(self.rng.uniform(0.3, 0.6) * o.seconds, "broker_kill"))
        return sorted(plan, key=lambda f: f.at_s)

    # --- the run ----------------------------------------------------------------------

    def note(self, line: str) -> None:
        stamped = f"chaos t={time.monotonic() - self.t0:6.1f}s: {line}"
        self.fault_log.append(stamped)
        self.log(stamped)

    async def run(self) -> ChaosReport:
        o = self.opts
        root = self.root
        (root / "data").mkdir(parents=True, exist_ok=True)
        logs = root / "logs"
        broker: EmbeddedBroker | KafkaCluster | None = None
        kafka: KafkaCluster | None = None
        if o.bootstrap:
            bootstrap = o.bootstrap
            await ensure_topics(bootstrap)
        elif o.broker == "tansu":
            broker = EmbeddedBroker(log_path=str(root / "broker.log"))
            await broker.start_with_topics()
            bootstrap = broker.bootstrap
        else:
            kafka = broker = KafkaCluster(
                root / o.broker, nodes=3 if o.broker == "kafka-cluster" else 1
            )
            try:
                await kafka.start_with_topics()
            except BaseException:
                kafka.stop()
                raise
            bootstrap = kafka.bootstrap
        self.log(
            f"chaos: seed={o.seed} broker={o.broker if not o.bootstrap else bootstrap} "
            f"messages={o.messages} conversations={o.conversations} shops={len(self.shops)} "
            f"seconds={o.seconds:g} replicas={o.replicas} window={o.window_s:g}s "
            f"logs in {logs}"
        )
        self.bootstrap = bootstrap
        ports = Ports()
        env = stack_env(bootstrap, ports, window_s=o.window_s, data_dir=root / "data")
        platforms: Platforms | None = None
        supervisor: Supervisor | None = None
        stop = asyncio.Event()
        try:
            platforms = await start_platforms(ports, env, redelivery_delays_s=REDELIVERY_S)
            sink = SinkSwitch(platforms, ports.sink_smtp)
            platforms.smtp_server.close()  # replaced by one whose sessions a fault can cut
            await platforms.smtp_server.wait_closed()
            await sink.up()
            supervisor = Supervisor(stack_specs(env, o.replicas, root / "data"), logs, log=self.log)
            supervisor.start_all()
            watching = asyncio.create_task(supervisor.run(stop))
            await wait_healthy(
                {s: supervisor.spec(s).http_port for s in supervisor.names}, timeout_s=180
            )
            await self.onboard(bootstrap)
            await self.probe_shops(platforms, f"http://127.0.0.1:{ports.sandbox}")
            report = await self._load_and_check(
                platforms, sink, supervisor, kafka, f"http://127.0.0.1:{ports.sandbox}", ports
            )
            stop.set()
            await watching
            return report
        finally:
            stop.set()
            if supervisor is not None:
                supervisor.stop_all()
            if platforms is not None:
                await platforms.stop()
            if broker is not None:
                broker.stop()

    async def _load_and_check(
        self,
        platforms: Platforms,
        sink: SinkSwitch,
        supervisor: Supervisor,
        kafka: KafkaCluster | None,
        sandbox_url: str,
        ports: Ports,
    ) -> ChaosReport:
        o = self.opts
        sandbox = platforms.sandbox_app.state.sandbox  # type: ignore[attr-defined]
        base_faults = {"webhook_redeliver_rate": 0.01}
        async with _platform_client(platforms) as http:
            await http.post(f"{sandbox_url}/sandbox/faults", json=base_faults)
            times = self.message_times()
            plan = self.fault_plan(supervisor.names, kafka)
            self.t0 = time.monotonic()
            sem = asyncio.Semaphore(o.concurrency)
            done = asyncio.Event()
            watcher = asyncio.create_task(self._watch(platforms, sandbox, ports, done))
            faults = asyncio.create_task(
                self._faults(plan, supervisor, kafka, sink, http, sandbox_url, base_faults)
            )
            await asyncio.gather(
                *(self._conversation(http, sandbox_url, c, times[c], sem) for c in self.convs)
            )
            load_s = time.monotonic() - self.t0
            await faults
            self.note("load done; faults over, draining")
            drain_start = time.monotonic()
            while time.monotonic() - drain_start < o.drain_s:
                if self._all_in(sandbox):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(min(5.0, o.window_s + 2))  # late duplicates show up too
            done.set()
            await watcher
            for name in supervisor.names:
                if name.startswith("mailer"):
                    await self._scrape_mailer(supervisor, name)
            for task in list(self.reply_tasks):
                task.cancel()
            drained = time.monotonic() - drain_start
        sent = {c: n for c, n in self.acked.items() if n}
        digests = check_digests(sent, self.mails, posted=self.posted)
        digests.longest_stall_s = longest_stall(self.samples_digest)
        parts = check_reply_parts(self.replies, _views(sandbox))
        parts.longest_stall_s = longest_stall(self.samples_parts)
        not_acked = sum(self.posted.values()) - sum(self.acked.values())
        opts = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(o).items()}
        trace = []
        if digests.lost:
            try:
                trace = await trace_lost(self.bootstrap, digests.examples.get("lost", []))
            except Exception as exc:  # a diagnosis aid only
                trace = [f"trace failed: {exc!r}"]
            trace += await _consolidator_drops(supervisor)
            for line in trace:
                self.log(f"trace: {line}")
        answers = Counter(str(e["status"]) for e in sandbox.webhook_log)  # "error ReadTimeout"
        return ChaosReport(
            opts,
            digests,
            parts,
            self.fault_log,
            supervisor.restarts(),
            not_acked,
            trace,
            self.replies_refused,
            dict(answers),
            load_s,
            drained,
            self.mailer_window,
        )

    def _all_in(self, sandbox: Any) -> bool:
        """Every acknowledged message at the sink and every accepted reply at its buyer.
        Each message by name: a count would be met early by messages whose
        acknowledgement the run never saw, which may arrive too."""
        if self.replies_pending:
            return False
        for conv, n in self.acked.items():
            if any((conv, seq) not in self.delivered for seq in range(n)):
                return False
        return check_reply_parts(self.replies, _views(sandbox)).lost == 0

    async def _conversation(
        self,
        http: httpx.AsyncClient,
        url: str,
        conv: str,
        times: list[float],
        sem: asyncio.Semaphore,
    ) -> None:
        shop = self.shop_of(conv)
        for seq, at in enumerate(times):
            delay = self.t0 + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            async with sem:
                resp = await http.post(
                    f"{url}/sandbox/buyer_messages",
                    json={
                        "shop_id": shop,
                        "conversation_id": conv,
                        "buyer_name": f"Buyer {conv[-4:]}",
                        "buyer_id": f"buyer-{conv}",
                        "text": buyer_text(conv, seq),
                    },
                )
                resp.raise_for_status()
            self.posted[conv] += 1
            notification = resp.json()["notification_id"]
            # The next message only once ingest has acknowledged this one: what went in,
            # went in in this order. Woken by the watcher (ten thousand conversations
            # polling would starve the loop the sandbox and the sink share).
            if notification not in self.ack_ids:
                acked = asyncio.get_running_loop().create_future()
                self.ack_waiters[notification] = acked
                try:
                    # As long as the platform pushes it: a machine slower than the plan
                    # stretches the load phase instead of leaving messages unsent.
                    await asyncio.wait_for(acked, sum(REDELIVERY_S) + PUSH_TIMEOUT_S)
                except TimeoutError:
                    return
                finally:
                    self.ack_waiters.pop(notification, None)
            self.acked[conv] += 1

    async def _watch(
        self, platforms: Platforms, sandbox: Any, ports: Ports, done: asyncio.Event
    ) -> None:
        """Every half second: new webhook acknowledgements, new mails at the sink (replies
        to the last digest of a chosen conversation), progress samples."""
        mail_seen = 0
        posted_seen = 0
        while True:
            log = sandbox.webhook_log
            for entry in log[self.webhook_seen :]:
                if isinstance(entry["status"], int) and 200 <= entry["status"] < 300:
                    self.ack_ids.add(entry["id"])
                    waiter = self.ack_waiters.get(entry["id"])
                    if waiter is not None and not waiter.done():
                        waiter.set_result(None)
            self.webhook_seen = len(log)
            mails = platforms.sink.mails
            for stored in mails[mail_seen:]:
                digest = parse_digest(stored.raw)
                self.mails.append(digest)
                for conv, seq in digest.markers:
                    self.delivered.add((conv, seq))
                    if seq == self.per_conv.get(conv, 0) - 1:
                        self._maybe_reply(conv, stored.raw, ports)
            mail_seen = len(mails)
            now = time.monotonic()
            acked = sum(self.acked.values())
            while posted_seen < acked:
                self.posted_at.append(now)
                posted_seen += 1
            due = bisect.bisect_left(self.posted_at, now - self.opts.window_s - 1)
            self.samples_digest.append(
                (now - self.t0, len(self.delivered), due - len(self.delivered))
            )
            parts = sum(len(v) for v in sandbox.buyer_view.values())
            owed = sum(-(-r.words // PART_WORDS) for r in self.replies) - parts
            self.samples_parts.append((now - self.t0, parts, owed + self.replies_pending))
            if done.is_set():
                return
            await asyncio.sleep(0.5)

    def _maybe_reply(self, conv: str, raw: bytes, ports: Ports) -> None:
        if conv in self.replied:
            return
        self.replied.add(conv)
        rng = random.Random(f"{self.opts.seed}:{conv}")
        if rng.random() >= self.opts.reply_share:
            return
        count = 2 if rng.random() < self.opts.second_reply_share else 1
        sizes = [
            LONG_REPLY_WORDS if rng.random() < self.opts.long_reply_share else SHORT_REPLY_WORDS
            for _ in range(count)
        ]
        self.replies_pending += 1
        task = asyncio.create_task(self._reply(conv, raw, sizes, ports))
        self.reply_tasks.add(task)
        task.add_done_callback(self.reply_tasks.discard)

    async def _reply(self, conv: str, raw: bytes, sizes: list[int], ports: Ports) -> None:
        original = BytesParser(policy=policy.default).parsebytes(raw)
        seller = self.seller_of(self.shop_of(conv))
        try:
            for reply_no, words in enumerate(sizes):
                reply = gmail_style_reply(
                    original, " ".join(reply_words(conv, reply_no, words)), seller
                )  # type: ignore[arg-type]
                if not await self._mail_until_accepted(reply, ports.inbound_smtp):
                    self.replies_refused += 1
                    return
                self.replies.append(ReplyMailed(conv, reply_no, words))
        finally:
            self.replies_pending -= 1

    async def _mail_until_accepted(self, reply: Any, port: int) -> bool:
        """The same mail (same Message-ID) until the front answers 250; False on a 5xx."""
        delay = 0.5
        while True:
            try:
                await aiosmtplib.send(reply, hostname="127.0.0.1", port=port, timeout=30)
                return True
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code >= 500:
                    self.note(f"reply refused: {exc.code} {exc.message}")
                    return False
            except (aiosmtplib.SMTPException, OSError):
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def _faults(
        self,
        plan: list[Fault],
        supervisor: Supervisor,
        kafka: KafkaCluster | None,
        sink: SinkSwitch,
        http: httpx.AsyncClient,
        url: str,
        base_faults: dict[str, float],
    ) -> None:
        o = self.opts
        for fault in plan:
            delay = self.t0 + fault.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if fault.what == "kill":
                if fault.name.startswith("mailer"):  # its counters die with it
                    await self._scrape_mailer(supervisor, fault.name)
                pid = supervisor.kill(fault.name)
                self.note(f"kill -9 {fault.name} (pid {pid})")
            elif fault.what == "sink_down":
                await sink.down()
                self.note(f"SMTP sink down for {o.sink_down_s:g} s")
                await self._later(o.sink_down_s, sink.up(), "SMTP sink up")
            elif fault.what in ("storm_5xx", "storm_429"):
                storm = (
                    {"rate_5xx": 0.5, "rate_5xx_after_commit": 0.2}
                    if fault.what == "storm_5xx"
                    else {"rate_429": 0.6, "retry_after_s": 0.5}
                )
                await http.post(f"{url}/sandbox/faults", json={**base_faults, **storm})
                self.note(f"sandbox {fault.what[6:]} storm for {o.storm_s:g} s: {storm}")
                await self._later(
                    o.storm_s,
                    http.post(f"{url}/sandbox/faults", json=base_faults),
                    "sandbox storm over",
                )
            elif fault.what == "broker_kill" and kafka is not None:
                node = await busiest_leader(kafka.bootstrap)
                pid = kafka.kill_node(node)
                self.note(
                    f"kill -9 Kafka broker {node} (pid {pid}), leader of the most "
                    f"conversation partitions; back in {o.broker_down_s:g} s"
                )
                await self._later(o.broker_down_s, _restart(kafka), f"Kafka broker {node} up")
        await asyncio.gather(*self.pending_restores)

    async def _scrape_mailer(self, supervisor: Supervisor, name: str) -> None:
        """Add mailer ``name``'s window figures to the run's (a failed scrape is counted)."""
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:  # a busy mailer answers late
                resp = await http.get(f"http://127.0.0.1:{supervisor.spec(name).http_port}/metrics")
                resp.raise_for_status()
        except httpx.HTTPError as exc:
            self.mailer_window.scrapes_failed += 1
            self.note(f"{name} metrics not scraped: {exc!r}")
            return
        self.mailer_window.add(resp.text)

    async def _later(self, after_s: float, action: Awaitable[Any], what: str) -> None:
        async def restore() -> None:
            await asyncio.sleep(after_s)
            await action
            self.note(what)

        self.pending_restores.append(asyncio.create_task(restore()))


def _platform_client(platforms: Platforms) -> httpx.AsyncClient:
    """The buyers' side of the sandbox, called in-process (the sandbox runs in this event
    loop anyway): no loopback connection to race its keep-alive timeout, less CPU."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=platforms.sandbox_app),  # type: ignore[arg-type]
        timeout=30.0,
    )


def _views(sandbox: Any) -> dict[str, list[str]]:
    """What each buyer received: the text of each part, in order."""
    return {
        c: [str(p["content"].get("content", "")) for p in parts]
        for c, parts in sandbox.buyer_view.items()
    }


async def _restart(kafka: KafkaCluster) -> None:
    kafka.start()


async def busiest_leader(bootstrap: str) -> int:
    """The broker that leads the most partitions of the conversation topics (from the
    cluster metadata, as an admin client sees it)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.force_metadata_update()
        leaders: dict[int, int] = {}
        for topic in CONVERSATION_TOPICS:
            for partition in client.cluster.partitions_for_topic(topic) or ():
                leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
                if leader is not None and leader >= 0:
                    leaders[leader] = leaders.get(leader, 0) + 1
    finally:
        await client.close()
    return max(leaders, key=lambda n: leaders[n])


async def _decoded(
    bootstrap: str, topic: TopicSpec, kind: type[T]
) -> list[tuple[ConsumerRecord, T]]:
    """Every record of ``topic`` so far that decodes as ``kind`` (tombstones and others
    skipped)."""
    out = []
    for recs in (
        await records_so_far(bootstrap, topic.name, topic.partitions, timeout_s=60)
    ).values():
        for rec in recs:
            if rec.value is None:
                continue
            try:
                out.append((rec, decode(kind, rec.value)))
            except Exception:
                continue
    return out


async def trace_lost(bootstrap: str, markers: list[str]) -> list[str]:
    """For each lost buyer marker (``bm-CONV-SEQ``): was it on ``chat.events``, in which
    digests on ``mail.digests``, and what outcome did the mailer record for those."""
    wanted = set(markers)
    events: dict[str, list[str]] = {m: [] for m in wanted}
    digests: dict[str, list[str]] = {m: [] for m in wanted}

    def named(text: str) -> list[str]:
        return [n for c, q in BUYER_MARKER.findall(text) if (n := f"bm-{c}-{q}") in wanted]

    for rec, ev in await _decoded(bootstrap, CHAT_EVENTS, ChatEvent):
        if ev.kind == ChatEventKind.BUYER_MESSAGE and ev.content is not None:
            for name in named(ev.content.text):
                events[name].append(f"p{rec.partition}@{rec.offset} id={ev.message_id}")
    for _rec, digest in await _decoded(bootstrap, MAIL_DIGESTS, DigestEvent):
        for msg in digest.messages:
            for name in named(msg.content.text):
                digests[name].append(digest.digest_id)
    outcomes: dict[str, list[str]] = {}
    for _rec, outcome in await _decoded(bootstrap, MAIL_OUTCOMES, MailOutcome):
        outcomes.setdefault(outcome.digest_id, []).append(
            f"{outcome.status}{f' {outcome.reason[:80]}' if outcome.reason else ''}"
        )
    return [
        f"{m}: chat.events {events[m] or 'absent'}; mail.digests "
        f"{[(d, outcomes.get(d, ['no outcome'])) for d in digests[m]] or 'absent'}"
        for m in markers
    ]


async def _consolidator_drops(supervisor: Supervisor) -> list[str]:
    """The consolidators' own count of messages not emailed (since their last start)."""
    out = []
    async with httpx.AsyncClient(timeout=5.0) as http:
        for name in supervisor.names:
            if name.startswith("consolidator"):
                try:
                    text = (
                        await http.get(
                            f"http://127.0.0.1:{supervisor.spec(name).http_port}/metrics"
                        )
                    ).text
                except httpx.HTTPError as exc:
                    out.append(f"{name} metrics: {exc!r}")
                    continue
                out += [
                    f"{name}: {line}"
                    for line in text.splitlines()
                    if "not_emailed" in line and not line.startswith("#")
                ]
    return out


async def run_chaos(opts: ChaosOptions, log: Callable[[str], None] = print) -> ChaosReport:
    report = await ChaosRun(opts, log).run()
    for line in report.lines():
        log(line)
    return report


def write_report(report: ChaosReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report.as_dict(), indent=1, default=str))
