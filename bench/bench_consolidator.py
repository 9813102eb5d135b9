"""Consolidator bench: one command, prints a table (naive faust agent | batched design | raw loop).

    .venv/bin/python bench/bench_consolidator.py [--events 60000] [--pending 100000]

On one embedded Tansu broker, in one run:
* throughput: the same pre-loaded buyer events consumed by (a) a raw aiokafka
  consume -> orjson -> produce loop, (b) a naive per-event faust agent, (c) the
  consolidator (``python -m consolidator worker``); events/s counted from the
  first to the last record handled (startup and group join excluded);
* deadline -> digest lag at ``--pending`` pending conversations: those are loaded
  first (due in an hour) and held; then ``--probes`` conversations whose deadlines
  are spread over ``--spread-s`` seconds a few seconds ahead; lag = digest record
  time - due time (tick interval 0.1 s); beside it the raw loop's consume ->
  produce latency at a light rate;
* every run on a fresh broker (faust's group ids are fixed), medians of ``--runs``;
* memory per pending conversation at 100k and 1M: measured in a fresh
  subprocess on the pure state store (dict of encoded states) + deadline index,
  as RSS growth / conversations (Tansu keeps everything in memory, so 1M goes
  without the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.broker import EmbeddedBroker, free_port
from devstack.stack import Ports, ServiceProcesses, stack_env
from shared.codec import decode, encode
from shared.events import ChatContent, ChatEvent, ChatEventKind, Digest, ShopSettings
from shared.kafka import ensure_topics
from shared.topics import CHAT_EVENTS, MAIL_DIGESTS, SHOP_SETTINGS, TopicSpec

RAW_IN, RAW_OUT = TopicSpec("bench.raw.in", 8), TopicSpec("bench.raw.out", 8)
TEXT = "Hi! Is the blue kettle still in stock, and do you ship to Lyon?"
SHOPS = [str(7_000_000_000_000_000_000 + i) for i in range(50)]


def buyer_event(n: int, conversations: int, received_at_ms: int) -> tuple[bytes, bytes]:
    ev = ChatEvent(
        kind=ChatEventKind.BUYER_MESSAGE,
        shop_id=SHOPS[n % len(SHOPS)],
        conversation_id=str(5_000_000_000_000_000 + n % conversations),
        message_id=str(7_400_000_000_000_000_000 + n),
        sent_at_ms=received_at_ms,
        seq=n,
        buyer_id="7494",
        buyer_name="Ana",
        content=ChatContent(text=TEXT),
        received_at_ms=received_at_ms,
    )
    return ev.conversation_key.encode(), encode(ev)


async def load(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        futs = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def raw_loop(bootstrap: str, expect: int) -> float:
    """Consume RAW_IN, orjson round trip, produce RAW_OUT; events/s over ``expect`` records."""
    consumer = AIOKafkaConsumer(
        RAW_IN.name,
        bootstrap_servers=bootstrap,
        group_id="bench-raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=512 * 1024
    )
    await consumer.start()
    await producer.start()
    seen, started = 0, None
    try:
        while seen < expect:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if started is None and batches:
                started = time.perf_counter()
            futs = []
            for recs in batches.values():
                for r in recs:
                    futs.append(
                        await producer.send(
                            RAW_OUT.name, orjson.dumps(orjson.loads(r.value)), key=r.key
                        )
                    )
                    seen += 1
            await asyncio.gather(*futs)
            await consumer.commit()
        return seen / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()
        await producer.stop()


async def raw_latency(bootstrap: str, count: int = 2000, rate: int = 1000) -> list[float]:
    """Light-rate consume -> produce latency of the raw loop (ms), timestamps from Kafka."""
    consumer = AIOKafkaConsumer(
        RAW_IN.name,
        bootstrap_servers=bootstrap,
        group_id="bench-raw-lat",
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    out = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start(), await out.start(), await producer.start()
    tps = [TopicPartition(RAW_OUT.name, p) for p in range(8)]
    out.assign(tps)
    await out.seek_to_end(*tps)
    while not consumer.assignment():
        await asyncio.sleep(0.1)
    await consumer.seek_to_end()

    async def relay() -> None:
        while True:
            for recs in (await consumer.getmany(timeout_ms=100)).values():
                for r in recs:
                    await producer.send(RAW_OUT.name, r.value, key=b"lat")

    task = asyncio.create_task(relay())
    lat: list[float] = []
    try:
        for i in range(count):
            await producer.send(RAW_IN.name, orjson.dumps({"t": time.time() * 1000}), key=b"lat")
            if i % (rate // 100) == 0:
                await asyncio.sleep(0.01)
        deadline = time.monotonic() + 10
        while len(lat) < count and time.monotonic() < deadline:
            for recs in (await out.getmany(timeout_ms=200)).values():
                for r in recs:
                    sent = orjson.loads(r.value)
                    if isinstance(sent, dict) and "t" in sent:  # not a throughput-run record
                        lat.append(r.timestamp - sent["t"])
    finally:
        task.cancel()
        await consumer.stop(), await out.stop(), await producer.stop()
    return lat


async def poll_count(url: str, parse, expect: int, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    """Events/s from the first record counted to ``expect`` records."""
    first_t, first_n = None, 0
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as http:
        while time.monotonic() < deadline:
            try:
                n = parse((await http.get(url)).text)
            except httpx.HTTPError:
                n = 0
            now = time.perf_counter()
            if n and first_t is None:
                first_t, first_n = now, n
            if n >= expect:
                return (n - first_n) / (now - first_t) if now > first_t else float("nan")
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url}: not at {expect} within {timeout_s}s")


def held_count(metrics: str) -> int:
    total = 0.0
    for outcome in ("held", "duplicate"):
        m = re.search(
            rf'bridge_events_handled_total{{outcome="{outcome}",service="consolidator"}} (\S+)',
            metrics,
        )
        total += float(m.group(1)) if m else 0
    return int(total)


def memory_per_conversation(n: int, design: str) -> tuple[float, float]:
    """(bytes per pending conversation, mean stored value bytes) measured in a fresh process."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(n), design],
        capture_output=True,
        text=True,
        check=True,
    )
    per, value = out.stdout.split()
    return float(per), float(value)


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_child(n: int, design: str) -> None:
    from consolidator.deadline_index import DeadlineIndex
    from consolidator.debounce import (
        ConversationState,
        add_buyer_message,
        encode_state,
    )
    from shared.notification_window import Windows

    events = (decode(ChatEvent, buyer_event(i, n, 1_700_000_000_000 + i)[1]) for i in range(n))
    before = _rss()
    store: dict[bytes, object] = {}
    index = DeadlineIndex()
    value_bytes = 0
    for ev in events:
        key = ev.conversation_key.encode()
        if design == "naive":
            store[key.decode()] = {
                "pending": [[ev.message_id, ev.sent_at_ms, orjson.loads(encode(ev.content))]],
                "due": ev.received_at_ms + 900_000,
            }
        else:
            st = ConversationState(partition=hash(key) % 8)
            add_buyer_message(st, ev, Windows(900_000, 3_600_000))
            raw = encode_state(st)
            value_bytes += len(raw)
            store[key] = raw
            index.push(st.partition, st.due_at_ms, key)
    print((_rss() - before) / n, value_bytes / n)


