"""``python -m devstack [--kafka]``: run the whole bridge locally until Ctrl-C.

Broker (embedded Tansu, memory only; or with ``--kafka`` a durable Apache Kafka under
``var/kafka-local``, whose records outlive a restart), TikTok Shop sandbox, mail sink, the
playground (:mod:`devstack.playground`) and every service, with a short consolidation window
(``BRIDGE_DEV_WINDOW_S``, default 20 s), Prometheus with the alert rules when Debian's
``prometheus`` is installed, and one demo shop onboarded through the admin API as a seller
does it (:mod:`devstack.demo_shop`). Services run under :mod:`devstack.supervisor`: one that
exits unexpectedly is started again.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path

import httpx

from devstack.demo_shop import (
    DEMO_CONVERSATION_ID,
    DEMO_SHOP_NAME,
    DemoShop,
    onboard_demo_shop,
    sign_in_link,
)
from devstack.kafka import KafkaUnavailable
from devstack.playground import PlaygroundLinks, serve_playground
from devstack.prometheus_local import (
    HOW_TO_GET_IT,
    PROMETHEUS_PORT,
    prometheus_binary,
    prometheus_spec,
    write_config,
)
from devstack.stack import (
    Ports,
    stack_env,
    start_broker,
    start_platforms,
    wait_healthy,
)
from devstack.supervisor import Supervisor, stack_specs

BANNER = """
Playground: http://127.0.0.1:{playground}/  (the buyer's chat, the seller's mailbox, the topics)

Chat <-> email bridge is running (logs in {logs}; broker: {broker}).
  Mail sink (every delivered mail):  http://127.0.0.1:{sink}/
  Seller sign-in:                    {sign_in}
  Sandbox chat platform:             http://127.0.0.1:{sandbox}/docs
  Ingest webhook / metrics:          http://127.0.0.1:{ingest}/webhooks/tiktok  /metrics
  Inbound SMTP (reply front):        127.0.0.1:{smtp}
  {prometheus}

Demo shop {shop} ("{shop_name}") is onboarded as a seller does it: main account
{main} and customer-service agent {agent}, both activated; alerts on,
digests to the agent's inbox {destination} (a mailbox). {token}

Send a buyer message (a digest arrives {window:g} s after the buyer's last message):
  curl -s -XPOST http://127.0.0.1:{sandbox}/sandbox/buyer_messages \\
       -H 'content-type: application/json' \\
       -d '{{"shop_id":"{shop}","conversation_id":"{conversation}",
            "buyer_name":"Ana","text":"Hi! Is this in stock?"}}'
Reply in the playground, or open the digest in the mail sink and press Reply (as one of the
shop's activated users). What the buyer received:
  curl -s http://127.0.0.1:{sandbox}/sandbox/conversations/{conversation}/buyer_view
A service that exits is restarted (with a back-off; a line here says which and why).
Ctrl-C stops everything.
"""


async def console_sign_in(ingest_url: str) -> str:
    """The seller console's sign-in page when ingest serves one, else ""."""
    url = f"{ingest_url}/console/sign-in"
    try:
        async with httpx.AsyncClient(timeout=5.0) as http:
            return url if (await http.get(url)).status_code == 200 else ""
    except httpx.HTTPError:
        return ""


def sign_in_lines(shop: DemoShop, sign_in: str, link: str) -> str:
    """How the main account signs in: the link the console mailed it (from the mail sink),
    else its API token (the console's sign-in page and the admin API take it)."""
    if link:
        return f"\nSign in as {shop.main_account} (the link the console just mailed it):\n  {link}"
    if not shop.main_api_token:
        return "(Onboarded by an earlier run: use the API token printed then.)"
    where = "paste it on the sign-in page" if sign_in else "a bearer token for /admin"
    return f"\nThe main account's API token ({where}):\n  {shop.main_api_token}"


async def run(kafka_dir: Path | None) -> None:
    root = Path(os.environ.get("BRIDGE_DEV_DIR", "var/dev"))
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    window = float(os.environ.get("BRIDGE_DEV_WINDOW_S", "20"))
    ports = Ports.fixed()
    broker = await start_broker(logs, kafka_dir=kafka_dir)
    platforms = None
    services = None
    playground = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        bootstrap = broker.bootstrap if broker else os.environ["KAFKA_BOOTSTRAP"]
        env = stack_env(bootstrap, ports, window_s=window, data_dir=root)
        platforms = await start_platforms(ports, env)
        specs = stack_specs(env)
        binary = prometheus_binary()
        if binary:
            config = write_config(root / "prometheus", ports.http_ports())
            specs.append(prometheus_spec(binary, config))
        services = Supervisor(specs, logs)
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
        ingest = f"http://127.0.0.1:{ports.ingest}"
        shop = await onboard_demo_shop(ingest, env, platforms.sink)
        sign_in = await console_sign_in(ingest)
        link = (
            await sign_in_link(ingest, platforms.sink, shop.shop_id, shop.main_account)
            if sign_in
            else ""
        )
        prometheus = f"http://127.0.0.1:{PROMETHEUS_PORT}/" if binary else ""
        links = PlaygroundLinks(
            sink=f"http://127.0.0.1:{ports.sink_http}",
            sandbox=f"http://127.0.0.1:{ports.sandbox}",
            ingest=ingest,
            prometheus=prometheus,
            console=sign_in,
        )
        playground = await serve_playground(
            ports.playground, sink=platforms.sink, env=env, ports=ports, links=links
        )
        print(
            BANNER.format(
                playground=ports.playground,
                logs=logs,
                broker=f"{kind} on {bootstrap}",
                sink=ports.sink_http,
                sign_in=sign_in or f"{ingest}/admin (the admin API: docs/admin-api.md)",
                sandbox=ports.sandbox,
                ingest=ports.ingest,
                smtp=ports.inbound_smtp,
                prometheus=(
                    f"Prometheus (alert rules loaded):   {prometheus}"
                    if binary
                    else f"Prometheus: not installed; {HOW_TO_GET_IT}"
                ),
                window=window,
                shop=shop.shop_id,
                shop_name=DEMO_SHOP_NAME,
                main=shop.main_account,
                agent=shop.agent,
                destination=shop.destination,
                token=sign_in_lines(shop, sign_in, link),
                conversation=DEMO_CONVERSATION_ID,
            ),
            flush=True,
        )
        await watching
    finally:
        if playground:
            server, task = playground
            server.should_exit = True
            await asyncio.gather(task, return_exceptions=True)
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
