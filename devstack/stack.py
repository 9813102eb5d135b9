"""The whole system on one machine: broker, sandbox platform, mail sink, every service.

Used by ``python -m devstack`` (the README's run command) and by the end-to-end
tests, so what a person tries locally is what the tests exercise. Services run
as real subprocesses with the same entry points as the container images.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from devstack.broker import EmbeddedBroker, free_port
from devstack.chat_sandbox import create_sandbox
from devstack.dns_zone import DevZone, start_dev_dns
from devstack.kafka import KafkaCluster
from devstack.mail_sink import ReplyAccess, SinkState, create_sink_web, start_sink_smtp
from devstack.shop_users import ShopUsers
from shared.config import DEV_SECRETS
from shared.secrets_policy import DEV_MODE_VAR
from shared.tokens import parse_keys

KAFKA_LOCAL_PORT = 9092  # the durable local Kafka of `run-local.sh --kafka` (Kafka's own default)

SERVICE_COMMANDS: dict[str, list[str]] = {
    "ingest": ["-m", "ingest"],
    "consolidator": ["-m", "consolidator", "worker", "--loglevel", "warn"],
    "mailer": ["-m", "mailer"],
    "reply-front": ["-m", "reply_parser", "front"],
    "reply-parser": ["-m", "reply_parser", "parser"],
    "fanout": ["-m", "fanout"],
}


# Every local service process runs in development mode: it accepts the default secrets
# (shared/secrets_policy.py). The run command, the tests and the benchmarks take it from here.
DEV_MODE_ENV: Mapping[str, str] = {DEV_MODE_VAR: "true"}


@dataclass
class Ports:
    ingest: int = field(default_factory=free_port)
    consolidator: int = field(default_factory=free_port)
    mailer: int = field(default_factory=free_port)
    reply_parser: int = field(default_factory=free_port)
    reply_front: int = field(default_factory=free_port)
    fanout: int = field(default_factory=free_port)
    inbound_smtp: int = field(default_factory=free_port)
    sandbox: int = field(default_factory=free_port)
    sink_smtp: int = field(default_factory=free_port)
    sink_http: int = field(default_factory=free_port)
    dns: int = field(default_factory=free_port)  # UDP: the sellers' DNS (devstack.dns_zone)
    playground: int = field(default_factory=free_port)  # devstack.playground

    @classmethod
    def fixed(cls) -> Ports:
        """The well-known local ports the README names."""
        return cls(8000, 8101, 8102, 8103, 8105, 8104, 2525, 8300, 8025, 8301, 8053, 8080)

    def http_ports(self) -> dict[str, int]:
        return {
            "ingest": self.ingest,
            "consolidator": self.consolidator,
            "mailer": self.mailer,
            "reply-parser": self.reply_parser,
            "reply-front": self.reply_front,
            "fanout": self.fanout,
        }


def stack_env(
    bootstrap: str,
    ports: Ports,
    *,
    window_s: float,
    data_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Environment for every service process (the same variables production sets, and
    development mode)."""
    env = {
        **os.environ,
        **DEV_MODE_ENV,
        "KAFKA_BOOTSTRAP": bootstrap,
        "BRIDGE_WINDOW_MAILBOX_S": str(window_s),
        "BRIDGE_WINDOW_HELPDESK_S": str(window_s),
        "BRIDGE_INGEST_PORT": str(ports.ingest),
        "BRIDGE_CONSOLIDATOR_PORT": str(ports.consolidator),
        "BRIDGE_MAILER_PORT": str(ports.mailer),
        "BRIDGE_REPLY_PARSER_PORT": str(ports.reply_parser),
        "BRIDGE_REPLY_FRONT_PORT": str(ports.reply_front),
        "BRIDGE_FANOUT_PORT": str(ports.fanout),
        "BRIDGE_INBOUND_SMTP_PORT": str(ports.inbound_smtp),
        "BRIDGE_SMTP_PORT": str(ports.sink_smtp),
        "BRIDGE_PLATFORM_BASE_URL": f"http://127.0.0.1:{ports.sandbox}",
        "BRIDGE_CHAT_DEEP_LINK_BASE": f"http://127.0.0.1:{ports.sandbox}/chat",
        "BRIDGE_SETTINGS_LINK_TEMPLATE": f"http://127.0.0.1:{ports.ingest}/console/shops/{{shop_id}}/settings",
        "BRIDGE_ACTIVATION_LINK_BASE": f"http://127.0.0.1:{ports.ingest}/console/activate",
        "BRIDGE_CONSOLIDATOR_DATA_DIR": str(data_dir / "consolidator"),
        "BRIDGE_SMTP_BACKOFF_BASE_S": "0.2",
        "BRIDGE_SMTP_BACKOFF_MAX_S": "2",
        # Reply authentication asks the local zone (no query leaves the host); a DNS failure
        # is retried within seconds instead of minutes.
        "BRIDGE_AUTH_DNS_SERVER": f"127.0.0.1:{ports.dns}",
        "BRIDGE_AUTH_DNS_TIMEOUT_S": "1",
        "BRIDGE_AUTH_RETRY_ATTEMPTS": "6",
        "BRIDGE_AUTH_RETRY_BASE_S": "0.5",
        "BRIDGE_AUTH_RETRY_MAX_S": "2",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


class ServiceProcesses:
    """Start, kill and restart the services as subprocesses."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> None:
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        self.procs[name] = subprocess.Popen(
            [sys.executable, *SERVICE_COMMANDS[name]],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start_all(self) -> None:
        for name in SERVICE_COMMANDS:
            self.start(name)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.kill(name, signal.SIGTERM)

    def dead(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]


async def wait_healthy(ports: Mapping[str, int], timeout_s: float = 60.0) -> None:
    """Wait until every service answers /healthz with 200."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    pending = dict(ports)
    async with httpx.AsyncClient(timeout=2.0) as client:
        while pending and loop.time() < deadline:
            for name, port in list(pending.items()):
                try:
                    resp = await client.get(f"http://127.0.0.1:{port}/healthz")
                    if resp.status_code == 200:
                        pending.pop(name)
                except httpx.HTTPError:
                    pass
            if pending:
                await asyncio.sleep(0.3)
    if pending:
        raise TimeoutError(f"services not healthy: {sorted(pending)}")


# The in-loop servers (sandbox, mail sink) close a connection idle this long; their
# clients keep idle ones for half of it, so a request never goes out on a connection the
# server is closing at that moment (httpx and uvicorn both default to 5 s: a race).
SERVER_KEEP_ALIVE_S = 5


def local_client(timeout_s: float) -> httpx.AsyncClient:
    """A client of the in-loop servers (see ``SERVER_KEEP_ALIVE_S``)."""
    return httpx.AsyncClient(
        timeout=timeout_s, limits=httpx.Limits(keepalive_expiry=SERVER_KEEP_ALIVE_S / 2)
    )


async def serve_in_loop(
    app: Callable[..., Any], port: int
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    return server, task


@dataclass
class Platforms:
    """The in-process fakes of the outside world: chat sandbox, mail sink, sellers' DNS."""

    sink: SinkState
    sandbox_app: object
    servers: list[uvicorn.Server]
    tasks: list[asyncio.Task[None]]
    smtp_server: asyncio.base_events.Server
    dns_zone: DevZone
    dns_transport: asyncio.DatagramTransport

    async def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.smtp_server.close()
        self.dns_transport.close()


def reply_access(env: Mapping[str, str], ports: Ports) -> ReplyAccess:
    """What the sink and the playground need to answer as a shop's users and to read the
    parser's verdict: the admin API (operator token), the reply-token keys, the broker."""
    return ReplyAccess(
        users=ShopUsers(
            f"http://127.0.0.1:{ports.ingest}",
            env.get("BRIDGE_ADMIN_OPERATOR_TOKEN", DEV_SECRETS["admin_operator_token"]),
        ),
        token_keys=parse_keys(env.get("BRIDGE_TOKEN_KEYS", DEV_SECRETS["token_keys"])),
        kafka_bootstrap=env.get("KAFKA_BOOTSTRAP"),
    )


async def start_platforms(
    ports: Ports, env: Mapping[str, str], *, redelivery_delays_s: tuple[float, ...] | None = None
) -> Platforms:
    """Sink, sandbox and DNS; ``redelivery_delays_s`` replaces the sandbox's short webhook
    redelivery schedule (chaos runs keep redelivering while ingest restarts)."""
    sink = SinkState()
    smtp_server = await start_sink_smtp(sink, "127.0.0.1", ports.sink_smtp)
    sink_web = create_sink_web(
        sink,
        inbound_host="127.0.0.1",
        inbound_port=ports.inbound_smtp,
        default_from=env.get("BRIDGE_DEFAULT_DESTINATION_EMAIL", "seller@shop.localhost"),
        access=reply_access(env, ports),
    )
    sandbox = create_sandbox(
        env.get("BRIDGE_PLATFORM_APP_KEY", "sandbox-app-key"),
        env.get("BRIDGE_PLATFORM_APP_SECRET", "sandbox-app-secret"),
        env.get("BRIDGE_PLATFORM_ACCESS_TOKEN", "sandbox-access-token"),
        f"http://127.0.0.1:{ports.ingest}/webhooks/tiktok",
        **({"redelivery_delays_s": redelivery_delays_s} if redelivery_delays_s else {}),
    )
    s1, t1 = await serve_in_loop(sink_web, ports.sink_http)
    s2, t2 = await serve_in_loop(sandbox, ports.sandbox)
    zone = DevZone.default()
    dns_transport = await start_dev_dns(zone, "127.0.0.1", ports.dns)
    return Platforms(sink, sandbox, [s1, s2], [t1, t2], smtp_server, zone, dns_transport)


async def start_broker(
    log_dir: Path, *, kafka_dir: Path | None = None
) -> EmbeddedBroker | KafkaCluster | None:
    """An embedded broker unless KAFKA_BOOTSTRAP points at a real Kafka; with ``kafka_dir``,
    a durable single-node Kafka kept there (its records outlive a restart of the stack)."""
    if kafka_dir is not None:
        kafka = KafkaCluster(kafka_dir, port=KAFKA_LOCAL_PORT)
        if kafka.pids:  # stopping the stack would stop it under whoever started it
            raise RuntimeError(f"a Kafka already runs from {kafka_dir} (another --kafka stack?)")
        try:
            await kafka.start_with_topics()
        except BaseException:
            kafka.stop()
            raise
        return kafka
    if os.environ.get("KAFKA_BOOTSTRAP"):
        from shared.kafka import ensure_topics

        await ensure_topics(os.environ["KAFKA_BOOTSTRAP"])
        return None
    broker = EmbeddedBroker(log_path=str(log_dir / "broker.log"))
    await broker.start_with_topics()
    return broker
