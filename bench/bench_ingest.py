"""Webhooks/s ingested by one ingest process, beside a bare FastAPI endpoint that only answers 200.

One command: ``.venv/bin/python bench/bench_ingest.py [--runs 3] [--seconds 5]``. Needs ``wrk``
(``apt-get install -y wrk``). Starts an embedded broker, the ingest (``python -m ingest``,
one uvicorn process) and a bare app (one uvicorn process), and drives both with wrk posting a
signed type-14 body (a fresh message id per request, so nothing is deduplicated away).
Neither side writes an access log (the ingest turns it off in ``python -m ingest``).
Prints medians and the ratio.
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
import textwrap
from pathlib import Path

from devstack.broker import EmbeddedBroker, free_port
from devstack.stack import DEV_MODE_ENV, wait_healthy

BARE_APP = textwrap.dedent("""
    from fastapi import FastAPI, Request, Response
    app = FastAPI()
    @app.post("/webhooks/tiktok")
    async def ok(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)
""")

# wrk computes the TikTok signature itself? Lua has no HMAC; instead the ingest under bench
# uses a per-request body whose signature was precomputed for a pool of bodies.
LUA = textwrap.dedent("""
    local bodies = {}
    local sigs = {}
    local n = 0
    for line in io.lines("%(pool)s") do
      local sig, body = line:match("^(%%x+) (.*)$")
      n = n + 1; sigs[n] = sig; bodies[n] = body
    end
    local i = 0
    request = function()
      i = i %% n + 1
      return wrk.format("POST", "/webhooks/tiktok",
        {["Content-Type"] = "application/json", ["Authorization"] = sigs[i]}, bodies[i])
    end
""")


def write_pool(path: Path, count: int, key: str, secret: str) -> None:
    import time

    import orjson

    from shared.chat_platform.tiktok_signing import sign_webhook

    with path.open("w") as f:
        for i in range(count):
            body = orjson.dumps(
                {
                    "type": 14,
                    "tts_notification_id": str(i),
                    "shop_id": "1",
                    "timestamp": int(time.time()),
                    "data": {
                        "content": '{"content":"hello"}',
                        "conversation_id": f"c{i % 500}",
                        "create_time": int(time.time()),
                        "is_visible": True,
                        "message_id": f"bench-{os.getpid()}-{i}",
                        "index": str(i),
                        "type": "TEXT",
                        "sender": {"im_user_id": "b", "role": "BUYER", "nickname": "Ana"},
                    },
                }
            )
            f.write(f"{sign_webhook(key, body, secret)} {body.decode()}\n")


def wrk(url: str, script: Path, seconds: int, conns: int) -> tuple[float, dict[str, int]]:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, {"non_2xx": int(non2xx.group(1)) if non2xx else 0}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    broker = EmbeddedBroker(log_path=str(tmp / "broker.log"))
    await broker.start_with_topics()
    ingest_port, bare_port = free_port(), free_port()
    env = {
        **os.environ,
        **DEV_MODE_ENV,
        "KAFKA_BOOTSTRAP": broker.bootstrap,
        "BRIDGE_INGEST_PORT": str(ingest_port),
        "BRIDGE_PLATFORM_APP_KEY": "k",
        "BRIDGE_WEBHOOK_SECRET": "s",
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_INGEST_DEDUP_CAPACITY": "10",
    }  # the pool repeats: keep it from deduplicating
    (tmp / "bare.py").write_text(BARE_APP)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ingest"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "ingest.log", "wb"),
        ),  # noqa: SIM115
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare:app",
                "--port",
                str(bare_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--app-dir",
                str(tmp),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        await wait_healthy({"ingest": ingest_port}, timeout_s=60)
        await asyncio.sleep(1.0)
        pool = tmp / "pool.txt"
        write_pool(pool, 20_000, "k", "s")
        script = tmp / "post.lua"
        script.write_text(LUA % {"pool": pool})
        ingest_runs, bare_runs, errors = [], [], 0
        for _ in range(args.runs):
            rps, info = wrk(f"http://127.0.0.1:{bare_port}", script, args.seconds, args.connections)
            bare_runs.append(rps)
            rps, info = wrk(
                f"http://127.0.0.1:{ingest_port}", script, args.seconds, args.connections
            )
            ingest_runs.append(rps)
            errors += info["non_2xx"]
        ing, bare = statistics.median(ingest_runs), statistics.median(bare_runs)
        print(f"{'endpoint':<34}{'req/s (median of ' + str(args.runs) + ')':>24}")
        print(f"{'bare FastAPI, answers 200':<34}{bare:>24,.0f}")
        print(f"{'ingest (verify+parse+Kafka ack)':<34}{ing:>24,.0f}")
        print(f"{'ratio ingest / bare':<34}{ing / bare:>24.2f}")
        print(f"{'ingest non-2xx answers':<34}{errors:>24}")
        print(f"runs: ingest {ingest_runs}, bare {bare_runs}")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
