"""Mails/s through the mailer beside a bare aiosmtplib send loop, on the same sink.

Usage (from the repo root)::

    python bench/bench_mailer.py [--mails 600] [--runs 3] [--connections 1,8]

One run starts an aiosmtpd sink in its own process (so it does not share this
process's CPU), an embedded Tansu broker (the mailer records ``attempting`` and the
outcome of every digest on it), and then, for each connection count:

* **bare**: aiosmtplib ``sendmail`` of one pre-composed, pre-signed digest, N times,
  over exactly that many connections: the ceiling for this client and sink;
* **mailer**: the mailer's own consume loop (``mailer.digest_consumer.consume_digests``
  with ``Mailer.handle``, in a fresh consumer group) on N digests produced to
  ``mail.digests`` beforehand: fetches of ``BRIDGE_MAILER_BATCH_RECORDS`` records,
  an outcome-ledger catch-up per batch, offset commits, and per digest render,
  compose and DKIM-sign (a fresh 2048-bit key) in the mailer's compose helper process
  (``mailer/compose_process.py``, the default), two Kafka writes, SMTP through
  ``SmtpPool`` with the same connection count. Timed from the first digest handed
  to ``Mailer.handle`` to the last one done (the group join is not included);
* **composed on the loop**: the same with ``BRIDGE_MAILER_COMPOSE_PROCESSES=0``: render,
  compose and DKIM signing on the event loop (the mailer's fallback while a helper restarts);
* **mailer, no DKIM**: the same without signing.

Printed: per row the median mails/s of ``--runs`` runs with the lowest and highest
(the machine is shared: the spread says how far to trust the median), the ratio of the
medians to the bare loop, and the median CPU time (user + system, all threads) spent
per mail while the row ran: by this process, by the mailer's compose helper processes,
by the sink and by the broker, their sum, and the ceiling that sum puts on mails/s when every core of the
machine works on that path (all these processes share the same cores here); for the mailer
rows, the window from the relay's 250 to the broker's ack of the ``sent`` outcome (mean
and p99, from ``bridge_mailer_outcome_record_seconds``: what a kill -9 in it turns into a
resend); then the per-digest CPU cost of each step; then card lookups (``--cards-only``
prints just these): the wall time per digest of filling a product and an order card
and rendering, on a cache hit, on a miss (two calls to the sandbox over HTTP, signed and
checked like the platform) and with an API slower than the lookup budget, each beside
the render alone in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiosmtplib  # noqa: E402
from aiokafka.structs import ConsumerRecord  # noqa: E402
from process_stats import process_cpu_seconds  # noqa: E402

# argv: port, then optionally the relay's time per transaction in ms, lowest and highest
# (real relays take 50-100 ms to answer the end of DATA).
SINK_CODE = """
import asyncio, random, sys
from aiosmtpd.smtp import SMTP
low, high = (float(sys.argv[2]) / 1e3, float(sys.argv[3]) / 1e3) if len(sys.argv) > 3 else (0, 0)
class H:
    n = 0
    async def handle_DATA(self, server, session, envelope):
        H.n += 1
        if high:
            await asyncio.sleep(random.uniform(low, high))
        return "250 2.0.0 Stored"
async def main():
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: SMTP(H(), ident="bench sink"), "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def start_sink_process(
    port: int, delay_ms: tuple[float, float] = (0.0, 0.0)
) -> subprocess.Popen[bytes]:
    """An aiosmtpd sink in its own process that answers 250 after ``delay_ms`` (uniform)."""
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK_CODE, str(port), *(str(d) for d in delay_ms)],
        stdout=subprocess.PIPE,
    )
    assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
    return sink


