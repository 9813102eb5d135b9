"""What the broker guarantees beyond the effect-level idempotency, per leg of the test command.

Apache Kafka hands out producer ids, so ``BRIDGE_KAFKA_IDEMPOTENCE=auto`` (the default) makes
every producer built by ``shared.kafka`` idempotent there, and the broker itself then tracks
our producer (``kafka-transactions describe-producers``). Tansu refuses InitProducerId: there
``auto`` stays off and the producers still write. End offsets: Kafka reports one past the
last record; Tansu one past the FIRST record of the last batch, which is why the consolidator
reads a changelog up to a fence of its own instead of up to the end offset.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.kafka import ensure_jars
from shared.config import BridgeSettings
from shared.kafka import (
    broker_allows_idempotence,
    ensure_topics,
    producer_idempotence,
    start_producer,
)
from shared.topics import TopicSpec

pytestmark = pytest.mark.integration


async def _fresh_topic(bootstrap: str, partitions: int = 1) -> str:
    topic = f"test.guarantees.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
    return topic


def _producer_ids(bootstrap: str, topic: str) -> list[int]:
    """Producer ids the broker holds state for on partition 0, from Kafka's own tool."""
    done = subprocess.run(
        [
            "java",
            "-Xmx128m",
            "-cp",
            f"{ensure_jars()}/*",
            "org.apache.kafka.tools.TransactionsCommand",
            "--bootstrap-server",
            bootstrap,
            "describe-producers",
            "--topic",
            topic,
            "--partition",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]
    return [int(row[0]) for row in rows]


@pytest.mark.kafka_only(reason="Tansu refuses InitProducerId")
async def test_producers_are_idempotent_where_the_broker_hands_out_producer_ids(
    kafka_bootstrap: str,
) -> None:
    settings = BridgeSettings(kafka_bootstrap=kafka_bootstrap, kafka_idempotence="auto")
    assert await producer_idempotence(settings) is True
    topic = await _fresh_topic(kafka_bootstrap)
    producer = await start_producer(settings)
    try:
        await producer.send_and_wait(topic, b"once", key=b"k")
    finally:
        await producer.stop()
    # The broker keeps sequence state only for idempotent producers: ours is there.
    ids = await asyncio.to_thread(_producer_ids, kafka_bootstrap, topic)
    assert len(ids) == 1 and ids[0] >= 0, ids


@pytest.mark.kafka_only(reason="Tansu refuses InitProducerId")
async def test_idempotence_set_off_is_honoured_on_kafka(kafka_bootstrap: str) -> None:
    settings = BridgeSettings(kafka_bootstrap=kafka_bootstrap, kafka_idempotence=False)
    assert await producer_idempotence(settings) is False
    topic = await _fresh_topic(kafka_bootstrap)
    producer = await start_producer(settings)
    try:
        await producer.send_and_wait(topic, b"plain", key=b"k")
    finally:
        await producer.stop()
    assert await asyncio.to_thread(_producer_ids, kafka_bootstrap, topic) == []


@pytest.mark.tansu_only(reason="asserts that Tansu refuses InitProducerId")
async def test_auto_idempotence_is_off_on_tansu_and_producers_still_write(
    kafka_bootstrap: str,
) -> None:
    assert await broker_allows_idempotence(kafka_bootstrap) is False
    settings = BridgeSettings(kafka_bootstrap=kafka_bootstrap, kafka_idempotence="auto")
    topic = await _fresh_topic(kafka_bootstrap)
    producer = await start_producer(settings)
    try:
        meta = await producer.send_and_wait(topic, b"written", key=b"k")
    finally:
        await producer.stop()
    assert meta.offset == 0


async def _end_after_one_batch(bootstrap: str, records: int) -> tuple[int, int]:
    """(last offset written, reported end offset) after ``records`` sent as one batch."""
    topic = await _fresh_topic(bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=200)
    await producer.start()
    try:
        sends = [await producer.send(topic, str(n).encode(), partition=0) for n in range(records)]
        last = max(meta.offset for meta in await asyncio.gather(*sends))
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return last, end


@pytest.mark.kafka_only(reason="Tansu under-reports a batch's end offset")
async def test_end_offset_is_one_past_the_last_record_of_a_batch(kafka_bootstrap: str) -> None:
    last, end = await _end_after_one_batch(kafka_bootstrap, 10)
    assert (last, end) == (9, 10)


@pytest.mark.tansu_only(reason="the quirk the consolidator's changelog fence works around")
async def test_tansu_end_offset_stops_after_the_first_record_of_the_last_batch(
    kafka_bootstrap: str,
) -> None:
    last, end = await _end_after_one_batch(kafka_bootstrap, 10)
    # When this fails, Tansu got it right: the fence (consolidator.partition_reader) and
    # the other "# Tansu:" workarounds can be looked at again.
    assert (last, end) == (9, 1)
