"""Fan-out: reply parts from ``chat.replies`` to the chat platform, in order, once each.

Order: records of one conversation key are handled strictly one after another
(``consume_keyed_batches``), so two replies to one conversation never
interleave; the parts of a reply go in index order, each only after the
previous one was accepted.

Exactly once, as far as the platform's contract allows (it has no idempotency key on Send
Message): parts with a final record in ``chat.deliveries`` are skipped, an "attempting"
marker is acknowledged before a reply's first post, and a replayed reply with a marker is
checked against the conversation's messages before anything is posted again. The protocol,
what Kafka waits for and the window that remains: docs/exactly-once.md.

Retries: 429/5xx/network with backoff that honours Retry-After, paced under
the platform's 50 QPS per API per shop by the client. A permanent error (or
exhausted retries) dead-letters the part with the reason, marks the rest of the
reply failed, and emails the seller a ``delivery_failed`` notice.

Mark read: once every part of a reply is delivered the conversation is marked
read (Read Message): the seller has answered, so the buyer's messages are no
longer unread for the shop's agents. Best effort, in the background (the next reply
need not wait for it): a failure is logged only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from fanout.delivery_decision import (
    FOUND_WHEN_UNCHECKABLE,
    FirstStep,
    PartFailure,
    failed_records,
    found_beyond_recorded,
    look_since_s,
    part_not_posted,
    plan_reply,
    posted_status,
)
from fanout.delivery_log import DeliveryLog, marker_key
from fanout.fanout_metrics import DUPLICATE_CHECKS, PARTS_DELIVERED, PLATFORM_RETRIES
from fanout.fanout_settings import FanoutSettings
from shared.backoff import GaveUp, RetryPolicy, retry
from shared.chat_platform.base import (
    ChatPlatform,
    OutgoingMessage,
    PayloadError,
    PlatformError,
    PlatformMessage,
    UploadedImage,
)
from shared.chat_platform.delivery_check import leading_parts_already_posted
from shared.chat_platform.from_settings import chat_platform_from_settings
from shared.codec import DecodeError, decode, encode
from shared.errors import BridgeError
from shared.events import (
    ChatReply,
    DeliveryStatus,
    MailNotice,
    NoticeKind,
    PartDelivery,
    ReplyPart,
)
from shared.kafka import (
    DeadLetterWriter,
    consume_keyed_batches,
    make_consumer,
    start_producer,
)
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS
from shared.notice_texts import delivery_failed_text
from shared.service_runtime import ServiceRuntime
from shared.settings_view import ShopSettingsView
from shared.topics import CHAT_DELIVERIES, CHAT_REPLIES, MAIL_NOTICES

SERVICE = "fanout"
GROUP = "bridge-fanout"
log = logging.getLogger(SERVICE)
T = TypeVar("T")


class PartFailed(BridgeError):
    def __init__(self, reason: str, reason_class: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_class = reason_class
        self.attempts = attempts

    @classmethod
    def of(cls, failure: PartFailure) -> PartFailed:
        return cls(failure.reason, failure.reason_class, failure.attempts)


class FanOut:
    def __init__(
        self,
        cfg: FanoutSettings,
        producer: AIOKafkaProducer,
        platform: ChatPlatform,
        shops: ShopSettingsView | None = None,
    ) -> None:
        self.cfg = cfg
        self.producer = producer
        self.platform = platform
        self.shops = shops
        self.delivered = DeliveryLog(cfg, tombstones=producer)
        self.dead_letters = DeadLetterWriter(producer, SERVICE)
        self.retries = RetryPolicy(
            cfg.fanout_backoff_base_s,
            cfg.fanout_backoff_max_s,
            max_attempts=cfg.fanout_max_attempts,
        )
        self._tasks: set[asyncio.Task[None]] = set()

    async def handle(self, rec: ConsumerRecord) -> None:
        started = time.perf_counter()
        try:
            reply = decode(ChatReply, rec.value or b"")
        except DecodeError as exc:
            await self.dead_letters.write(
                source_topic=rec.topic,
                reason=f"undecodable reply: {exc}",
                reason_class="bad_record",
                partition=rec.partition,
                offset=rec.offset,
                payload=rec.value or b"",
            )
            return
        await self.deliver_reply(reply, rec.partition)
        EVENTS_HANDLED.labels(SERVICE, "reply").inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    def _outgoing(self, part: ReplyPart, uploaded: dict[str, UploadedImage]) -> OutgoingMessage:
        if part.image_b64:
            image = uploaded.get(str(part.index))
            if image is None:  # upload refused: the part fails before it is posted
                return self.platform.outgoing_text("")
            return self.platform.outgoing_image(image.url, image.width, image.height)
        if part.image_url:
            return self.platform.outgoing_image(part.image_url)
        return self.platform.outgoing_text(part.text)

    async def deliver_reply(self, reply: ChatReply, partition: int) -> None:
        """Post the reply's parts not yet delivered; ``partition``: the ``chat.replies``
        partition it came from, which places its records in the delivery log."""
        await self.delivered.current()
        placed = self.delivered.partition_for(partition)
        parts = sorted(reply.parts, key=lambda p: p.index)
        marker_ms = self.delivered.marker(reply.reply_id)
        plan = plan_reply(
            [p.index for p in parts],
            {p.index for p in parts if reply.part_key(p.index) in self.delivered},
            marker_ms,
        )
        if plan.first is FirstStep.SKIP:
            PARTS_DELIVERED.labels("already_delivered").inc(len(parts))
            return
        by_part = {p.index: p for p in parts}
        pending = [by_part[i] for i in plan.pending]
        acks: list[asyncio.Future[object]] = []
        # Inline pictures are uploaded before the marker and their urls travel in it: a
        # replay then checks for, and posts, the very same url (an upload is never seen by
        # the buyer, so uploading again after a crash before the marker costs nothing).
        known = self.delivered.marker_images(reply.reply_id) if marker_ms is not None else {}
        uploaded = {k: UploadedImage(url) for k, url in known.items()}
        refused: tuple[int, PartFailed] | None = None
        for part in pending:
            if part.image_b64 and str(part.index) not in uploaded:
                try:
                    uploaded[str(part.index)] = await self._upload(reply, part)
                except PartFailed as failure:
                    refused = (part.index, failure)
                    break  # parts before it still go; it and the rest fail in order
        try:
            outs = [self._outgoing(p, uploaded) for p in parts]
        except PayloadError as exc:
            await self._fail(reply, pending, 0, PartFailed(str(exc), "bad_part", 0), acks, placed)
            return
        by_index = {p.index: out for p, out in zip(parts, outs, strict=True)}
        if plan.first is FirstStep.WRITE_MARKER or marker_ms is None:
            marker_ms = now_ms()
            urls = {k: v.url for k, v in uploaded.items()}
            await self._write(
                reply,
                -1,
                DeliveryStatus.ATTEMPTING,
                key=marker_key(reply.reply_id),
                at_ms=marker_ms,
                image_urls=urls,
                placed=placed,
            )
            self.delivered.set_marker(reply.reply_id, placed, marker_ms, urls)
        else:
            # Replayed after an attempt: some pending parts may be on the platform already.
            skip = await self._already_posted(reply, outs, len(parts) - len(pending), marker_ms)
            for part in pending[:skip]:
                acks.append(
                    await self._record(reply, part, DeliveryStatus.ALREADY_DELIVERED, placed)
                )
                PARTS_DELIVERED.labels("found_on_platform").inc()
            pending = pending[skip:]
        done_before = len(parts) - len(pending)
        for n, part in enumerate(pending):
            if refused is not None and part.index == refused[0]:
                await self._fail(reply, pending, n, refused[1], acks, placed)
                return
            try:
                mid, attempts = await self._post(
                    reply, part, outs, done_before + n, marker_ms, by_index[part.index]
                )
            except PartFailed as failure:
                await self._fail(reply, pending, n, failure, acks, placed)
                return
            status = posted_status(mid)
            acks.append(
                await self._record(
                    reply, part, status, placed, platform_id=mid or "", attempts=attempts
                )
            )
            PARTS_DELIVERED.labels("delivered" if mid is not None else "found_on_platform").inc()
        await self._finish(reply, acks, placed)
        if self.cfg.fanout_mark_read:
            # Off the conversation's critical path: the next reply need not wait for it.
            self._background(self._mark_read(reply))

    def _background(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mark_read(self, reply: ChatReply) -> None:
        try:
            await self.platform.mark_read(reply.shop_id, reply.conversation_id)
        except PlatformError as exc:
            log.info("mark read failed", extra={"reply_id": reply.reply_id, "reason": exc.reason})

    async def _upload(self, reply: ChatReply, part: ReplyPart) -> UploadedImage:
        """Upload one inline picture with retries; PartFailed when it cannot be."""
        try:
            data = base64.b64decode(part.image_b64, validate=True)
        except (binascii.Error, ValueError):
            raise PartFailed(
                f"part {part.index}: picture is not valid base64", "bad_part", 0
            ) from None

        async def upload(_attempt: int) -> UploadedImage:
            return await self.platform.upload_image(
                reply.shop_id, data, part.image_content_type, part.image_filename
            )

        try:
            return await self._platform_retry(upload)
        except GaveUp as gave_up:
            raise PartFailed.of(
                part_not_posted(
                    part.index,
                    gave_up.error.reason,
                    gave_up.attempts,
                    exhausted=gave_up.exhausted,
                    picture=True,
                )
            ) from None

    async def _platform_retry(
        self, call: Callable[[int], Awaitable[T]], *, count: bool = True
    ) -> T:
        """``call`` retried on the platform's temporary errors (honouring Retry-After);
        :class:`GaveUp` with the last :class:`PlatformError` when it cannot succeed."""
        return await retry(
            call,
            self.retries,
            on=PlatformError,
            retryable=lambda exc: exc.retryable,
            retry_after=lambda exc: exc.retry_after_s,
            on_retry=_count_retry if count else None,
        )

    async def _post(
        self,
        reply: ChatReply,
        part: ReplyPart,
        outs: Sequence[OutgoingMessage],
        position: int,
        marker_ms: int,
        out: OutgoingMessage,
    ) -> tuple[str | None, int]:
        """Post one part with retries. Returns (platform id, attempts), id None when an
        ambiguous failure turned out to have posted it after all."""
        key = reply.part_key(part.index)
        ambiguous = False

        async def post(attempt: int) -> tuple[str | None, int]:
            nonlocal ambiguous
            # The platform may have stored an ambiguously failed post: look before posting again.
            if (
                ambiguous
                and await self._already_posted(reply, outs, position, marker_ms, upto=position + 1)
                >= 1
            ):
                return None, attempt - 1
            try:
                return await self.platform.send(
                    reply.shop_id, reply.conversation_id, out, idempotency_key=key
                ), attempt
            except PlatformError as exc:
                ambiguous = exc.ambiguous
                raise

        try:
            return await self._platform_retry(post)
        except GaveUp as gave_up:
            raise PartFailed.of(
                part_not_posted(
                    part.index, gave_up.error.reason, gave_up.attempts, exhausted=gave_up.exhausted
                )
            ) from None

    async def _already_posted(
        self,
        reply: ChatReply,
        outs: Sequence[OutgoingMessage],
        recorded: int,
        marker_ms: int,
        upto: int | None = None,
    ) -> int:
        """How many parts after the first ``recorded`` (up to ``upto``) the platform shows."""
        since_s = look_since_s(marker_ms)

        async def listing(_attempt: int) -> list[PlatformMessage]:
            return list(
                await self.platform.messages_since(reply.shop_id, reply.conversation_id, since_s)
            )

        try:
            msgs = await self._platform_retry(listing, count=False)
        except GaveUp:
            DUPLICATE_CHECKS.labels("unavailable").inc()
            return FOUND_WHEN_UNCHECKABLE
        wanted = list(outs[: upto if upto is not None else len(outs)])
        present = leading_parts_already_posted(wanted, msgs)
        found = found_beyond_recorded(present, recorded)
        DUPLICATE_CHECKS.labels("found" if found else "absent").inc()
        return found

    async def _fail(
        self,
        reply: ChatReply,
        pending: Sequence[ReplyPart],
        n: int,
        failure: PartFailed,
        acks: list[asyncio.Future[object]],
        placed: int | None,
    ) -> None:
        part = pending[n]
        PARTS_DELIVERED.labels("failed").inc()
        await self.dead_letters.write(
            source_topic=CHAT_REPLIES.name,
            key=reply.part_key(part.index),
            reason=failure.reason,
            reason_class=failure.reason_class,
            extra={"reply_id": reply.reply_id, "conversation": reply.conversation_id},
        )
        by_index = {p.index: p for p in pending}
        # Later parts would arrive out of context without this one: they are held back.
        for index, reason, attempts in failed_records(
            [p.index for p in pending], n, failure.reason, failure.attempts
        ):
            acks.append(
                await self._record(
                    reply,
                    by_index[index],
                    DeliveryStatus.FAILED,
                    placed,
                    reason=reason,
                    attempts=attempts,
                )
            )
        acks.append(
            await self.producer.send(
                MAIL_NOTICES.name,
                encode(self._notice(reply, part, failure)),
                key=reply.shop_id.encode(),
            )
        )
        await self._finish(reply, acks, placed)

    def _notice(self, reply: ChatReply, part: ReplyPart, failure: PartFailed) -> MailNotice:
        to = reply.sender or (
            self.shops.get(reply.shop_id).destination_email
            if self.shops
            else self.cfg.default_destination_email
        )
        words = delivery_failed_text(
            marketplace_name=self.cfg.marketplace_name,
            conversation_id=reply.conversation_id,
            part_number=part.index + 1,
            parts=len(reply.parts),
            reason=failure.reason,
            chat_link=f"{self.cfg.chat_deep_link_base}/{reply.shop_id}/{reply.conversation_id}",
        )
        return MailNotice(
            notice_id=f"delivery-failed-{reply.reply_id}",
            kind=NoticeKind.DELIVERY_FAILED,
            to_address=to,
            subject=words.subject,
            text=words.text,
            shop_id=reply.shop_id,
            conversation_id=reply.conversation_id,
            created_at_ms=now_ms(),
        )

    async def _finish(
        self, reply: ChatReply, acks: list[asyncio.Future[object]], placed: int | None
    ) -> None:
        """Wait for every record of the reply, then retire its marker.

        The tombstone is sent only after the final records are acknowledged (a marker
        gone while a record is missing would let a replay post without checking), but
        its own ack is not waited for: a lost tombstone only leaves a marker whose parts
        all have final records, which a replay skips without a platform call.
        """
        await asyncio.gather(*acks)
        for part in reply.parts:
            self.delivered.record(reply.part_key(part.index), placed)
        tomb = await self.producer.send(
            CHAT_DELIVERIES.name, None, key=marker_key(reply.reply_id).encode(), partition=placed
        )
        tomb.add_done_callback(_log_tombstone_failure)
        self.delivered.clear_marker(reply.reply_id)

    async def _record(
        self,
        reply: ChatReply,
        part: ReplyPart,
        status: str,
        placed: int | None,
        *,
        platform_id: str = "",
        reason: str = "",
        attempts: int = 0,
    ) -> asyncio.Future[object]:
        """Send a part's final record; returns the ack future (awaited in :meth:`_finish`)."""
        delivery = PartDelivery(
            reply_id=reply.reply_id,
            shop_id=reply.shop_id,
            conversation_id=reply.conversation_id,
            index=part.index,
            status=status,
            platform_message_id=platform_id,
            reason=reason,
            attempts=attempts,
            at_ms=now_ms(),
        )
        return await self.producer.send(
            CHAT_DELIVERIES.name,
            encode(delivery),
            key=reply.part_key(part.index).encode(),
            partition=placed,
        )

    async def _write(
        self,
        reply: ChatReply,
        index: int,
        status: str,
        *,
        key: str,
        at_ms: int,
        image_urls: dict[str, str] | None = None,
        placed: int | None,
    ) -> None:
        marker = PartDelivery(
            reply_id=reply.reply_id,
            shop_id=reply.shop_id,
            conversation_id=reply.conversation_id,
            index=index,
            status=status,
            at_ms=at_ms,
            image_urls=image_urls or {},
        )
        await self.producer.send_and_wait(
            CHAT_DELIVERIES.name, encode(marker), key=key.encode(), partition=placed
        )


