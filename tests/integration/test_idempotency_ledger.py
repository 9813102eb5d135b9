"""The idempotency ledger on a real broker: a catch-up sees everything recorded before it
(by any process), reads only what is new since the last one, holds lookups from an
assignment change until then; the fan-out's ledger now forgets and tombstones old parts."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from fanout.delivery_log import DeliveryLog
from fanout.fanout_settings import FanoutSettings
from shared.codec import encode
from shared.events import DeliveryStatus, PartDelivery
from shared.idempotency_ledger import IdempotencyLedger
from shared.kafka import ensure_topics
from shared.topics import CHAT_DELIVERIES, DAY_MS, TopicSpec
from tests.integration.test_mailer_outcome_retention import records_of

pytestmark = pytest.mark.integration


async def fresh_ledger_topic(bootstrap: str) -> str:
    topic = f"test.ledger.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, 4, compacted=True)])
    return topic


async def write(bootstrap: str, topic: str, *keys: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(topic, b"done", key=key.encode())
    finally:
        await producer.stop()


def counting_ledger(bootstrap: str, topic: str, reads: list[bytes]) -> IdempotencyLedger[str]:
    def read(value: bytes) -> str:
        reads.append(value)
        return value.decode()

    # A tail that never runs on its own: only catch-ups read.
    return IdempotencyLedger(bootstrap, topic, read, retention_ms=DAY_MS, poll_ms=3_600_000)


async def test_a_catch_up_sees_what_another_process_recorded_before_it(
    kafka_bootstrap: str,
) -> None:
    topic = await fresh_ledger_topic(kafka_bootstrap)
    await write(kafka_bootstrap, topic, "before-start")
    ledger = counting_ledger(kafka_bootstrap, topic, [])
    try:
        await ledger.start()
        assert ledger.get("before-start") == "done"
        await write(kafka_bootstrap, topic, *(f"by-the-other-owner-{n}" for n in range(20)))
        await ledger.catch_up()
        assert all(ledger.get(f"by-the-other-owner-{n}") == "done" for n in range(20))
    finally:
        await ledger.stop()


async def test_a_catch_up_after_an_assignment_reads_only_what_was_written_since(
    kafka_bootstrap: str,
) -> None:
    topic = await fresh_ledger_topic(kafka_bootstrap)
    await write(kafka_bootstrap, topic, *(f"old-{n}" for n in range(30)))
    reads: list[bytes] = []
    ledger = counting_ledger(kafka_bootstrap, topic, reads)
    try:
        await ledger.catch_up()  # the first assignment: the whole topic
        assert len(reads) == 30
        await write(kafka_bootstrap, topic, "new")
        ledger.outdated()
        await ledger.catch_up()  # the next assignment
        assert len(reads) == 31 and ledger.get("new") == "done"
    finally:
        await ledger.stop()


async def test_lookups_wait_from_an_assignment_change_to_the_next_catch_up(
    kafka_bootstrap: str,
) -> None:
    topic = await fresh_ledger_topic(kafka_bootstrap)
    ledger = counting_ledger(kafka_bootstrap, topic, [])
    try:
        await ledger.start()
        await asyncio.wait_for(ledger.current(), 1)
        ledger.outdated()
        waiting = asyncio.create_task(ledger.current())
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await ledger.catch_up()
        await asyncio.wait_for(waiting, 1)
    finally:
        await ledger.stop()


async def test_the_fanout_forgets_a_part_past_its_retention_and_tombstones_it(
    kafka_bootstrap: str,
) -> None:
    run = uuid.uuid4().hex[:8]
    old_key, recent_key = f"old-{run}:0", f"recent-{run}:0"
    now_ms = int(time.time() * 1000)
    cfg = FanoutSettings(kafka_bootstrap=kafka_bootstrap, fanout_delivery_retention_days=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    ledger = DeliveryLog(cfg, tombstones=producer)
    later = DeliveryLog(FanoutSettings(kafka_bootstrap=kafka_bootstrap))  # default: 34 days
    try:
        for key, at_ms in ((old_key, now_ms - 2 * DAY_MS), (recent_key, now_ms)):
            part = PartDelivery(
                reply_id=key[:-2],
                shop_id="s",
                conversation_id="c",
                index=0,
                status=DeliveryStatus.DELIVERED,
                at_ms=at_ms,
            )
            await producer.send_and_wait(
                CHAT_DELIVERIES.name, encode(part), key=key.encode(), timestamp_ms=at_ms
            )
        await ledger.catch_up()
        assert old_key not in ledger and recent_key in ledger
        history = await records_of(
            kafka_bootstrap,
            {old_key, recent_key},
            until=lambda h: (old_key, None) in h,
            topic=CHAT_DELIVERIES.name,
        )
        assert (recent_key, None) not in history
        # A replica with the default retention forgets it only through the tombstone.
        await later.catch_up()
        assert old_key not in later and recent_key in later
    finally:
        await later.stop()
        await ledger.stop()
        await producer.stop()
