"""Ingest while its Kafka goes away and comes back: webhooks are refused with 503 and
Retry-After (never 2xx without an ack, never 500), /healthz says not ready, and after a
broker is back on the same port deliveries are acknowledged again.

Runs a broker of its own (stopping the session broker would break every other test), and
brings it back on the same port: Kafka with its data, Tansu empty (topics made again)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer

from devstack.broker import free_port
from devstack.stack import serve_in_loop
from ingest.app import create_app
from ingest.ingest_settings import IngestSettings
from shared.chat_platform.tiktok_signing import sign_webhook
from shared.kafka import ensure_topics
from tests.private_broker import Broker, private_broker

pytestmark = pytest.mark.integration
KEY, SECRET = "outage-app-key", "outage-app-secret"


def webhook(conv: str) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(
        {
            "type": 14,
            "tts_notification_id": uuid.uuid4().hex,
            "shop_id": "7494049642642441621",
            "timestamp": int(time.time()),
            "data": {
                "content": '{"content":"hi"}',
                "conversation_id": conv,
                "create_time": int(time.time()),
                "is_visible": True,
                "message_id": uuid.uuid4().hex,
                "index": "1",
                "type": "TEXT",
                "sender": {"im_user_id": "b1", "role": "BUYER", "nickname": "Ana"},
            },
        }
    )
    return body, {
        "content-type": "application/json",
        "authorization": sign_webhook(KEY, body, SECRET),
    }


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[Broker, str]]:
    broker = private_broker(tmp_path)
    await broker.start_with_topics()
    cfg = IngestSettings(
        kafka_bootstrap=broker.bootstrap,
        platform_app_key=KEY,
        webhook_secret=SECRET,  # type: ignore[arg-type]
        platform_base_url=f"http://127.0.0.1:{free_port()}",
        ingest_kafka_timeout_s=1.0,
        kafka_request_timeout_ms=1500,
    )
    port = free_port()
    server, task = await serve_in_loop(create_app(cfg), port)
    try:
        yield broker, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        broker.stop()


async def test_webhooks_get_503_with_retry_after_while_kafka_is_down_then_200_again(
    rig: tuple[Broker, str], tmp_path: Path
) -> None:
    broker, url = rig
    conv = f"outage-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        body, headers = webhook(conv)
        assert (
            await http.post("/webhooks/tiktok", content=body, headers=headers)
        ).status_code == 200
        assert (await http.get("/healthz")).status_code == 200

        broker.stop()
        answers = []
        for _ in range(4):
            body, headers = webhook(conv)
            resp = await http.post("/webhooks/tiktok", content=body, headers=headers)
            answers.append(
                (resp.status_code, resp.headers.get("retry-after"), resp.json().get("error"))
            )
        assert all(
            status == 503 and retry_after and retry_after.isdigit()
            for status, retry_after, _ in answers
        ), answers
        assert all("retry later" in str(reason) for _, _, reason in answers), answers
        deadline = time.monotonic() + 15
        while (await http.get("/healthz")).status_code != 503:
            assert time.monotonic() < deadline, "/healthz kept saying ready without Kafka"
            await asyncio.sleep(0.2)

        back = private_broker(tmp_path, port=broker.port)
        back.start()
        try:
            await back.wait_ready()
            await ensure_topics(back.bootstrap)  # Tansu: memory storage, the topics went with it
            deadline = time.monotonic() + 30
            while True:
                body, headers = webhook(conv)
                resp = await http.post("/webhooks/tiktok", content=body, headers=headers)
                assert resp.status_code in (200, 503), (resp.status_code, resp.text)
                if resp.status_code == 200:
                    break
                assert time.monotonic() < deadline, "ingest never recovered after Kafka came back"
                await asyncio.sleep(0.5)
            message_id = orjson.loads(body)["data"]["message_id"]
            assert message_id in await messages_on(back.bootstrap, conv)
            deadline = time.monotonic() + 15
            while (await http.get("/healthz")).status_code != 200:
                assert time.monotonic() < deadline, "/healthz stayed not-ready after recovery"
                await asyncio.sleep(0.2)
        finally:
            back.stop()


async def messages_on(bootstrap: str, conv: str) -> set[str]:
    consumer = AIOKafkaConsumer(
        "chat.events", bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: set[str] = set()
    try:
        for _ in range(10):
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                found |= {
                    orjson.loads(r.value)["message_id"]
                    for r in recs
                    if r.value and conv.encode() in r.value
                }
            if found:
                break
    finally:
        await consumer.stop()
    return found
