"""``python -m devstack [--kafka]``: run the whole bridge locally until Ctrl-C.

Broker (embedded Tansu, memory only; or with ``--kafka`` a durable Apache Kafka under
``var/kafka-local``, whose records outlive a restart), TikTok Shop sandbox, mail sink and
every service, with a short consolidation window (``BRIDGE_DEV_WINDOW_S``, default 20 s), and
one demo shop onboarded through the admin API (:mod:`devstack.demo_shop`). Services run
under :mod:`devstack.supervisor`: one that exits unexpectedly is started again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

from devstack.demo_shop import DEMO_SHOP_ID, onboard_demo_shop
from devstack.kafka import KafkaUnavailable
from devstack.stack import (
    Ports,
    stack_env,
    start_broker,
    start_platforms,
    wait_healthy,
)
from devstack.supervisor import Supervisor, stack_specs

BANNER = """
Chat <-> email bridge is running (logs in {logs}; broker: {broker}).

  Mail sink (read digests, reply):  http://127.0.0.1:{sink}/
  Sandbox chat platform:            http://127.0.0.1:{sandbox}/docs
  Ingest webhook / metrics:         http://127.0.0.1:{ingest}/webhooks/tiktok  /metrics
  Inbound SMTP (reply front):       127.0.0.1:{smtp}

Demo shop {shop} is onboarded: alerts on, digests to its activated main account
{main}. (A shop nobody onboarded gets no digest: see docs/admin-api.md.)

Send a buyer message (a digest arrives {window:g} s after the buyer's last message):
  curl -s -XPOST http://127.0.0.1:{sandbox}/sandbox/buyer_messages \\
       -H 'content-type: application/json' \\
       -d '{{"shop_id":"{shop}","conversation_id":"576460602530154245",
            "buyer_name":"Ana","text":"Hi! Is this in stock?"}}'
Reply: open the mail sink, type an answer next to the digest and press Reply (or POST
  /messages/N/reply with {{"text": "..."}}). What the buyer received:
  curl -s http://127.0.0.1:{sandbox}/sandbox/conversations/576460602530154245/buyer_view
A service that exits is restarted (with a back-off; a line here says which and why).
Ctrl-C stops everything.
"""


async def run(kafka_dir: Path | None) -> None:
    root = Path(os.environ.get("BRIDGE_DEV_DIR", "var/dev"))
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    window = float(os.environ.get("BRIDGE_DEV_WINDOW_S", "20"))
    ports = Ports.fixed()
    broker = await start_broker(logs, kafka_dir=kafka_dir)
    platforms = None
    services = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        bootstrap = broker.bootstrap if broker else os.environ["KAFKA_BOOTSTRAP"]
        env = stack_env(bootstrap, ports, window_s=window, data_dir=root)
        platforms = await start_platforms(ports, env)
        services = Supervisor(stack_specs(env), logs)
        services.start_all()
        # Restarts start at once: a service that dies while the stack boots comes back too.
        watching = asyncio.create_task(services.run(stop))
        await wait_healthy(ports.http_ports(), timeout_s=90)
        kind = (
            f"Apache Kafka in {kafka_dir}"
            if kafka_dir
            else "embedded Tansu, memory only"
            if broker
            else "KAFKA_BOOTSTRAP"
        )
        main = await onboard_demo_shop(f"http://127.0.0.1:{ports.ingest}", env, platforms.sink)
        print(
            BANNER.format(
                logs=logs,
                broker=f"{kind} on {bootstrap}",
                sink=ports.sink_http,
                sandbox=ports.sandbox,
                ingest=ports.ingest,
                smtp=ports.inbound_smtp,
                window=window,
                shop=DEMO_SHOP_ID,
                main=main,
            ),
            flush=True,
        )
        await watching
    finally:
        if services:
            services.stop_all()
        if platforms:
            await platforms.stop()
        if broker:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/run-local.sh")
    parser.add_argument(
        "--kafka",
        action="store_true",
        help="run on a durable Apache Kafka (var/kafka-local, port 9092; needs "
        "java and mvn) instead of the embedded broker",
    )
    args = parser.parse_args()
    try:
        asyncio.run(run(Path("var/kafka-local") if args.kafka else None))
    except KafkaUnavailable as exc:
        raise SystemExit(f"--kafka: {exc}") from None


if __name__ == "__main__":
    main()
