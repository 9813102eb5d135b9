"""The admin directory on disk (``BRIDGE_INGEST_DIRECTORY_PATH``): an ingest process stopped
(SIGTERM, then kill -9) and started again serves the users it had and those written while it
was down, and reads only the records written since its store's positions; a store whose
positions lie past the topics' ends (topics recreated) is wiped and rebuilt.

One private broker and one ingest subprocess at a time (the records-read count must see only
this module's writes)."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.stack import Ports, ServiceProcesses, stack_env, wait_healthy
from shared.codec import encode
from shared.events import ShopSettings, ShopUser, UserRole, UserStatus
from shared.kafka import topic_partitions
from shared.topic_state_store import Position, TopicStateStore
from shared.topics import ADMIN_USERS, SHOP_SETTINGS
from tests.polling import eventually
from tests.private_broker import private_broker

pytestmark = pytest.mark.integration

OPERATOR = "operator-token-for-the-directory-test"
READ_METRIC = 'bridge_state_records_read_total{holder="admin-directory"}'


async def records_on_topics(bootstrap: str) -> int:
    """Records on the admin state topics (each written alone: the end offsets are exact on
    Tansu too)."""
    tps = await topic_partitions(bootstrap, ADMIN_USERS.name, SHOP_SETTINGS.name)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


@dataclass
class Rig:
    procs: ServiceProcesses
    ports: Ports
    bootstrap: str
    store_path: Path
    http: httpx.AsyncClient
    not_read: float = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports.ingest}"

    async def start_ingest(self) -> None:
        self.procs.start("ingest")
        await wait_healthy({"ingest": self.ports.ingest}, timeout_s=60)
        # What was in its store already (not read again by this process)
        self.not_read = await records_on_topics(self.bootstrap) - await self.records_read()

    def logs(self) -> str:
        path = self.procs.log_dir / "ingest.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    async def records_read(self) -> float:
        text = (await self.http.get(f"{self.base}/metrics")).text
        m = re.search(rf"^{re.escape(READ_METRIC)} (\S+)$", text, re.MULTILINE)
        return float(m.group(1)) if m else 0.0

    async def caught_up(self) -> None:
        """Everything on the admin state topics read (so its positions are stored)."""
        on_topics = await records_on_topics(self.bootstrap)

        async def read_all() -> bool:
            return self.not_read + await self.records_read() == on_topics

        await eventually(read_all, timeout_s=20, what=f"all {on_topics} records read")

    async def onboard(self, shop: str) -> None:
        resp = await self.http.post(
            f"{self.base}/admin/shops",
            json={"shop_id": shop, "main_account_email": f"main@{shop}.test", "shop_name": shop},
            headers={"authorization": f"Bearer {OPERATOR}"},
        )
        assert resp.status_code == 201, resp.text

    async def shops(self) -> dict[str, int]:
        """Listed shop id -> its number of users, as the operator sees them."""
        resp = await self.http.get(
            f"{self.base}/admin/shops?limit=500", headers={"authorization": f"Bearer {OPERATOR}"}
        )
        assert resp.status_code == 200, resp.text
        return {s["shop_id"]: s["users"] for s in resp.json()["shops"]}


@pytest_asyncio.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
    root = tmp_path_factory.mktemp("directory")
    broker = private_broker(root / "broker")
    await broker.start_with_topics()
    ports = Ports()
    store_path = root / "store"
    env = stack_env(
        broker.bootstrap,
        ports,
        window_s=5,
        data_dir=root,
        extra={
            "BRIDGE_INGEST_DIRECTORY_PATH": str(store_path),
            "BRIDGE_ADMIN_OPERATOR_TOKEN": OPERATOR,
        },
    )
    procs = ServiceProcesses(env, root / "logs")
    http = httpx.AsyncClient(timeout=10.0)
    try:
        yield Rig(procs, ports, broker.bootstrap, store_path, http)
    finally:
        await http.aclose()
        procs.stop_all()
        broker.stop()


async def write_while_down(bootstrap: str, shop: str) -> int:
    """A shop onboarded by another replica while this one is down: its main account, an
    agent and its settings, as records. Returns how many were written."""
    users = [
        ShopUser(
            shop_id=shop,
            email=f"{name}@{shop}.test",
            role=role,
            status=UserStatus.ACTIVE,
            invited_at_ms=n,
            updated_at_ms=1000,
        )
        for n, (name, role) in enumerate(
            [("main", UserRole.MAIN_ACCOUNT), ("agent", UserRole.CS_AGENT)]
        )
    ]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for user in users:
            key = f"{shop}:{user.email}".encode()
            await producer.send_and_wait(ADMIN_USERS.name, encode(user), key=key)
        settings = ShopSettings(shop_id=shop, shop_name=shop, updated_at_ms=1000)
        await producer.send_and_wait(SHOP_SETTINGS.name, encode(settings), key=shop.encode())
    finally:
        await producer.stop()
    return len(users) + 1


async def test_a_restarted_ingest_serves_old_and_new_users_reading_only_what_was_written_since(
    rig: Rig,
) -> None:
    await rig.start_ingest()
    await rig.onboard("before-stop")
    await rig.caught_up()
    rig.procs.kill("ingest", signal.SIGTERM)

    written = await write_while_down(rig.bootstrap, "while-stopped")
    await rig.start_ingest()
    assert await rig.records_read() == written, rig.logs()
    assert await rig.shops() == {"before-stop": 1, "while-stopped": 2}

    # Once more, ended by kill -9 right after its own writes were read back.
    await rig.onboard("before-kill")
    await rig.caught_up()
    rig.procs.kill("ingest", signal.SIGKILL)

    written = await write_while_down(rig.bootstrap, "while-killed")
    await rig.start_ingest()
    assert await rig.records_read() == written, rig.logs()
    assert await rig.shops() == {
        "before-stop": 1,
        "while-stopped": 2,
        "before-kill": 1,
        "while-killed": 2,
    }
    rig.procs.kill("ingest", signal.SIGTERM)


async def test_a_store_with_positions_past_the_topic_end_is_rebuilt_from_the_beginning(
    rig: Rig,
) -> None:
    await rig.start_ingest()
    await rig.onboard("kept")
    await rig.caught_up()
    rig.procs.kill("ingest", signal.SIGTERM)
    # As a store left from topics since deleted and created again: its positions are past
    # the (new) topics' ends, and it holds a shop those topics never had.
    stale = TopicStateStore(str(rig.store_path))
    stale.put(b"ostale-shop", b"")
    stale.commit(
        {
            tp: Position(at.next_offset + 1_000, at.last_offset + 1_000, at.last_fingerprint)
            for tp, at in stale.positions().items()
        }
    )
    stale.close()

    await rig.start_ingest()
    assert await rig.records_read() == await records_on_topics(rig.bootstrap), rig.logs()
    listed = await rig.shops()
    assert "kept" in listed and "stale-shop" not in listed
    rig.procs.kill("ingest", signal.SIGTERM)
