"""Shared fixtures: one embedded broker per test session, and the whole stack on free ports.

Set ``KAFKA_BOOTSTRAP`` to run the integration tests against a real Kafka instead (tests
with a broker of their own then get a Kafka too: ``tests/private_broker.py``).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer
from hypothesis import settings as hypothesis_settings

from devstack.broker import EmbeddedBroker
from devstack.stack import (
    Platforms,
    Ports,
    ServiceProcesses,
    local_client,
    stack_env,
    start_platforms,
    wait_healthy,
)
from shared.codec import encode
from shared.events import ShopSettings
from shared.kafka import ensure_topics
from shared.logging import now_ms
from shared.tokens import TokenError, parse_keys, verify_token
from shared.topics import SHOP_SETTINGS
from tests.private_broker import ON_KAFKA

# The machine is shared and noisy: no per-example deadlines. CI explores a fixed
# (derandomized) set of examples so a submission's verdict is repeatable.
hypothesis_settings.register_profile("dev", deadline=None, print_blob=True)
hypothesis_settings.register_profile(
    "ci", deadline=None, print_blob=True, derandomize=True, max_examples=200
)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``tansu_only`` tests in the Kafka leg and ``kafka_only`` ones on Tansu."""
    skipped = "tansu_only" if ON_KAFKA else "kafka_only"
    leg = "Apache Kafka" if ON_KAFKA else "the embedded Tansu broker"
    for item in items:
        if (marker := item.get_closest_marker(skipped)) is not None:
            why = marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(reason=f"{skipped} on {leg}: {why}".rstrip(": ")))


@pytest_asyncio.fixture(scope="session")
async def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A real Kafka-protocol broker for the session: Tansu (memory storage), or the Apache
    Kafka that ``KAFKA_BOOTSTRAP`` names (the test command's Kafka leg)."""
    if ON_KAFKA:
        await ensure_topics(os.environ["KAFKA_BOOTSTRAP"])
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    broker = EmbeddedBroker(log_path=str(log))
    await broker.start_with_topics()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


WINDOW_S = 3.0
# Long enough for every service's settings view (a long-polling consumer) to apply a record.
SETTINGS_APPLY_S = 1.5


@dataclass
class Stack:
    """The running system: services as subprocesses, sandbox and sink in the test loop."""

    ports: Ports
    env: dict[str, str]
    services: ServiceProcesses
    platforms: Platforms
    http: httpx.AsyncClient
    log_dir: Path

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sandbox}"

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sink_http}"

    @property
    def seller(self) -> str:
        """The address the mail sink replies from unless told otherwise."""
        return self.env.get("BRIDGE_DEFAULT_DESTINATION_EMAIL", "seller@shop.localhost")

    async def onboard(self, shop_id: str, email: str = "", **fields: object) -> ShopSettings:
        """Onboard a shop the way ingest records one whose main account activated and turned
        alerts on: a ShopSettings on shop.settings with alerts on, digests to ``email`` (the
        sink's sender by default) and replies accepted from it; ``fields`` override. A shop
        nobody onboarded gets no digest. The admin API path itself is tested in
        tests/integration/test_admin_api.py and tests/security/test_unonboarded_shop.py."""
        email = email or self.seller
        shop = replace(
            ShopSettings(
                shop_id=shop_id,
                alerts_enabled=True,
                destination_email=email,
                authorized_senders=(email,),
                updated_at_ms=now_ms(),
                updated_by="tests",
            ),
            **fields,
        )  # type: ignore[arg-type]
        producer = AIOKafkaProducer(bootstrap_servers=self.env["KAFKA_BOOTSTRAP"], acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(SHOP_SETTINGS.name, encode(shop), key=shop_id.encode())
        finally:
            await producer.stop()
        await asyncio.sleep(SETTINGS_APPLY_S)
        return shop

    async def buyer_says(
        self,
        shop_id: str,
        conversation_id: str,
        text: str,
        buyer_name: str = "Ana",
        **extra: object,
    ) -> dict[str, str]:
        resp = await self.http.post(
            f"{self.sandbox_url}/sandbox/buyer_messages",
            json={
                "shop_id": shop_id,
                "conversation_id": conversation_id,
                "buyer_name": buyer_name,
                "text": text,
                **extra,
            },
        )
        resp.raise_for_status()
        return resp.json()

    async def buyer_view(self, conversation_id: str) -> list[dict[str, object]]:
        resp = await self.http.get(
            f"{self.sandbox_url}/sandbox/conversations/{conversation_id}/buyer_view"
        )
        resp.raise_for_status()
        return resp.json()["received"]

    def mails_for(self, conversation_id: str) -> list[EmailMessage]:
        """Mails the sink holds whose reply address belongs to this conversation."""
        keys = parse_keys(self.env.get("BRIDGE_TOKEN_KEYS", "1:dev-only-token-key-change-me"))
        found = []
        for mail in self.platforms.sink.mails:
            msg = mail.message
            reply_to = str(msg.get("Reply-To", ""))
            local = reply_to.rpartition("<")[2].partition("@")[0]
            try:
                token = verify_token(local, keys, now_s=time.time())
            except TokenError:
                continue
            if token.conversation_id == conversation_id:
                found.append(msg)
        return found

    def sink_number(self, message_id: str) -> int:
        """The sink's index of a mail, for its /messages/{n}/reply endpoint."""
        for n, mail in enumerate(self.platforms.sink.mails):
            if mail.message["Message-ID"] == message_id:
                return n
        raise LookupError(message_id)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.log_dir.glob("*.log"))
        )


@pytest_asyncio.fixture(scope="session")
async def stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """Every service on free loopback ports with a 3-second consolidation window."""
    root = tmp_path_factory.mktemp("stack")
    ports = Ports()
    env = stack_env(
        kafka_bootstrap,
        ports,
        window_s=WINDOW_S,
        data_dir=root,
        extra={"BRIDGE_TICK_INTERVAL_S": "0.1"},
    )
    platforms = await start_platforms(ports, env)
    services = ServiceProcesses(env, root / "logs")
    services.start_all()
    http = local_client(timeout_s=10.0)
    try:
        await wait_healthy(ports.http_ports(), timeout_s=90)
        yield Stack(ports, env, services, platforms, http, root / "logs")
    finally:
        services.stop_all()
        await http.aclose()
        await platforms.stop()


@pytest_asyncio.fixture(scope="module")
async def ingest(kafka_bootstrap: str) -> AsyncIterator[str]:
    """An ingest app served in-process on a free loopback port, on the session's broker
    (the webhook tests and their security fuzzing share it; one per module)."""
    from tests.integration.test_ingest_webhooks import serve, settings

    url, server, task = await serve(settings(kafka_bootstrap))
    try:
        yield url
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        await task  # type: ignore[misc]


@pytest.fixture
def unique_conversation() -> Iterator[tuple[str, str]]:
    """A (shop_id, conversation_id) pair no other test uses (numeric, like the platform's)."""
    n = uuid.uuid4().int
    yield str(7_000_000_000_000_000_000 + n % 10**18), str(5_000_000_000_000_000 + n % 10**17)