def make_digest(run: int, n: int):  # type: ignore[no-untyped-def]
    from shared.events import ChatContent, Digest, DigestMessage

    return Digest(
        digest_id=f"bench-{run}-{n}",
        shop_id="shop-1",
        conversation_id=f"conv-{n}",
        buyer_id="buyer-1",
        buyer_name="Zoë Buyer",
        shop_name="Sunny Socks",
        previous_digest_ids=(f"bench-prev-{n}",),
        messages=(
            DigestMessage(f"m{n}-1", 1_764_070_000_000, ChatContent(text="Is it wool? 🧦")),
            DigestMessage(
                f"m{n}-2",
                1_764_070_001_000,
                ChatContent(
                    kind="product_card",
                    title="Wool socks",
                    price="$12",
                    url="https://shop.example/p/1",
                    thumbnail_url="https://cdn.example/p1.jpg",
                ),
            ),
            DigestMessage(
                f"m{n}-3",
                1_764_070_002_000,
                ChatContent(kind="order_card", order_id="5771", status="paid"),
            ),
        ),
        destination_email="owner@sunnysocks.example",
    )


@dataclass(frozen=True)
class Sample:
    rate: float  # mails/s
    cpu_us: float  # this process's CPU (user + system) per mail
    helper_cpu_us: float = 0.0  # the mailer's compose helper processes' CPU per mail
    sink_cpu_us: float = 0.0  # the aiosmtpd sink's CPU per mail
    broker_cpu_us: float = 0.0  # the Kafka broker's CPU per mail
    window_mean_ms: float = 0.0  # the relay's 250 to the sent outcome's ack (mailer rows)
    window_p99_ms: float = 0.0

    @property
    def total_cpu_us(self) -> float:
        return self.cpu_us + self.helper_cpu_us + self.sink_cpu_us + self.broker_cpu_us


# The sink's and the broker's pids (set by main): their CPU is part of a mail's cost on
# this machine, so the bench reports it beside the client's.
OTHERS: dict[str, int] = {}


def _others_cpu() -> tuple[float, float]:
    return (process_cpu_seconds(OTHERS.get("sink")), process_cpu_seconds(OTHERS.get("broker")))


def _window_histogram() -> tuple[float, list[tuple[float, float]]]:
    """(sum, cumulative (upper bound, count) buckets) of the mailer's 250-to-outcome
    histogram, so far in this process."""
    from mailer.mailer_metrics import OUTCOME_RECORD_SECONDS

    total, buckets = 0.0, []
    for metric in OUTCOME_RECORD_SECONDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), sample.value))
    return total, buckets


def _window_stats(
    before: tuple[float, list[tuple[float, float]]], after: tuple[float, list[tuple[float, float]]]
) -> tuple[float, float]:
    """(mean, p99) in ms of the observations between two snapshots; the p99 interpolated
    within its bucket as Prometheus' histogram_quantile does."""
    buckets = [(le, a - b) for (le, a), (_, b) in zip(after[1], before[1], strict=True)]
    count = buckets[-1][1]
    if count == 0:
        return 0.0, 0.0
    mean = (after[0] - before[0]) / count
    rank, lower, below = 0.99 * count, 0.0, 0.0
    for le, cumulative in buckets:
        if cumulative >= rank:
            if le == float("inf"):
                return mean * 1e3, lower * 1e3
            share = (rank - below) / max(cumulative - below, 1e-9)
            return mean * 1e3, (lower + (le - lower) * share) * 1e3
        lower, below = le, cumulative
    return mean * 1e3, lower * 1e3


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def bare_loop(port: int, message: bytes, mails: int, connections: int) -> Sample:
    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port) for _ in range(connections)]
    for client in clients:
        await client.connect()
    share = [
        mails // connections + (1 if i < mails % connections else 0) for i in range(connections)
    ]

    async def worker(client: aiosmtplib.SMTP, count: int) -> None:
        for _ in range(count):
            await client.sendmail("bounce@bridge.example", ["owner@sunnysocks.example"], message)

    start, cpu, (sink, broker) = time.perf_counter(), _cpu_seconds(), _others_cpu()
    await asyncio.gather(*(worker(c, k) for c, k in zip(clients, share, strict=True)))
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    sink_end, broker_end = _others_cpu()
    for client in clients:
        await client.quit()
    return Sample(
        mails / elapsed,
        cpu / mails * 1e6,
        0.0,
        (sink_end - sink) / mails * 1e6,
        (broker_end - broker) / mails * 1e6,
    )