async def one_run(args: argparse.Namespace, run: int) -> dict[str, float]:
    """One fresh broker: throughput of raw / naive / ours, then ours' lag at --pending pending."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-consolidator-{run}-"))
    broker = EmbeddedBroker(log_path=str(root / "broker.log"))
    await broker.start_with_topics()
    await ensure_topics(broker.bootstrap, [RAW_IN, RAW_OUT])
    bs = broker.bootstrap
    n, conversations = args.events, args.events // 3
    future = int(time.time() * 1000) + 3_600_000  # throughput events never fall due
    records = [buyer_event(i, conversations, future) for i in range(n)]
    out: dict[str, float] = {}
    procs: list[ServiceProcesses] = []
    try:
        print(f"run {run}: loading {n} events ...", file=sys.stderr)
        await load(bs, RAW_IN.name, records)
        await load(bs, CHAT_EVENTS.name, records)
        out["raw"] = await raw_loop(bs, n)

        naive_port = free_port()
        env = {**os.environ, "KAFKA_BOOTSTRAP": bs, "BENCH_WEB_PORT": str(naive_port)}
        naive = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).with_name("naive_consolidator_agent.py")),
                "worker",
                "--loglevel",
                "warn",
            ],
            env=env,
            stdout=open(root / "naive.log", "wb"),
            stderr=subprocess.STDOUT,
            cwd=root,
        )
        try:
            out["naive"] = await poll_count(
                f"http://127.0.0.1:{naive_port}/count", lambda t: orjson.loads(t)["seen"], n, 300
            )
        finally:
            naive.terminate()
            naive.wait(10)

        # The shops opted in to alerts (a shop with no settings record gets no digest).
        await load(
            bs,
            SHOP_SETTINGS.name,
            [
                (
                    shop.encode(),
                    encode(
                        ShopSettings(
                            shop, alerts_enabled=True, destination_email="seller@shop.localhost"
                        )
                    ),
                )
                for shop in SHOPS
            ],
        )
        ports = Ports()
        env2 = stack_env(
            bs,
            ports,
            window_s=1.0,
            data_dir=root,
            extra={"BRIDGE_TICK_INTERVAL_S": "0.1", "BRIDGE_CONSOLIDATOR_STORE": args.store},
        )
        svc = ServiceProcesses(env2, root / "logs")
        procs.append(svc)
        svc.start("consolidator")
        metrics_url = f"http://127.0.0.1:{ports.consolidator}/metrics"
        out["ours"] = await poll_count(metrics_url, held_count, n, 300)
        print(
            f"run {run}: raw {out['raw']:,.0f}, naive {out['naive']:,.0f}, "
            f"ours {out['ours']:,.0f} events/s",
            file=sys.stderr,
        )

        # Deadline -> digest lag with --pending conversations pending (conversation ids
        # apart from the throughput set's and from each other's). First the pending
        # set, due in an hour (it never falls due here), loaded and held before measuring;
        # then --probes conversations whose deadlines are spread over --spread-s seconds
        # from a few seconds after they are loaded, so each digest's lag is the tick path's
        # own (heap pop, state, produce) at that many pending, not a load backlog.
        p = args.pending
        await load(
            bs, CHAT_EVENTS.name, [buyer_event(10**9 + i, 2 * 10**9, future) for i in range(p)]
        )
        await poll_count(metrics_url, held_count, n + p, 300)
        digests = AIOKafkaConsumer(bootstrap_servers=bs, group_id=None)
        await digests.start()
        tps = [TopicPartition(MAIL_DIGESTS.name, q) for q in range(MAIL_DIGESTS.partitions)]
        digests.assign(tps)
        await digests.seek_to_end(*tps)
        probes, spread_ms = args.probes, int(args.spread_s * 1000)
        first_due = int(time.time() * 1000) + 3000
        await load(
            bs,
            CHAT_EVENTS.name,
            [
                buyer_event(3 * 10**9 + i, 4 * 10**9, first_due - 1000 + i * spread_ms // probes)
                for i in range(probes)
            ],
        )
        late = int(time.time() * 1000) > first_due
        lags: list[float] = []
        deadline = time.monotonic() + args.spread_s + 30
        while len(lags) < probes and time.monotonic() < deadline:
            for recs in (await digests.getmany(timeout_ms=500)).values():
                for r in recs:
                    d = decode(Digest, r.value)
                    lags.append(r.timestamp - d.due_at_ms)
        await digests.stop()
        q = statistics.quantiles(lags, n=100) if len(lags) > 1 else [float("nan")] * 99
        out.update(
            {
                "lag_p50": q[49],
                "lag_p99": q[98],
                "digests": len(lags),
                "probes": probes,
                "late": float(late),
            }
        )
        print(
            f"run {run}: lag p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms over {len(lags)}/{probes}"
            f" digests at {p} pending",
            file=sys.stderr,
        )
        if run == 0:
            raw_lat = await raw_latency(bs)
            rq = statistics.quantiles(raw_lat, n=100)
            out["raw_lat_p50"], out["raw_lat_p99"] = rq[49], rq[98]
    finally:
        for svc in procs:
            svc.stop_all()
        broker.stop()
    return out


async def main(args: argparse.Namespace) -> None:
    runs = [await one_run(args, i) for i in range(args.runs)]

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs if key in r)

    rows: dict[str, dict[str, str]] = {
        "naive faust agent": {},
        "this design": {},
        "raw aiokafka loop": {},
    }
    raw = med("raw")
    for name, key in (
        ("naive faust agent", "naive"),
        ("this design", "ours"),
        ("raw aiokafka loop", "raw"),
    ):
        rows[name]["events/s"] = f"{med(key):,.0f}"
        rows[name]["vs raw"] = f"{med(key) / raw:.0%}"
        rows[name]["runs"] = " ".join(f"{r[key] / 1000:.1f}k" for r in runs)
    rows["this design"]["vs naive"] = f"{med('ours') / med('naive'):.1f}x"
    rows["this design"]["lag p50/p99 ms"] = f"{med('lag_p50'):.0f} / {med('lag_p99'):.0f}"
    rows["this design"]["digests"] = f"{min(r['digests'] for r in runs):.0f}/{args.probes}"
    rows["raw aiokafka loop"]["lag p50/p99 ms"] = (
        f"{runs[0]['raw_lat_p50']:.1f} / {runs[0]['raw_lat_p99']:.1f}"
    )

    for size in (100_000, 1_000_000):
        for name, design in (("naive faust agent", "naive"), ("this design", "ours")):
            per, value = memory_per_conversation(size, design)
            rows[name][f"B/pending @{size // 1000}k"] = f"{per:,.0f}"
            if design == "ours":
                rows[name]["state value B"] = f"{value:.0f}"

    cols = [
        "events/s",
        "vs raw",
        "vs naive",
        "runs",
        "lag p50/p99 ms",
        "digests",
        "B/pending @100k",
        "B/pending @1000k",
        "state value B",
    ]
    print(
        f"\nconsolidator bench: {args.events} events / {args.events // 3} conversations, "
        f"medians of {args.runs} runs (fresh broker each); lag over {args.probes} digests due "
        f"across {args.spread_s:.0f} s with {args.pending} conversations pending; "
        f"store {args.store}, {os.cpu_count()} cores, Tansu memory broker"
    )
    if any(r["late"] for r in runs):
        print(
            "note: loading the probes ended after the first deadline in some run; "
            "their lag includes that"
        )
    print(f"{'':20}" + "".join(f"{c:>19}" for c in cols))
    for name, row in rows.items():
        print(f"{name:20}" + "".join(f"{row.get(c, '-'):>19}" for c in cols))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--memory-child":
        memory_child(int(sys.argv[2]), sys.argv[3])
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--store", default="memory://")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--probes",
        type=int,
        default=2000,
        help="conversations whose deadline->digest lag is measured",
    )
    parser.add_argument(
        "--spread-s",
        type=float,
        default=10.0,
        help="their deadlines are spread over this many seconds",
    )
    asyncio.run(main(parser.parse_args()))
