"""Reply parts/s delivered by the fan-out process, beside a bare httpx post loop, same run.

One command: ``.venv/bin/python bench/bench_fanout.py [--runs 3] [--conversations 400]``.

Starts an embedded broker, the sandbox platform (its own uvicorn process, no fault injection)
and two real fan-out processes (``python -m fanout``): one with the default configuration
(after each full reply it also calls Read Message) and one with ``BRIDGE_FANOUT_MARK_READ=false``,
which makes exactly the same platform calls as the bare loop. Each run produces fresh
``ChatReply`` records to a real topic and times from the first produce to the sandbox having
received every part. The bare loop posts the same number of signed Send Message requests with
the same concurrency model: one sequential poster per conversation (the fan-out is sequential
per conversation to keep order), all conversations concurrently, through one httpx client.

The platform limits 50 QPS per API per shop; conversations are spread over ``--shops`` shops
(default 100, so the ceiling is 5,000 posts/s, far above what either side reaches here): the
per-shop limit is not what is measured (the sandbox answered no 429 in the runs reported).

Both sides use the same number of platform connections (``--pool``, default 8: a loopback
platform answers in about a millisecond) and bound requests in flight to it; without the
bound, hundreds of requests queued inside httpcore cost the bare loop about half its speed.
Prints medians and ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from devstack.broker import EmbeddedBroker, free_port
from devstack.stack import DEV_MODE_ENV, wait_healthy
from shared.chat_platform.tiktok_signing import sign_request
from shared.codec import encode
from shared.events import ChatReply, ReplyPart
from shared.kafka import ensure_topics
from shared.topics import CHAT_REPLIES, TopicSpec

KEY, SECRET, TOKEN = "bench-key", "bench-secret", "bench-token"
SANDBOX_APP = textwrap.dedent(f'''
    from devstack.chat_sandbox import create_sandbox
    app = create_sandbox("{KEY}", "{SECRET}", "{TOKEN}", "http://127.0.0.1:1/unused")
''')


def workload(shops: int, conversations: int) -> list[tuple[str, str]]:
    base = uuid.uuid4().int % 10**9
    return [(f"72{base:09d}{i % shops:04d}", f"52{base:09d}{i:05d}") for i in range(conversations)]


def replies(convs: list[tuple[str, str]], per_conv: int, parts: int) -> list[ChatReply]:
    text = "Thank you for your message, the parcel left our warehouse today. " * 3
    return [
        ChatReply(
            reply_id=f"bench-{uuid.uuid4().hex}",
            shop_id=shop,
            conversation_id=conv,
            parts=tuple(ReplyPart(p, f"{r}.{p} {text}") for p in range(parts)),
        )
        for r in range(per_conv)
        for shop, conv in convs
    ]


async def parts_received(http: httpx.AsyncClient, sandbox: str) -> int:
    return int((await http.get(f"{sandbox}/sandbox/stats")).json()["parts_received"])


async def run_fanout(
    producer: AIOKafkaProducer,
    http: httpx.AsyncClient,
    sandbox: str,
    topic: str,
    batch: list[ChatReply],
) -> float:
    total = sum(len(r.parts) for r in batch)
    start_count = await parts_received(http, sandbox)
    started = time.perf_counter()
    acks = [
        await producer.send(topic, encode(r), key=f"{r.shop_id}:{r.conversation_id}".encode())
        for r in batch
    ]
    await asyncio.gather(*acks)
    while await parts_received(http, sandbox) < start_count + total:
        await asyncio.sleep(0.05)  # each poll costs the shared sandbox CPU: not too often
    return total / (time.perf_counter() - started)


async def run_bare(
    http: httpx.AsyncClient, sandbox: str, batch: list[ChatReply], inflight: int
) -> float:
    by_conv: dict[tuple[str, str], list[str]] = {}
    for r in batch:
        by_conv.setdefault((r.shop_id, r.conversation_id), []).extend(p.text for p in r.parts)

    async def poster(conv: str, texts: list[str]) -> None:
        path = f"/customer_service/202309/conversations/{conv}/messages"
        for text in texts:  # sequential per conversation, like the fan-out
            body = orjson.dumps(
                {"type": "TEXT", "content": orjson.dumps({"content": text}).decode()}
            )
            query = {"app_key": KEY, "timestamp": str(int(time.time()))}
            query["sign"] = sign_request(path, query, body, SECRET)
            async with bound:  # waiting here is cheap; waiting inside httpcore is not
                resp = await http.post(
                    f"{sandbox}{path}",
                    params=query,
                    content=body,
                    headers={"x-tts-access-token": TOKEN, "content-type": "application/json"},
                )
            resp.raise_for_status()

    bound = asyncio.Semaphore(inflight)
    total = sum(len(t) for t in by_conv.values())
    started = time.perf_counter()
    await asyncio.gather(*(poster(conv, texts) for (_, conv), texts in by_conv.items()))
    return total / (time.perf_counter() - started)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shops", type=int, default=100)
    ap.add_argument("--conversations", type=int, default=400)
    ap.add_argument("--replies", type=int, default=2, help="replies per conversation per run")
    ap.add_argument("--parts", type=int, default=3, help="parts per reply")
    ap.add_argument(
        "--pool",
        type=int,
        default=8,
        help="platform connections (BRIDGE_PLATFORM_MAX_CONNECTIONS) for both sides",
    )
    ap.add_argument(
        "--profile",
        default="",
        help="py-spy raw profile of the mark-read-off fan-out during its runs, written here",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-fanout-"))
    broker = EmbeddedBroker(log_path=str(tmp / "broker.log"))
    await broker.start_with_topics()
    topics = {
        "default": f"chat.replies.bench-{uuid.uuid4().hex[:6]}",
        "no_read": f"chat.replies.bench-{uuid.uuid4().hex[:6]}",
    }
    await ensure_topics(
        broker.bootstrap, [TopicSpec(t, CHAT_REPLIES.partitions) for t in topics.values()]
    )
    sandbox_port = free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    (tmp / "sandbox_app.py").write_text(SANDBOX_APP)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "sandbox_app:app",
                "--port",
                str(sandbox_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--app-dir",
                str(tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "sandbox.log", "wb"),
        )
    ]  # noqa: SIM115
    ports: dict[str, int] = {}
    fanouts: dict[str, subprocess.Popen[bytes]] = {}
    for name, topic in topics.items():
        ports[name] = free_port()
        env = {
            **os.environ,
            **DEV_MODE_ENV,
            "KAFKA_BOOTSTRAP": broker.bootstrap,
            "BRIDGE_PLATFORM_BASE_URL": sandbox,
            "BRIDGE_PLATFORM_APP_KEY": KEY,
            "BRIDGE_PLATFORM_APP_SECRET": SECRET,
            "BRIDGE_PLATFORM_ACCESS_TOKEN": TOKEN,
            "BRIDGE_FANOUT_PORT": str(ports[name]),
            "BRIDGE_FANOUT_REPLIES_TOPIC": topic,
            "BRIDGE_LOG_LEVEL": "WARNING",
            "BRIDGE_FANOUT_GROUP": f"bench-{name}-{uuid.uuid4().hex[:6]}",
            "BRIDGE_FANOUT_MARK_READ": "true" if name == "default" else "false",
            "BRIDGE_PLATFORM_MAX_CONNECTIONS": str(args.pool),
        }
        log = open(tmp / f"fanout-{name}.log", "wb")  # noqa: SIM115 - owned by the child
        fanouts[name] = subprocess.Popen(
            [sys.executable, "-m", "fanout"], env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        procs.append(fanouts[name])
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    # The bare loop gets the fan-out client's pool size, and its in-flight bound.
    http = httpx.AsyncClient(
        timeout=30,
        limits=httpx.Limits(max_connections=args.pool, max_keepalive_connections=args.pool),
    )
    try:
        await wait_healthy({f"fanout-{n}": p for n, p in ports.items()}, timeout_s=60)
        await producer.start()
        convs = workload(args.shops, args.conversations)
        await asyncio.gather(
            *(
                http.post(
                    f"{sandbox}/sandbox/conversations", json={"shop_id": s, "conversation_id": c}
                )
                for s, c in convs
            )
        )
        # Warm-up: connections, partition assignment, JIT-free but cache-warm paths.
        await run_fanout(producer, http, sandbox, topics["no_read"], replies(convs[:50], 1, 1))
        await run_fanout(producer, http, sandbox, topics["default"], replies(convs[:50], 1, 1))
        await run_bare(http, sandbox, replies(convs[:50], 1, 1), args.pool)
        results: dict[str, list[float]] = {"bare": [], "no_read": [], "default": []}
        for _ in range(args.runs):
            results["bare"].append(
                await run_bare(http, sandbox, replies(convs, args.replies, args.parts), args.pool)
            )
            for name in ("no_read", "default"):
                spy = None
                if args.profile and name == "no_read":
                    spy = subprocess.Popen(
                        [
                            str(Path(sys.executable).parent / "py-spy"),
                            "record",
                            "-p",
                            str(fanouts[name].pid),
                            "-f",
                            "raw",
                            "-r",
                            "200",
                            "-o",
                            args.profile,
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                    await asyncio.sleep(1.0)
                results[name].append(
                    await run_fanout(
                        producer,
                        http,
                        sandbox,
                        topics[name],
                        replies(convs, args.replies, args.parts),
                    )
                )
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(30)
        stats = (await http.get(f"{sandbox}/sandbox/stats")).json()
        med = {k: statistics.median(v) for k, v in results.items()}
        total = args.conversations * args.replies * args.parts
        print(
            f"{total} parts per run: {args.conversations} conversations over {args.shops} "
            f"shops, {args.replies} replies x {args.parts} parts each; {args.pool} platform "
            f"connections each side; median of {args.runs} runs"
        )
        print(f"{'path':<52}{'parts/s':>10}{'ratio':>8}")
        print(
            f"{'bare httpx loop (sequential per conversation)':<52}{med['bare']:>10,.0f}{1.0:>8.2f}"
        )
        print(
            f"{'fan-out, same calls (mark read off)':<52}{med['no_read']:>10,.0f}"
            f"{med['no_read'] / med['bare']:>8.2f}"
        )
        print(
            f"{'fan-out, default (+1 Read Message per reply)':<52}{med['default']:>10,.0f}"
            f"{med['default'] / med['bare']:>8.2f}"
        )
        print(f"sandbox answers: {stats['calls']}; duplicates flagged: {len(stats['duplicates'])}")
        print("runs:", {k: [round(x) for x in v] for k, v in results.items()})
    finally:
        await http.aclose()
        await producer.stop()
        for p in procs:
            p.terminate()
            p.wait(10)
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
