"""Ingest: chat-platform webhooks in, typed events on Kafka out.

A webhook gets 2xx only after Kafka acknowledged the event (acks=all); while
Kafka is unavailable the platform gets 503 with Retry-After and redelivers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from shared.chat_platform.tiktok_client import PlatformError, TikTokShopClient
from shared.chat_platform.tiktok_messages import (
    NEW_MESSAGE_WEBHOOK_TYPE,
    PayloadError,
    message_from_webhook,
)
from shared.chat_platform.tiktok_signing import verify_webhook
from shared.codec import encode
from shared.config import Settings, get_settings
from shared.events import ChatEventKind
from shared.kafka import make_producer
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS, UP
from shared.ops_http import add_ops_routes
from shared.topics import CHAT_EVENTS
from ingest.webhook_events import chat_event_from_message

log = logging.getLogger("ingest")
SERVICE = "ingest"
MAX_WEBHOOK_BYTES = 256 * 1024


def problem(status: int, reason: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status, headers=headers or None)


class BuyerNames:
    """Buyer nicknames per conversation (the webhook carries none), cached and bounded."""

    def __init__(self, client: TikTokShopClient, capacity: int = 100_000) -> None:
        self._client = client
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._capacity = capacity

    async def lookup(self, shop_id: str, conversation_id: str) -> str:
        key = f"{shop_id}:{conversation_id}"
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            info = await asyncio.wait_for(self._client.get_conversation(shop_id, conversation_id), 2)
            name = info.buyer_name
        except (PlatformError, TimeoutError):
            return ""  # not cached: try again on the next message
        self._cache[key] = name
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return name


def create_app(settings: Settings | None = None) -> FastAPI:
    cfg = settings or get_settings()
    state: dict[str, object] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = make_producer(cfg)
        await producer.start()
        client = TikTokShopClient(cfg.platform_base_url, cfg.platform_app_key,
                                  cfg.platform_app_secret.get_secret_value(),
                                  {"*": cfg.platform_access_token.get_secret_value()})
        state["producer"] = producer
        state["names"] = BuyerNames(client)
        UP.labels(SERVICE).set(1)
        try:
            yield
        finally:
            UP.labels(SERVICE).set(0)
            await producer.stop()
            await client.aclose()

    app = FastAPI(title="chat-email bridge ingest", lifespan=lifespan)
    add_ops_routes(app, lambda: "producer" in state)

    @app.post("/webhooks/tiktok")
    async def tiktok_webhook(request: Request) -> Response:
        started = time.perf_counter()
        response = await _handle_tiktok(request)
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        EVENTS_HANDLED.labels(SERVICE, str(response.status_code)).inc()
        return response

    async def _handle_tiktok(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_WEBHOOK_BYTES:
            return problem(413, f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            return problem(413, f"webhook body over {MAX_WEBHOOK_BYTES} bytes")
        ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype != "application/json":
            return problem(415, f"content-type {ctype!r} not supported; send application/json")
        if not verify_webhook(cfg.platform_app_key, body,
                              cfg.webhook_secret.get_secret_value(),
                              request.headers.get("authorization")):
            return problem(401, "Authorization header is not the HMAC-SHA256 of app_key + body")
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return problem(422, f"body is not JSON: {exc}")
        if not isinstance(payload, dict) or not isinstance(payload.get("type"), int):
            return problem(422, "body.type: expected the webhook event type number")
        if payload["type"] != NEW_MESSAGE_WEBHOOK_TYPE:
            return Response(status_code=200)  # other events are acknowledged and ignored
        try:
            shop_id, message = message_from_webhook(payload)
        except PayloadError as exc:
            return problem(422, str(exc))
        names: BuyerNames = state["names"]  # type: ignore[assignment]
        buyer_name = message.sender_name
        if not buyer_name and message.event_kind == ChatEventKind.BUYER_MESSAGE:
            buyer_name = await names.lookup(shop_id, message.conversation_id)
        event = chat_event_from_message(shop_id, message, buyer_name=buyer_name,
                                        received_at_ms=now_ms())
        if event is None:
            return Response(status_code=200)
        producer: AIOKafkaProducer = state["producer"]  # type: ignore[assignment]
        try:
            await producer.send_and_wait(CHAT_EVENTS.name, encode(event),
                                         key=event.conversation_key.encode())
        except KafkaError as exc:
            log.warning("kafka unavailable; webhook refused for redelivery",
                        extra={"error": exc.__class__.__name__})
            return problem(503, "event store unavailable; retry later", **{"Retry-After": "5"})
        return Response(status_code=200)

    return app
