"""Replaying a topic from a fresh consumer reads every partition, on either broker.

A consumer without a subscription holds no topic metadata on Apache Kafka (Tansu sends
every topic with every metadata answer), so the partitions are asked of the cluster.
"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from shared.compacted_topic import replay_topic
from shared.kafka import ensure_topics, topic_partitions
from shared.topics import TopicSpec

pytestmark = pytest.mark.integration


async def test_replay_reads_the_records_of_every_partition(kafka_bootstrap: str) -> None:
    topic = f"test.replay.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3, compacted=True)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for partition in range(3):
            await producer.send_and_wait(
                topic, f"v{partition}".encode(), key=f"k{partition}".encode(), partition=partition
            )
    finally:
        await producer.stop()

    seen: list[ConsumerRecord] = []
    assert await replay_topic(kafka_bootstrap, topic, seen.append) == 3
    assert sorted((r.partition, r.value) for r in seen) == [(0, b"v0"), (1, b"v1"), (2, b"v2")]


async def test_topic_partitions_names_each_partition_and_none_of_a_missing_topic(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.partitions.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, 3)])
    found = await topic_partitions(kafka_bootstrap, topic, f"{topic}.missing")
    assert [(tp.topic, tp.partition) for tp in found] == [(topic, 0), (topic, 1), (topic, 2)]
