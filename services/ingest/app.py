"""Ingest: chat-platform webhooks in, typed events on Kafka out.

Answers, per delivery (the platform redelivers anything not 2xx):
- 200 only after Kafka acknowledged every event of the delivery (acks=all);
- 401 bad or missing signature, 403 signed but not ours to accept (unknown
  shop, stale generic timestamp), 413 too large, 415 not JSON, 422 a field out
  of its type or range (``{"error", "field", "reason"}``; the ranges are in
  ``shared.chat_platform.payload_fields``) or a body that is not a JSON object;
- 503 with Retry-After while Kafka does not acknowledge in time or the number
  of unacknowledged writes is beyond ``ingest_max_inflight``. Nothing is lost:
  a refused delivery is the platform's to redeliver.
Redeliveries are dropped by message id (a bounded per-process memory; the
consolidator also drops duplicates by id). Seller messages and reads are
published too: they clear the pending digest.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import ClassVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from prometheus_client import Counter
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from ingest.admin_api import build_admin_router
from ingest.console.pages import mount_console
from ingest.ingest_settings import IngestSettings
from ingest.webhook_events import RecentIds, chat_event_from_message
from shared.aiokafka_adapter import kafka_healthy
from shared.chat_platform.base import (
    ChatPlatform,
    PayloadError,
    PlatformError,
    WebhookAdapter,
    WebhookRejected,
)
from shared.chat_platform.from_settings import (
    access_tokens,
    webhook_adapters_from_settings,
)
from shared.chat_platform.tiktok_client import TikTokShopClient
from shared.codec import encode
from shared.events import ChatEvent, ChatEventKind
from shared.kafka import start_producer
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS, UP
from shared.service_runtime import add_ops_routes
from shared.topics import CHAT_EVENTS

log = logging.getLogger("ingest")
SERVICE = "ingest"
RETRY_AFTER_S = "5"
NAME_LOOKUP_TIMEOUT_S = 1.0  # the platform wants an answer within 3 s
NAME_RETRY_AFTER_S = 30.0  # a failed lookup is not repeated for this long


WEBHOOK_PREFIX = "/webhooks/"
# A Content-Length we compare with the limit: ASCII digits only (str.isdigit takes "²").
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")
WEBHOOKS_REFUSED = Counter(
    "bridge_webhooks_refused_total",
    "Signed webhook deliveries answered 422, by the field's violation (payload_fields.Violation).",
    ["reason"],
)


@dataclass(frozen=True, slots=True)
class Answer:
    """A webhook answer: status, JSON body, optional Retry-After."""

    status: int
    body: bytes = b""
    retry_after: str = ""

    OK: ClassVar[Answer]

    @classmethod
    def problem(cls, status: int, reason: str, retry_after: str = "") -> Answer:
        return cls(status, orjson.dumps({"error": reason}), retry_after)

    @classmethod
    def bad_field(cls, exc: PayloadError) -> Answer:
        """422 naming the field: ``error`` as every answer has, plus ``field`` and ``reason``."""
        return cls(
            422,
            orjson.dumps({"error": str(exc), "field": exc.field or "body", "reason": exc.reason}),
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        out = [(b"content-length", str(len(self.body)).encode())]
        if self.body:
            out.append((b"content-type", b"application/json"))
        if self.retry_after:
            out.append((b"retry-after", self.retry_after.encode()))
        return out


Answer.OK = Answer(200)


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes (stop reading)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


WebhookHandler = Callable[[str, Headers, Receive], Awaitable[Answer]]


class IngestApp(FastAPI):
    """FastAPI, except that ``POST /webhooks/{platform}`` is answered before FastAPI's own
    middleware, routing, dependency resolution and exception layers: the hot path needs
    none of them (their share of a webhook's time: docs/performance.md). Everything else
    (admin API, /healthz, /metrics) is plain FastAPI."""

    webhook_handler: WebhookHandler | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        handler = self.webhook_handler
        if (
            handler is None
            or scope["type"] != "http"
            or not path.startswith(WEBHOOK_PREFIX)
            or "/" in path[len(WEBHOOK_PREFIX) :]
        ):
            await super().__call__(scope, receive, send)
            return
        if scope["method"] != "POST":
            answer = Answer.problem(405, "webhooks are POSTed")
        else:
            try:
                answer = await handler(path[len(WEBHOOK_PREFIX) :], Headers(scope=scope), receive)
            except Exception:  # a bug, never an ack: the platform redelivers on 500
                log.exception("webhook handler failed")
                answer = Answer.problem(500, "internal error; retry later")
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": answer.headers()}
        )
        await send({"type": "http.response.body", "body": answer.body})


class BuyerNames:
    """Buyer nicknames per conversation (TikTok's webhook carries none), cached and bounded."""

    def __init__(self, client: ChatPlatform, capacity: int = 100_000) -> None:
        self._client = client
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._failed: dict[str, float] = {}
        self._capacity = capacity

    async def lookup(self, shop_id: str, conversation_id: str) -> str:
        key = f"{shop_id}:{conversation_id}"
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        if self._failed.get(key, 0.0) > time.monotonic():
            return ""
        try:
            info = await asyncio.wait_for(
                self._client.get_conversation(shop_id, conversation_id), NAME_LOOKUP_TIMEOUT_S
            )
        except (PlatformError, TimeoutError):
            if len(self._failed) > self._capacity:
                self._failed.clear()
            self._failed[key] = time.monotonic() + NAME_RETRY_AFTER_S
            return ""  # the digest falls back to a generic greeting; retried later
        self._cache[key] = info.buyer_name
        if len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        return info.buyer_name


class Publisher:
    """Writes events to Kafka, bounded in flight; its idempotency: a redelivered message
    id is acknowledged without a second write (docs/exactly-once.md)."""

    def __init__(self, producer: AIOKafkaProducer, cfg: IngestSettings) -> None:
        self.producer = producer
        self.max_inflight = cfg.ingest_max_inflight
        self.timeout_s = cfg.ingest_kafka_timeout_s
        self.inflight = 0
        self.recent = RecentIds(cfg.ingest_dedup_capacity)
        self._pending: dict[str, asyncio.Future[None]] = {}

    def saturated(self) -> bool:
        return self.inflight >= self.max_inflight

    async def publish(self, source: str, events: list[ChatEvent]) -> None:
        """Return once Kafka has every event; raises KafkaError/TimeoutError otherwise."""
        waits: list[asyncio.Future[None]] = []
        mine: list[tuple[str, ChatEvent, asyncio.Future[None]]] = []
        loop = asyncio.get_running_loop()
        for event in events:
            key = f"{source}:{event.shop_id}:{event.kind}:{event.message_id}"
            if key in self.recent:
                continue  # a redelivery of something already acknowledged
            if (other := self._pending.get(key)) is not None:
                waits.append(other)  # the same message is being written right now
                continue
            done: asyncio.Future[None] = loop.create_future()
            self._pending[key] = done
            mine.append((key, event, done))
        self.inflight += len(mine)
        try:
            acks = [
                await self.producer.send(
                    CHAT_EVENTS.name, encode(ev), key=ev.conversation_key.encode()
                )
                for _, ev, _ in mine
            ]
            if acks:
                await asyncio.wait_for(asyncio.gather(*acks), self.timeout_s)
        except BaseException as exc:
            failure = exc if isinstance(exc, Exception) else KafkaError()
            for key, _, done in mine:
                self._pending.pop(key, None)
                done.set_exception(failure)
                done.exception()  # retrieved: no "never retrieved" warning if nobody waits
            raise
        finally:
            self.inflight -= len(mine)
        for key, _, done in mine:
            self._pending.pop(key, None)
            self.recent.add(key)
            done.set_result(None)
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits), self.timeout_s)


