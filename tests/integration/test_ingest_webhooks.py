"""Ingest over real HTTP into the real broker: answers, reasons, dedup, seller-side events."""

from __future__ import annotations

import time
import uuid

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from devstack.broker import free_port
from devstack.stack import serve_in_loop
from ingest.app import create_app
from ingest.ingest_settings import IngestSettings
from shared.chat_platform.generic_webhook import signed_headers
from shared.chat_platform.tiktok_signing import sign_webhook

pytestmark = pytest.mark.integration
KEY, SECRET = "it-app-key", "it-app-secret"


def settings(bootstrap: str, **extra: object) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap=bootstrap,
        platform_app_key=KEY,
        webhook_secret=SECRET,
        platform_base_url=f"http://127.0.0.1:{free_port()}",  # nothing listens
        generic_webhook_secret="it-generic",
        **extra,
    )  # type: ignore[arg-type]


async def serve(cfg: IngestSettings) -> tuple[str, object, object]:
    port = free_port()
    server, task = await serve_in_loop(create_app(cfg), port)
    return f"http://127.0.0.1:{port}", server, task


def new_message(conv: str, message_id: str, role: str = "BUYER", text: str = "hi") -> bytes:
    return orjson.dumps(
        {
            "type": 14,
            "tts_notification_id": uuid.uuid4().hex,
            "shop_id": "7494049642642441621",
            "timestamp": int(time.time()),
            "data": {
                "content": orjson.dumps({"content": text}).decode(),
                "conversation_id": conv,
                "create_time": int(time.time()),
                "is_visible": True,
                "message_id": message_id,
                "index": "1",
                "type": "TEXT",
                "sender": {"im_user_id": "b1", "role": role, "nickname": "Ana"},
            },
        }
    )


async def post(
    url: str, body: bytes, *, auth: str | None = None, ctype: str = "application/json"
) -> httpx.Response:
    headers = {
        "content-type": ctype,
        "authorization": auth if auth is not None else sign_webhook(KEY, body, SECRET),
    }
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(f"{url}/webhooks/tiktok", content=body, headers=headers)


async def events_for(bootstrap: str, conv: str, wait_s: float = 3.0) -> list[dict]:
    consumer = AIOKafkaConsumer(
        "chat.events", bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict] = []
    deadline = time.monotonic() + wait_s
    try:
        while time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                found += [
                    orjson.loads(r.value) for r in recs if r.value and conv.encode() in r.value
                ]
    finally:
        await consumer.stop()
    return found


async def test_signed_new_message_is_on_kafka_when_200_is_answered(
    ingest: str, kafka_bootstrap: str
) -> None:
    conv = uuid.uuid4().hex[:12]  # fits a reply address beside the shop id
    resp = await post(ingest, new_message(conv, "m-" + conv))
    assert resp.status_code == 200
    (event,) = await events_for(kafka_bootstrap, conv)
    assert event["kind"] == "buyer_message" and event["content"]["text"] == "hi"


async def test_redelivered_webhook_is_published_once(ingest: str, kafka_bootstrap: str) -> None:
    conv = uuid.uuid4().hex[:12]  # fits a reply address beside the shop id
    body = new_message(conv, "m-" + conv)
    assert [(await post(ingest, body)).status_code for _ in range(3)] == [200, 200, 200]
    assert len(await events_for(kafka_bootstrap, conv)) == 1


async def test_seller_message_is_published_for_the_consolidator(
    ingest: str, kafka_bootstrap: str
) -> None:
    conv = uuid.uuid4().hex[:12]  # fits a reply address beside the shop id
    assert (await post(ingest, new_message(conv, "s-" + conv, role="SHOP"))).status_code == 200
    (event,) = await events_for(kafka_bootstrap, conv)
    assert event["kind"] == "seller_message"


async def test_generic_platform_read_event_is_published(ingest: str, kafka_bootstrap: str) -> None:
    conv = uuid.uuid4().hex[:12]  # fits a reply address beside the shop id
    body = orjson.dumps(
        {
            "shop_id": "g1",
            "events": [
                {
                    "type": "read",
                    "conversation_id": conv,
                    "message_id": "r-" + conv,
                    "create_time": int(time.time()),
                }
            ],
        }
    )
    async with httpx.AsyncClient() as client:
        resp = await client.post(
            f"{ingest}/webhooks/generic",
            content=body,
            headers={**signed_headers("it-generic", body), "content-type": "application/json"},
        )
    assert resp.status_code == 200, resp.text
    (event,) = await events_for(kafka_bootstrap, conv)
    assert event["kind"] == "read"


@pytest.mark.parametrize(
    ("status", "kwargs", "reason"),
    [
        (401, {"auth": "0" * 64}, "HMAC"),
        (401, {"auth": ""}, "HMAC"),
        (415, {"ctype": "text/plain"}, "content-type"),
    ],
)
async def test_refusals_carry_their_status_and_reason(
    ingest: str, status: int, kwargs: dict, reason: str
) -> None:
    resp = await post(ingest, new_message("c", "m"), **kwargs)
    assert resp.status_code == status
    assert reason in resp.json()["error"]


async def test_malformed_signed_body_is_422_naming_the_field(ingest: str) -> None:
    body = orjson.dumps({"type": 14, "shop_id": "1", "data": {"type": "TEXT"}})
    resp = await post(ingest, body)
    assert resp.status_code == 422 and "sender" in resp.json()["error"]


async def test_oversized_body_is_413(ingest: str) -> None:
    resp = await post(ingest, b"{" + b" " * (300 * 1024) + b"}")
    assert resp.status_code == 413


async def test_unserved_shop_is_403(kafka_bootstrap: str) -> None:
    url, server, task = await serve(
        settings(kafka_bootstrap, platform_access_tokens="111=tok-a,222=tok-b")
    )
    try:
        resp = await post(url, new_message("c", "m"))
        assert resp.status_code == 403 and "not served" in resp.json()["error"]
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        await task  # type: ignore[misc]


async def test_backlog_beyond_the_bound_is_503_with_retry_after_and_nothing_published(
    kafka_bootstrap: str,
) -> None:
    url, server, task = await serve(settings(kafka_bootstrap, ingest_max_inflight=0))
    conv = uuid.uuid4().hex[:12]  # fits a reply address beside the shop id
    try:
        resp = await post(url, new_message(conv, "m-" + conv))
        assert resp.status_code == 503 and resp.headers["retry-after"]
        assert await events_for(kafka_bootstrap, conv, wait_s=1.5) == []
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        await task  # type: ignore[misc]


async def test_webhook_only_replica_publishes_webhooks_and_serves_no_admin_api(
    kafka_bootstrap: str,
) -> None:
    url, server, task = await serve(settings(kafka_bootstrap, ingest_admin_api=False))
    try:
        conv = uuid.uuid4().hex[:12]
        assert (await post(url, new_message(conv, "m-" + conv))).status_code == 200
        async with httpx.AsyncClient(timeout=10) as client:
            resp = await client.get(f"{url}/admin/shops/7494049642642441621/settings")
            assert resp.status_code == 404  # with the admin API: 401, no bearer token
        assert len(await events_for(kafka_bootstrap, conv)) == 1
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        await task  # type: ignore[misc]
