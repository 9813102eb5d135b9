"""A private broker, consolidator subprocesses, a chat.events writer and a mail.digests reader.

The consolidator tests kill and restart the service, so they run their own broker
(``tests/private_broker.py``) and processes (faust's group id is fixed; sharing the session broker
would mix them with the session stack's consolidator).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.broker import free_port
from devstack.stack import Ports, ServiceProcesses, stack_env
from shared.codec import decode, encode
from shared.events import ChatContent, ChatEvent, ChatEventKind, Digest, ShopSettings
from shared.topics import CHAT_EVENTS, MAIL_DIGESTS, SHOP_SETTINGS
from tests.private_broker import Broker, private_broker


@dataclass
class DigestReader:
    """Reads mail.digests from the beginning; keeps every record and the distinct digests."""

    bootstrap: str
    records: list[Digest] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    @property
    def distinct(self) -> dict[str, Digest]:
        return {d.digest_id: d for d in self.records}

    def message_ids(self) -> list[str]:
        """Message ids over the distinct digests (a duplicate id shows up twice)."""
        return [m.message_id for d in self.distinct.values() for m in d.messages]

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        tps = [TopicPartition(MAIL_DIGESTS.name, p) for p in range(MAIL_DIGESTS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)

        async def run() -> None:
            try:
                while True:
                    for recs in (await consumer.getmany(timeout_ms=200)).values():
                        self.records.extend(decode(Digest, r.value) for r in recs)
            finally:
                await consumer.stop()

        self._task = asyncio.create_task(run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


ONBOARDED_SHOP = "shop1"


@dataclass
class ConsolidatorRig:
    broker: Broker
    root: Path
    env: dict[str, str]
    producer: AIOKafkaProducer
    digests: DigestReader
    procs: list[ServiceProcesses] = field(default_factory=list)

    def start_consolidator(self) -> ServiceProcesses:
        """One more consolidator process (its own HTTP port and data dir)."""
        n = len(self.procs)
        env = {
            **self.env,
            "BRIDGE_CONSOLIDATOR_PORT": str(free_port()),
            "BRIDGE_CONSOLIDATOR_DATA_DIR": str(self.root / f"data{n}"),
        }
        procs = ServiceProcesses(env, self.root / f"logs{n}")
        procs.start("consolidator")
        self.procs.append(procs)
        return procs

    async def buyer(self, shop: str, conv: str, mid: str, seq: int) -> None:
        now = int(time.time() * 1000)
        ev = ChatEvent(
            kind=ChatEventKind.BUYER_MESSAGE,
            shop_id=shop,
            conversation_id=conv,
            message_id=mid,
            sent_at_ms=now,
            seq=seq,
            buyer_id="b",
            buyer_name="Ana",
            content=ChatContent(text=f"message {mid}"),
            received_at_ms=now,
        )
        await self.producer.send(CHAT_EVENTS.name, encode(ev), key=ev.conversation_key.encode())

    async def settings(self, shop: ShopSettings) -> None:
        await self.producer.send_and_wait(
            SHOP_SETTINGS.name, encode(shop), key=shop.shop_id.encode()
        )

    def logs(self) -> str:
        return "\n".join(
            f"== {p}\n{p.read_text(errors='replace')[-4000:]}"
            for p in sorted(self.root.glob("logs*/*.log"))
        )


@contextlib.asynccontextmanager
async def consolidator_rig(root: Path, **env_extra: str) -> AsyncIterator[ConsolidatorRig]:
    broker = private_broker(root / "broker")
    await broker.start_with_topics()
    env = stack_env(
        broker.bootstrap,
        Ports(),
        window_s=1.0,
        data_dir=root,
        extra={
            "BRIDGE_TICK_INTERVAL_S": "0.1",
            "BRIDGE_MAX_WAIT_S": "5",
            "BRIDGE_WINDOW_OVERRIDE_MIN_S": "0.5",
            **env_extra,
        },
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    digests = DigestReader(broker.bootstrap)
    await digests.start()
    rig = ConsolidatorRig(broker, root, env, producer, digests)
    # The shop the rig's tests write to is onboarded (a shop with no record gets nothing).
    await rig.settings(ShopSettings(ONBOARDED_SHOP, alerts_enabled=True))
    try:
        yield rig
    finally:
        for procs in rig.procs:
            procs.stop_all()
        await digests.stop()
        await producer.stop()
        broker.stop()


async def wait_for(predicate, timeout_s: float, interval_s: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval_s)
    return bool(predicate())