async def mailer_run(
    bootstrap: str,
    port: int,
    mails: int,
    connections: int,
    key_file: str,
    run: int,
    compose_processes: int = 1,
) -> Sample:
    from aiokafka import TopicPartition

    from mailer.app import (
        Mailer,
        load_signer,
        outcome_ledger,
        relay_config,
        start_compose_processes,
        start_mailer_producer,
    )
    from mailer.digest_consumer import consume_digests
    from mailer.mailer_settings import MailerSettings
    from mailer.smtp_pool import SmtpPool
    from shared.codec import encode
    from shared.kafka import make_consumer
    from shared.topics import MAIL_DIGESTS

    # The mailer's own settings, producer, ledger and consumer, as `python -m mailer`
    # builds them; a group per run that starts at this run's digests.
    cfg = MailerSettings(
        kafka_bootstrap=bootstrap,
        smtp_port=port,
        smtp_pool_size=connections,
        dkim_key_file=key_file,
        mailer_group=f"bench-mailer-{run}",
        mailer_compose_processes=compose_processes,
    )
    producer = await start_mailer_producer(cfg)
    ledger = outcome_ledger(cfg, producer)
    await ledger.start()
    pool = SmtpPool(relay_config(cfg))
    signer = load_signer(cfg)
    composers = await start_compose_processes(cfg)
    mailer = Mailer(cfg, producer, pool, signer, ledger, composers)
    warm = encode(make_digest(run, mails))
    await mailer.handle(
        ConsumerRecord(MAIL_DIGESTS.name, 0, 0, 0, 0, b"warm", warm, None, 0, len(warm), ())
    )  # connection, css inliner, key

    prefix = f"run-{run}:".encode()
    sends = [
        await producer.send(
            MAIL_DIGESTS.name, encode(make_digest(run, n)), key=prefix + f"conv-{n}".encode()
        )
        for n in range(mails)
    ]
    # The group starts at this run's first digest in each partition (from the send
    # results: the broker's end offsets are not trusted to count batched records).
    starts: dict[TopicPartition, int] = {}
    for meta in await asyncio.gather(*sends):
        tp = TopicPartition(meta.topic, meta.partition)
        starts[tp] = min(starts.get(tp, meta.offset), meta.offset)
    starter = make_consumer(cfg, group_id=cfg.mailer_group)
    await starter.start()
    starter.assign(list(starts))
    await starter.commit(starts)
    await starter.stop()

    done = asyncio.Event()
    window: list[tuple[float, list[tuple[float, float]]]] = []
    handled = 0
    started: list[tuple[float, float, float, tuple[float, float]]] = []

    async def handle(record: ConsumerRecord, still_owned) -> None:  # type: ignore[no-untyped-def]
        nonlocal handled
        if not (record.key or b"").startswith(prefix):
            # An earlier run's digest, in a partition this run sent nothing to.
            await mailer.handle(record, still_owned)
            return
        if not started:
            started.append((time.perf_counter(), _cpu_seconds(), helpers_cpu(), _others_cpu()))
            window.append(_window_histogram())
        await mailer.handle(record, still_owned)
        handled += 1
        if handled == mails:
            done.set()

    helper_pids = composers.pids if composers is not None else []

    def helpers_cpu() -> float:
        return sum(process_cpu_seconds(pid) for pid in helper_pids)

    consumer = make_consumer(cfg, group_id=cfg.mailer_group)
    await consumer.start()
    loop_task = asyncio.create_task(
        consume_digests(
            consumer,
            [MAIL_DIGESTS.name],
            ledger,
            handle,
            max_records=cfg.mailer_batch_records,
            revoke_timeout_s=cfg.mailer_revoke_drain_s,
        )
    )
    await asyncio.wait(
        [loop_task, asyncio.create_task(done.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    if loop_task.done():
        loop_task.result()  # the consume loop failed: show why
    start, cpu, helper, (sink, broker) = started[0]
    elapsed, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    helper = helpers_cpu() - helper
    sink_end, broker_end = _others_cpu()
    window_mean_ms, window_p99_ms = _window_stats(window[0], _window_histogram())
    loop_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop_task
    await consumer.stop()
    if composers is not None:
        await composers.close()
    await pool.close()
    await ledger.stop()
    await producer.stop()
    return Sample(
        mails / elapsed,
        cpu / mails * 1e6,
        helper / mails * 1e6,
        (sink_end - sink) / mails * 1e6,
        (broker_end - broker) / mails * 1e6,
        window_mean_ms,
        window_p99_ms,
    )


def step_costs(key_file: str) -> list[tuple[str, float]]:
    """Per-digest CPU of each step, in microseconds (median of 5 x 100)."""
    from mailer.compose import ComposeContext, compose_digest_bytes
    from mailer.dkim_signing import load_dkim_signer
    from mailer.render import DigestLinks, render_digest, render_digest_reference
    from shared.codec import decoder, encode
    from shared.events import Digest

    links = DigestLinks("https://s.example/chat/1", "https://s.example/settings/1", "TikTok Shop")
    ctx = ComposeContext(
        "TikTok Shop",
        "c.tok@chat-seller-us.bridge.example",
        "owner@sunnysocks.example",
        "digest.bridge.example",
        links,
        links.settings_url,
        datetime.now(UTC),
    )
    digest = make_digest(0, 0)
    signer = load_dkim_signer("bench", "bridge.example", key_file)
    raw = compose_digest_bytes(digest, ctx)
    record = encode(digest)
    planned = decoder(Digest)
    steps = {
        "decode record (checks planned per class)": lambda: planned(record),
        "render, css-inline per digest (ref.)": lambda: render_digest_reference(digest, links),
        "render, inlined shapes (mailer's path)": lambda: render_digest(digest, links),
        "compose_digest_bytes (mailer's path)": lambda: compose_digest_bytes(digest, ctx),
        "DKIM sign (canonicalise, hash, RSA-2048)": lambda: signer.sign(raw),
    }
    out = []
    for name, step in steps.items():
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(100):
                step()
            samples.append((time.perf_counter() - t0) / 100 * 1e6)
        out.append((name, statistics.median(samples)))
    return out


def signed_digest(key_file: str) -> bytes:
    """One digest composed and DKIM-signed as the mailer would: what the bare loops send."""
    from mailer.compose import ComposeContext, compose_digest_bytes
    from mailer.dkim_signing import load_dkim_signer
    from mailer.render import DigestLinks

    links = DigestLinks("https://s.example/chat/1", "https://s.example/s/1", "TikTok Shop")
    ctx = ComposeContext(
        "TikTok Shop",
        "c.tok@chat-seller-us.bridge.example",
        "owner@sunnysocks.example",
        "digest.bridge.example",
        links,
        links.settings_url,
        datetime.now(UTC),
    )
    return load_dkim_signer("bench", "bridge.example", key_file).sign(
        compose_digest_bytes(make_digest(0, 0), ctx)
    )


async def card_lookup_costs(rounds: int = 200) -> list[tuple[str, float]]:
    """Per-digest wall time of card lookups + render against the sandbox over HTTP, beside
    the render alone in the same run (microseconds, median of 5 batches)."""
    import httpx

    from devstack.broker import free_port
    from devstack.chat_sandbox import create_sandbox
    from devstack.stack import serve_in_loop
    from mailer.card_lookup import CardLookup
    from mailer.render import DigestLinks, render_digest
    from shared.chat_platform.tiktok_client import TikTokShopClient
    from shared.config import ChatPlatformSettings
    from shared.events import ChatContent, ContentKind, Digest, DigestMessage

    cfg = ChatPlatformSettings()
    secret = cfg.platform_app_secret.get_secret_value()
    token = cfg.platform_access_token.get_secret_value()
    app = create_sandbox(cfg.platform_app_key, secret, token, "http://127.0.0.1:9/unused")
    port = free_port()
    server, task = await serve_in_loop(app, port)
    url = f"http://127.0.0.1:{port}"
    links = DigestLinks("https://s.example/chat/1", "https://s.example/settings/1", "TikTok Shop")

    def digest(n: int) -> Digest:
        contents = (
            ChatContent(text="Is this the blue one?"),
            ChatContent(kind=ContentKind.PRODUCT_CARD, product_id=f"9{n}"),
            ChatContent(kind=ContentKind.ORDER_CARD, order_id=f"8{n}"),
        )
        return Digest(
            f"dg{n}",
            "7001",
            "c1",
            "b",
            "Ana",
            tuple(DigestMessage(f"m{i}", 1_764_070_000_000 + i, c) for i, c in enumerate(contents)),
        )

    def lookup(budget_s: float = 1.5) -> CardLookup:
        client = TikTokShopClient(url, cfg.platform_app_key, secret, {"*": token}, qps_per_api=0)
        return CardLookup(client, budget_s=budget_s)

    async def per_digest(steps, count: int) -> list[float]:  # type: ignore[no-untyped-def]
        """Median per-digest time of each step; the steps' batches interleave, so load
        on the shared machine drifting during the run hits them alike."""
        samples: list[list[float]] = [[] for _ in steps]
        for batch in range(5):
            for k, step in enumerate(steps):
                t0 = time.perf_counter()
                for i in range(count):
                    await step(batch * count + i)
                samples[k].append((time.perf_counter() - t0) / count * 1e6)
        return [statistics.median(x) for x in samples]

    async with httpx.AsyncClient() as http:
        await http.post(f"{url}/sandbox/faults", json={"qps_per_api": 0})
        for n in range(rounds * 5):
            await http.post(
                f"{url}/sandbox/products",
                json={"shop_id": "7001", "product_id": f"9{n}", "title": f"Socks {n}"},
            )
            await http.post(
                f"{url}/sandbox/orders",
                json={"shop_id": "7001", "order_id": f"8{n}", "item_names": ["Socks"]},
            )
        warm = lookup()
        filled = await warm.fill(digest(0))  # the same cards, already filled in

        async def render_only(n: int) -> None:
            render_digest(filled, links)

        async def cache_hit(n: int) -> None:
            render_digest(await warm.fill(digest(0)), links)

        cold = lookup()

        async def cache_miss(n: int) -> None:  # new ids each digest: two calls over HTTP
            render_digest(await cold.fill(digest(n)), links)

        render_us, hit_us, miss_us = await per_digest([render_only, cache_hit, cache_miss], rounds)
        rows = [
            ("render (cards already filled), no lookup", render_us),
            ("fill + render, cache hit", hit_us),
            ("fill + render, miss (2 calls to the sandbox)", miss_us),
        ]
        await http.post(f"{url}/sandbox/faults", json={"qps_per_api": 0, "lookup_delay_s": 2.0})

        slow_client = lookup().platform

        async def slow(n: int) -> None:  # a fresh cache (no pause) each time: every digest waits
            cards = CardLookup(slow_client, budget_s=0.2)
            render_digest(await cards.fill(digest(n)), links)

        (slow_us,) = await per_digest([slow], 2)
        rows.append(("fill + render, API slower than a 0.2 s budget", slow_us))
        await warm.aclose()
        await cold.aclose()
        await slow_client.aclose()
    server.should_exit = True
    await task
    return rows


def print_card_lookup_costs(rows: list[tuple[str, float]]) -> None:
    baseline = rows[0][1]
    print(f"\n{'card lookups per digest (median of 5 batches)':<46} {'us':>10} {'x render':>9}")
    for name, micros in rows:
        print(f"{name:<46} {micros:>10.0f} {micros / baseline:>9.2f}")


async def main(key_file: str) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=600)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", default="1,8")
    parser.add_argument(
        "--cards-only",
        action="store_true",
        help="print only the card lookup rows (cache hit, miss, slow API vs render alone)",
    )
    args = parser.parse_args()
    conn_counts = [int(c) for c in args.connections.split(",")]
    if args.cards_only:
        print_card_lookup_costs(await card_lookup_costs())
        return

    import logging

    from devstack.broker import EmbeddedBroker, free_port

    logging.disable(logging.WARNING)  # the mailer logs nothing per mail on success
    tmp = Path(key_file).parent
    port = free_port()
    sink = start_sink_process(port)
    broker = EmbeddedBroker(log_path=str(tmp / "broker.log"))
    try:
        await broker.start_with_topics()
        os.environ["KAFKA_BOOTSTRAP"] = broker.bootstrap
        OTHERS.update(sink=sink.pid, broker=broker.pid or 0)
        message = signed_digest(key_file)

        rows: list[tuple[str, int, list[Sample], float]] = []
        run_id = 0
        for conns in conn_counts:
            bare: list[Sample] = []
            full: list[Sample] = []
            on_loop: list[Sample] = []
            unsigned: list[Sample] = []
            for _ in range(args.runs):
                run_id += 1
                bare.append(await bare_loop(port, message, args.mails, conns))
                full.append(
                    await mailer_run(broker.bootstrap, port, args.mails, conns, key_file, run_id)
                )
                run_id += 1
                on_loop.append(
                    await mailer_run(
                        broker.bootstrap,
                        port,
                        args.mails,
                        conns,
                        key_file,
                        run_id,
                        compose_processes=0,
                    )
                )
                run_id += 1
                unsigned.append(
                    await mailer_run(broker.bootstrap, port, args.mails, conns, "", run_id)
                )
            b = statistics.median(x.rate for x in bare)
            rows += [
                ("bare aiosmtplib loop", conns, bare, b),
                ("mailer (render+DKIM+Kafka)", conns, full, b),
                ("  composed on the loop", conns, on_loop, b),
                ("mailer, no DKIM", conns, unsigned, b),
            ]
        cores = os.cpu_count() or 1
        print(
            f"\n{args.mails} mails per run, median of {args.runs} runs, digest "
            f"{len(message)} bytes, one client process, sink in its own process, "
            f"{cores} cores shared by all\n"
        )
        print(
            f"{'path':<30} {'conns':>5} {'mails/s':>8} {'min-max':>11} {'vs bare':>8} "
            f"{'CPU us/mail: client':>19} {'+helper':>7} {'+sink':>6} {'+broker':>8} "
            f"{'=all':>6} {'ceiling':>8} {'250->ack ms mean':>16} {'p99':>6}"
        )
        for name, conns, samples, bare_rate in rows:
            rates = [x.rate for x in samples]
            rate = statistics.median(rates)
            spread = f"{min(rates):.0f}-{max(rates):.0f}"

            def med(field: str, of: list[Sample] = samples) -> float:
                return statistics.median(getattr(x, field) for x in of)

            # What the machine could do if every core were busy with this path only.
            ceiling = cores * 1e6 / med("total_cpu_us")
            print(
                f"{name:<30} {conns:>5} {rate:>8.0f} {spread:>11} {rate / bare_rate:>7.0%} "
                f"{med('cpu_us'):>19.0f} {med('helper_cpu_us'):>7.0f} "
                f"{med('sink_cpu_us'):>6.0f} {med('broker_cpu_us'):>8.0f} "
                f"{med('total_cpu_us'):>6.0f} {ceiling:>8.0f} "
                + (
                    f"{med('window_mean_ms'):>16.1f} {med('window_p99_ms'):>6.1f}"
                    if med("window_mean_ms")
                    else f"{'-':>16} {'-':>6}"
                )
            )
        print(
            "\nceiling: cores / (CPU of every process per mail): mails/s with all cores busy "
            "on this path; a row near its ceiling is CPU-bound on this machine.\n"
            "250->ack: the relay's 250 to the broker's ack of the sent outcome (producer "
            "linger + a produce round trip + event-loop wait); a mailer killed inside it "
            "resends that mail on restart."
        )
        print(f"\n{'per-digest CPU (median of 5 x 100)':<42} {'us':>8}")
        for name, micros in step_costs(key_file):
            print(f"{name:<42} {micros:>8.0f}")
        print_card_lookup_costs(await card_lookup_costs())
    finally:
        sink.terminate()
        sink.wait(timeout=5)
        broker.stop()


def fresh_key() -> str:
    key_file = str(Path(tempfile.mkdtemp(prefix="bench-mailer-")) / "dkim.pem")
    subprocess.run(["openssl", "genrsa", "-out", key_file, "2048"], check=True, capture_output=True)
    return key_file


if __name__ == "__main__":
    asyncio.run(main(fresh_key()))