def _count_retry(_exc: PlatformError, _attempt: int, _delay_s: float) -> None:
    PLATFORM_RETRIES.inc()


def _log_unread_delivery_log(exc: BaseException, attempt: int, _delay_s: float) -> None:
    log.warning(
        "delivery log not caught up; replies wait for it",
        extra={"attempt": attempt, "error": repr(exc)},
    )


def _log_tombstone_failure(fut: asyncio.Future[object]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.info(
            "marker tombstone not acknowledged; the marker stays, harmlessly",
            extra={"error": fut.exception().__class__.__name__},
        )


class CatchUpOnAssign(ConsumerRebalanceListener):
    """Whenever partitions are (re)assigned, hold the delivery log partitions of the
    ``chat.replies`` partitions assigned (a new one read from its start, one gone dropped)
    and catch up: another instance may have delivered parts of them since this one last
    read. Replies wait for it
    (:meth:`DeliveryLog.current`); a failed catch-up is retried, never skipped, because
    aiokafka would only log a listener's exception and consume on with markers missing."""

    def __init__(self, fanout: FanOut) -> None:
        self._fanout = fanout

    async def on_partitions_revoked(self, revoked: object) -> None:
        self._fanout.delivered.outdated()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        cfg = self._fanout.cfg
        numbers = {tp.partition for tp in assigned}

        async def catch_up(_attempt: int) -> None:
            await self._fanout.delivered.hold(numbers)

        await retry(
            catch_up,
            RetryPolicy(cfg.fanout_backoff_base_s, cfg.fanout_backoff_max_s),
            on=(KafkaError, OSError, TimeoutError),
            on_retry=_log_unread_delivery_log,
        )
        log.info("delivery log caught up", extra={"keys": len(self._fanout.delivered)})


async def main(runtime: ServiceRuntime, cfg: FanoutSettings) -> None:
    """The fan-out's parts, started in order on the runtime (stopped in reverse)."""
    producer = await runtime.producer(start_producer(cfg))
    platform = chat_platform_from_settings(cfg)
    runtime.on_stop(platform.aclose)
    shops = ShopSettingsView(cfg)
    await runtime.started(shops, shops.start, shops.stop)
    fanout = FanOut(cfg, producer, platform, shops)
    consumer: AIOKafkaConsumer = make_consumer(cfg, group_id=cfg.fanout_group)
    runtime.on_stop(fanout.delivered.stop)
    consumer.subscribe([cfg.fanout_replies_topic], listener=CatchUpOnAssign(fanout))
    await runtime.consumer(consumer, group=cfg.fanout_group)
    runtime.serve_ops(cfg.http_host, cfg.fanout_port)
    await consume_keyed_batches(consumer, fanout.handle, max_records=500)
