"""Fan-out: reply parts from ``chat.replies`` to the chat platform, in order, once each.

Replies of one conversation are handled strictly one after another (never
interleaved); parts of a reply in index order. A part already in the delivery
log is skipped, so a replay after a crash or rebalance never posts it twice.
Temporary platform errors (429, 5xx, network) are retried with backoff that
honours Retry-After; a permanent error dead-letters the part with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.chat_platform.tiktok_client import PlatformError, TikTokShopClient
from shared.backoff import backoff_delay
from shared.codec import DecodeError, decode, encode
from shared.config import Settings, get_settings
from shared.events import ChatReply, DeliveryStatus, PartDelivery, ReplyPart
from shared.kafka import (
    DeadLetterWriter,
    consume_keyed_batches,
    make_consumer,
    make_producer,
    report_lag,
)
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS, UP
from shared.ops_http import build_ops_app, serve_ops
from shared.topics import CHAT_DELIVERIES, CHAT_REPLIES
from fanout.delivery_log import DeliveryLog
from fanout.fanout_metrics import PARTS_DELIVERED, PLATFORM_RETRIES

SERVICE = "fanout"
GROUP = "bridge-fanout"
log = logging.getLogger(SERVICE)


class FanOut:
    def __init__(self, cfg: Settings, producer: AIOKafkaProducer, client: TikTokShopClient,
                 max_attempts: int = 12) -> None:
        self.cfg = cfg
        self.producer = producer
        self.client = client
        self.delivered = DeliveryLog()
        self.dead_letters = DeadLetterWriter(producer, SERVICE)
        self.max_attempts = max_attempts

    async def handle(self, rec: ConsumerRecord) -> None:
        started = time.perf_counter()
        try:
            reply = decode(ChatReply, rec.value or b"")
        except DecodeError as exc:
            await self.dead_letters.write(source_topic=rec.topic, reason=f"undecodable reply: {exc}",
                                          reason_class="bad_record", partition=rec.partition,
                                          offset=rec.offset, payload=rec.value or b"")
            return
        for part in sorted(reply.parts, key=lambda p: p.index):
            key = reply.part_key(part.index)
            if key in self.delivered:
                PARTS_DELIVERED.labels("already_delivered").inc()
                continue
            ok = await self._deliver(reply, part)
            if not ok:
                # Later parts would arrive out of context without this one: hold them back.
                for rest in reply.parts:
                    if rest.index > part.index:
                        await self._record(reply, rest, DeliveryStatus.FAILED,
                                           reason=f"part {part.index} failed permanently")
                break
        EVENTS_HANDLED.labels(SERVICE, "reply").inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def _deliver(self, reply: ChatReply, part: ReplyPart) -> bool:
        key = reply.part_key(part.index)
        attempt = 0
        while True:
            attempt += 1
            try:
                if part.image_url:
                    mid = await self.client.send_image(reply.shop_id, reply.conversation_id,
                                                       part.image_url, idempotency_key=key)
                else:
                    mid = await self.client.send_text(reply.shop_id, reply.conversation_id,
                                                      part.text, idempotency_key=key)
                await self._record(reply, part, DeliveryStatus.DELIVERED, platform_id=mid,
                                   attempts=attempt)
                PARTS_DELIVERED.labels("delivered").inc()
                return True
            except PlatformError as exc:
                if not exc.retryable or attempt >= self.max_attempts:
                    PARTS_DELIVERED.labels("failed").inc()
                    await self.dead_letters.write(
                        source_topic=CHAT_REPLIES.name, key=key,
                        reason=f"chat platform refused part {part.index}: {exc.reason}",
                        reason_class="platform_permanent" if not exc.retryable
                        else "platform_exhausted")
                    await self._record(reply, part, DeliveryStatus.FAILED, reason=exc.reason,
                                       attempts=attempt)
                    return False
                PLATFORM_RETRIES.inc()
                await asyncio.sleep(backoff_delay(attempt, base_s=0.2, max_s=30.0,
                                                  retry_after_s=exc.retry_after_s))

    async def _record(self, reply: ChatReply, part: ReplyPart, status: str, *,
                      platform_id: str = "", reason: str = "", attempts: int = 0) -> None:
        key = reply.part_key(part.index)
        delivery = PartDelivery(reply_id=reply.reply_id, shop_id=reply.shop_id,
                                conversation_id=reply.conversation_id, index=part.index,
                                status=status, platform_message_id=platform_id, reason=reason,
                                attempts=attempts, at_ms=now_ms())
        await self.producer.send_and_wait(CHAT_DELIVERIES.name, encode(delivery), key=key.encode())
        self.delivered.record(key)


async def main() -> None:
    cfg = get_settings()
    producer = make_producer(cfg)
    await producer.start()
    client = TikTokShopClient(cfg.platform_base_url, cfg.platform_app_key,
                              cfg.platform_app_secret.get_secret_value(),
                              {"*": cfg.platform_access_token.get_secret_value()})
    fanout = FanOut(cfg, producer, client)
    await fanout.delivered.load(cfg.kafka_bootstrap)
    consumer = make_consumer(cfg, CHAT_REPLIES.name, group_id=GROUP)
    await consumer.start()
    ops = await serve_ops(build_ops_app(SERVICE, lambda: True), cfg.http_host, cfg.fanout_port)
    lag = asyncio.create_task(report_lag(consumer, GROUP))
    UP.labels(SERVICE).set(1)
    try:
        await consume_keyed_batches(consumer, fanout.handle)
    finally:
        UP.labels(SERVICE).set(0)
        lag.cancel()
        ops.cancel()
        await consumer.stop()
        await producer.stop()
        await client.aclose()