def create_app(
    settings: IngestSettings | None = None, *, admin_clock: Callable[[], int] = now_ms
) -> FastAPI:
    """The ingest app: platform webhooks plus, unless ``ingest_admin_api`` is off, the admin
    API (``admin_clock`` in ms, for tests)."""
    cfg = settings or IngestSettings()
    state: dict[str, object] = {}
    adapters: Mapping[str, WebhookAdapter] = webhook_adapters_from_settings(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        producer = await start_producer(cfg)
        client = TikTokShopClient(
            cfg.platform_base_url,
            cfg.platform_app_key,
            cfg.platform_app_secret.get_secret_value(),
            access_tokens(cfg),
            qps_per_api=cfg.platform_qps_per_api,
        )
        state["producer"] = producer
        state["publisher"] = Publisher(producer, cfg)
        state["names"] = BuyerNames(client)
        UP.labels(SERVICE).set(1)
        try:
            yield
        finally:
            UP.labels(SERVICE).set(0)
            state.pop("producer", None)
            await producer.stop()
            await client.aclose()

    app = IngestApp(title="chat-email bridge ingest", lifespan=lifespan)
    add_ops_routes(app, lambda: "producer" in state and kafka_healthy(state["producer"]))  # type: ignore[arg-type]
    # Admin API (shops, users, roles, settings, simulation) shares the webhook producer;
    # a webhook-only replica leaves it (and the console over it) out, and with it the
    # admin directory's replay.
    if cfg.ingest_admin_api:
        app.include_router(
            build_admin_router(
                cfg,
                lambda: state["producer"],  # type: ignore[arg-type,return-value]
                clock=admin_clock,
            )
        )
        mount_console(app)  # the seller console's pages, over the admin API's functions

    handled: dict[int, Counter] = {}  # status -> counter child: no .labels() per request
    handle_seconds = HANDLE_SECONDS.labels(SERVICE)

    async def webhook(platform: str, headers: Headers, receive: Receive) -> Answer:
        started = time.perf_counter()
        answer = await _handle(platform, headers, receive)
        handle_seconds.observe(time.perf_counter() - started)
        if (counter := handled.get(answer.status)) is None:
            counter = handled[answer.status] = EVENTS_HANDLED.labels(SERVICE, str(answer.status))
        counter.inc()
        return answer

    refusals: dict[str, Counter] = {}  # violation -> counter child (a fixed set)

    def refused(reason: str, answer: Answer) -> Answer:
        if (counter := refusals.get(reason)) is None:
            counter = refusals[reason] = WEBHOOKS_REFUSED.labels(reason)
        counter.inc()
        return answer

    async def _handle(platform: str, headers: Headers, receive: Receive) -> Answer:
        adapter = adapters.get(platform)
        if adapter is None:
            return Answer.problem(404, f"no webhook adapter named {platform!r}")
        limit = cfg.ingest_max_body_bytes
        length = headers.get("content-length", "")
        if _CONTENT_LENGTH.fullmatch(length) and int(length) > limit or len(length) > 18:
            return Answer.problem(413, f"webhook body over {limit} bytes")
        raw = await read_body(receive, limit)
        if raw is None:
            return Answer.problem(413, f"webhook body over {limit} bytes")
        ctype = headers.get("content-type", "application/json").split(";")[0].strip()
        if ctype.lower() != "application/json":
            return Answer.problem(
                415, f"content-type {ctype!r} not supported; send application/json"
            )
        try:
            adapter.verify(headers, raw)
            batch = adapter.parse(raw)
        except WebhookRejected as exc:
            return Answer.problem(exc.status, exc.reason)
        except PayloadError as exc:
            return refused(exc.code, Answer.bad_field(exc))
        publisher: Publisher = state["publisher"]  # type: ignore[assignment]
        if publisher.saturated():
            return Answer.problem(503, "ingest backlog full; retry later", RETRY_AFTER_S)
        events = []
        received = now_ms()
        for message in batch.messages:
            buyer_name = message.sender_name
            if (
                not buyer_name
                and message.event_kind == ChatEventKind.BUYER_MESSAGE
                and platform == "tiktok"
            ):
                names: BuyerNames = state["names"]  # type: ignore[assignment]
                buyer_name = await names.lookup(batch.shop_id, message.conversation_id)
            event = chat_event_from_message(
                batch.shop_id, message, buyer_name=buyer_name, received_at_ms=received
            )
            if event is not None:
                events.append(event)
        if not events:
            return Answer.OK  # nothing the bridge acts on: acknowledged
        try:
            await publisher.publish(platform, events)
        except (KafkaError, TimeoutError) as exc:
            log.warning(
                "kafka did not acknowledge; webhook refused for redelivery",
                extra={"error": exc.__class__.__name__},
            )
            return Answer.problem(503, "event store unavailable; retry later", RETRY_AFTER_S)
        return Answer.OK

    app.webhook_handler = webhook  # served ahead of FastAPI's layers: see IngestApp
    return app
