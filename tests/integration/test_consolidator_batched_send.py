"""Record batches on the real broker: every record lands on its partition, in order,
the returned offsets are the last written, and a partition whose records overflow one
batch is split into several, still in order."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from consolidator.batched_send import send_batched
from devstack.topic_reader import records_so_far
from shared.kafka import ensure_topics
from shared.topics import TopicSpec

pytestmark = pytest.mark.integration


async def test_records_land_in_order_per_partition_with_last_offsets(kafka_bootstrap: str) -> None:
    topic = f"test.batched.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3)])
    # Small batches so partition 0's records need several; a tombstone among them.
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_batch_size=4096)
    await producer.start()
    try:
        records = [
            (n % 3 if n % 5 else 0, f"k{n}".encode(), None if n == 7 else f"v{n}".encode() * 20)
            for n in range(300)
        ]
        last = await send_batched(producer, topic, records)
    finally:
        await producer.stop()

    written = await records_so_far(kafka_bootstrap, topic, 3)
    for partition in range(3):
        expected = [(k, v) for p, k, v in records if p == partition]
        got = [(r.key, r.value) for r in written[partition]]
        assert got == expected, partition
        assert last[partition] == written[partition][-1].offset
    assert sum(len(v) for v in written.values()) == 300


async def test_a_record_larger_than_a_batch_travels_alone_in_order(kafka_bootstrap: str) -> None:
    topic = f"test.batched.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_batch_size=1024)
    await producer.start()
    try:
        records = [(0, b"k1", b"x" * 10), (0, b"k2", b"y" * 5000), (0, b"k3", b"z")]
        last = await send_batched(producer, topic, records)
    finally:
        await producer.stop()
    written = (await records_so_far(kafka_bootstrap, topic, 1))[0]
    assert [(r.key, r.value) for r in written] == [(k, v) for _, k, v in records]
    assert last == {0: written[-1].offset}
