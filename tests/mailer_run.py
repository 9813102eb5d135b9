"""The mailer as it runs, for tests that need the bytes it actually sends.

A relay we control (aiosmtpd in the test loop) keeps each mail by its ``X-Bridge-Digest-Id``;
:func:`mailer_in_loop` runs the real :class:`~mailer.app.Mailer` in the test's event loop;
:class:`Mailers` runs ``python -m mailer`` subprocesses on a broker and that relay;
:func:`sent_by_mailer` starts both on a broker of its own, sends digests through
``mail.digests`` and returns the raw mails the relay received.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiosmtpd.smtp import SMTP, Envelope, Session

from devstack.broker import free_port
from devstack.stack import Ports, ServiceProcesses, stack_env, wait_healthy
from mailer.app import Mailer, outcome_ledger, relay_config
from mailer.mailer_settings import MailerSettings
from mailer.smtp_pool import SmtpPool
from shared.codec import encode
from shared.events import Digest, conversation_key
from shared.topics import MAIL_DIGESTS
from tests.polling import eventually
from tests.private_broker import private_broker


@dataclass
class Relay:
    """An SMTP relay we control: counts mails per digest id; can fail or go away."""

    port: int = field(default_factory=free_port)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    raw: dict[str, bytes] = field(default_factory=dict)
    message_ids: dict[str, set[bytes]] = field(default_factory=lambda: collections.defaultdict(set))
    temp_fail: bool = False
    delay_s: float = 0.0  # per mail, so a kill or a rebalance lands mid-load
    refuse: set[str] = field(default_factory=set)  # digest ids answered with 550
    refused: int = 0
    # The next `stall_replies` mails are stored, then their 250 waits `reply_stall_s` (a
    # relay slow to answer a mail it has taken); the next `drop_replies` are stored and
    # their connection is cut instead of answered.
    reply_stall_s: float = 0.0
    stall_replies: int = 0
    drop_replies: int = 0
    server: asyncio.base_events.Server | None = None
    sessions: list[SMTP] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.temp_fail:
            self.refused += 1
            return "451 4.3.0 Relay busy, try later"
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        raw = envelope.original_content or b""
        digest_id = header_value(raw, b"X-Bridge-Digest-Id")
        if digest_id in self.refuse:
            self.refused += 1
            return "550 5.1.1 Mailbox owner@sunnysocks.example does not exist"
        self.counts[digest_id] += 1
        self.raw[digest_id] = raw
        self.message_ids[digest_id].add(header_value(raw, b"Message-ID").encode())
        if self.drop_replies > 0:
            self.drop_replies -= 1
            if server.transport is not None:
                server.transport.abort()
        elif self.stall_replies > 0:
            self.stall_replies -= 1
            await asyncio.sleep(self.reply_stall_s)
        return "250 2.0.0 Stored"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def session() -> SMTP:
            protocol = SMTP(self, ident="test relay")
            self.sessions.append(protocol)
            return protocol

        self.server = await loop.create_server(session, host="127.0.0.1", port=self.port)

    async def stop(self) -> None:
        """Stop listening and drop every open connection (a relay outage)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for protocol in self.sessions:  # Server.close() leaves open connections up
            if protocol.transport is not None:
                protocol.transport.abort()
        self.sessions.clear()


@contextlib.asynccontextmanager
async def mailer_in_loop(
    bootstrap: str,
    relay: Relay,
    producer: AIOKafkaProducer,
    partitions: Collection[int] = (0,),
    **settings: object,
) -> AsyncIterator[Mailer]:
    """The real mailer in this event loop on ``bootstrap`` and ``relay`` (one SMTP session,
    no card lookups, ``settings`` on top), writing through ``producer`` (started by the
    caller), its outcome ledger holding ``partitions`` as on that assignment."""
    cfg = MailerSettings(  # type: ignore[call-arg]
        kafka_bootstrap=bootstrap,
        smtp_port=relay.port,
        smtp_pool_size=1,
        card_lookups=False,
        **settings,
    )
    pool = SmtpPool(relay_config(cfg))
    ledger = outcome_ledger(cfg, producer)
    await ledger.hold(partitions)
    try:
        yield Mailer(cfg, producer, pool, None, ledger)
    finally:
        await ledger.stop()
        await pool.close()


def header_value(raw: bytes, name: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


async def produce(bootstrap: str, digests: list[Digest]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(
                MAIL_DIGESTS.name,
                encode(d),
                key=conversation_key(d.shop_id, d.conversation_id).encode(),
            )
            for d in digests
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class Mailers:
    """Mailer subprocesses on one broker and one relay."""

    def __init__(self, bootstrap: str, relay: Relay, root: Path, extra: dict[str, str]) -> None:
        self.ports = Ports()
        self.env = stack_env(
            bootstrap,
            self.ports,
            window_s=3.0,
            data_dir=root,
            extra={
                "BRIDGE_SMTP_PORT": str(relay.port),
                "BRIDGE_SMTP_MAX_ATTEMPTS": "200",  # outlast the outage; backoff caps at 1 s
                "BRIDGE_SMTP_BACKOFF_BASE_S": "0.1",
                "BRIDGE_SMTP_BACKOFF_MAX_S": "1",
                "BRIDGE_SMTP_TIMEOUT_S": "3",
                "BRIDGE_KAFKA_SESSION_TIMEOUT_MS": "3000",  # a killed member is noticed sooner
                **extra,
            },
        )
        self.procs = ServiceProcesses(self.env, root / "logs")
        self.log_dir = root / "logs"

    async def start(self) -> None:
        self.procs.start("mailer")
        await wait_healthy({"mailer": self.ports.mailer}, timeout_s=30)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in self.log_dir.glob("*.log"))


async def sent_by_mailer(
    root: Path, digests: list[Digest], env: Mapping[str, str]
) -> dict[str, bytes]:
    """The raw mail the running mailer sent for each digest (by digest id), on a broker
    and a relay of their own (the session stack's mailer must not take these digests)."""
    broker = private_broker(root / "broker")
    await broker.start_with_topics()
    relay = Relay()
    await relay.start()
    mailers = Mailers(broker.bootstrap, relay, root, dict(env))
    try:
        await mailers.start()
        await produce(broker.bootstrap, digests)
        wanted = {d.digest_id for d in digests}
        await eventually(
            lambda: wanted <= set(relay.raw),
            timeout_s=60,
            what=f"the mailer's {len(wanted)} mails at the relay",
        )
        return {d.digest_id: relay.raw[d.digest_id] for d in digests}
    finally:
        mailers.procs.stop_all()
        await relay.stop()
        broker.stop()
