"""The compacted-topic reader on a real broker: ready means every record that was on the
topic at start is applied (on Tansu too, whose end offset stops inside the last batch),
and it reads from where it is told, the partitions it is given, then follows."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition

from shared.compacted_topic import CompactedTopicReader
from shared.kafka import ensure_topics
from shared.topic_state_store import Position, TopicStateStore
from shared.topics import TopicSpec

pytestmark = pytest.mark.integration

ONE_BATCH = 1500  # more than any reader used to take per fetch (1,000 / 2,000 records)


async def fresh_topic(bootstrap: str, partitions: int = 1) -> str:
    topic = f"test.reader.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions, compacted=True)])
    return topic


async def send_one_batch(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes | None]], partition: int = 0
) -> None:
    """``records`` (key, value) produced as one batch to ``partition``, all acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=500,
        max_batch_size=4 * 1024 * 1024,
        max_request_size=4 * 1024 * 1024,
    )
    await producer.start()
    try:
        sends = [
            await producer.send(topic, value, key=key, partition=partition)
            for key, value in records
        ]
        for sent in sends:
            await sent
    finally:
        await producer.stop()


async def test_ready_only_once_every_record_of_the_last_batch_is_applied(
    kafka_bootstrap: str,
) -> None:
    topic = await fresh_topic(kafka_bootstrap)
    await send_one_batch(
        kafka_bootstrap, topic, [(f"k{n}".encode(), f"v{n}".encode()) for n in range(ONE_BATCH)]
    )
    seen: list[ConsumerRecord] = []
    reader = CompactedTopicReader(kafka_bootstrap, seen.append, topics=[topic])
    try:
        await reader.start(wait_s=30)
        assert reader.ready.is_set()
        assert len(seen) == ONE_BATCH and seen[-1].value == f"v{ONE_BATCH - 1}".encode()
    finally:
        await reader.stop()


async def test_follows_after_ready_and_catch_up_waits_for_what_was_written_before_it(
    kafka_bootstrap: str,
) -> None:
    topic = await fresh_topic(kafka_bootstrap)
    await send_one_batch(kafka_bootstrap, topic, [(b"a", b"1")])
    seen: dict[bytes, bytes | None] = {}
    reader = CompactedTopicReader(
        kafka_bootstrap, lambda r: seen.__setitem__(r.key, r.value), topics=[topic], poll_ms=60_000
    )  # the tail would not help
    try:
        await reader.start(wait_s=30)
        assert seen == {b"a": b"1"}
        await send_one_batch(kafka_bootstrap, topic, [(b"b", b"2"), (b"a", None)])
        await reader.catch_up(timeout_s=30)
        assert seen == {b"a": None, b"b": b"2"}  # the tombstone reaches apply as None
    finally:
        await reader.stop()


async def test_reads_only_the_partitions_it_is_given(kafka_bootstrap: str) -> None:
    topic = await fresh_topic(kafka_bootstrap, partitions=3)
    for partition in range(3):
        await send_one_batch(
            kafka_bootstrap, topic, [(b"k", f"p{partition}".encode())], partition=partition
        )
    seen: list[ConsumerRecord] = []
    reader = CompactedTopicReader(
        kafka_bootstrap, seen.append, follow=False, partitions=[TopicPartition(topic, 1)]
    )
    try:
        await reader.start(wait_s=30)
        assert [(r.partition, r.value) for r in seen] == [(1, b"p1")]
    finally:
        await reader.stop()


async def test_from_end_reads_only_what_is_written_after_start(kafka_bootstrap: str) -> None:
    topic = await fresh_topic(kafka_bootstrap)
    await send_one_batch(kafka_bootstrap, topic, [(b"old", b"1")])
    seen: list[bytes] = []
    reader = CompactedTopicReader(
        kafka_bootstrap, lambda r: seen.append(r.key), topics=[topic], from_end=True
    )
    try:
        await reader.start(wait_s=30)
        await send_one_batch(kafka_bootstrap, topic, [(b"new", b"2")])
        await reader.catch_up(timeout_s=30)
        assert seen == [b"new"]
    finally:
        await reader.stop()


async def test_since_ms_reads_every_record_from_that_time_on(kafka_bootstrap: str) -> None:
    topic = await fresh_topic(kafka_bootstrap)
    now_ms = int(time.time() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for key, age_ms in ((b"an-hour-ago", 3_600_000), (b"a-minute-ago", 60_000), (b"now", 0)):
            await producer.send_and_wait(
                topic, b"v", key=key, partition=0, timestamp_ms=now_ms - age_ms
            )
    finally:
        await producer.stop()
    seen: list[bytes] = []
    reader = CompactedTopicReader(
        kafka_bootstrap,
        lambda r: seen.append(r.key),
        topics=[topic],
        since_ms=now_ms - 120_000,
        follow=False,
    )
    try:
        await reader.start(wait_s=30)
        # A broker may answer the time lookup with an earlier offset (Tansu does): the read
        # is then longer, never shorter.
        assert seen[-2:] == [b"a-minute-ago", b"now"]
    finally:
        await reader.stop()


async def test_a_checkpoint_resumes_after_the_last_batch_and_is_wiped_for_another_log(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    topic = await fresh_topic(kafka_bootstrap)
    await send_one_batch(
        kafka_bootstrap, topic, [(f"k{n}".encode(), b"v") for n in range(ONE_BATCH)]
    )
    store = TopicStateStore(str(tmp_path / "store"))

    async def read() -> CompactedTopicReader:
        reader = CompactedTopicReader(
            kafka_bootstrap,
            lambda r: store.put(r.key, r.value),
            topics=[topic],
            follow=False,
            checkpoint=store,
        )
        await reader.start(wait_s=30)
        await reader.stop()
        return reader

    first = await read()
    assert not first.resumed and first.records == ONE_BATCH
    read_to = store.positions()[(topic, 0)]
    assert read_to.next_offset == ONE_BATCH and read_to.last_offset == ONE_BATCH - 1
    # Tansu reports the end inside that one batch: the stored position past it is still
    # in the log, so reading resumes there (nothing read again).
    again = await read()
    assert again.resumed and again.records == 0

    # A topic recreated with as many records: another record at the last offset read.
    store.commit({(topic, 0): read_to._replace(last_fingerprint=read_to.last_fingerprint ^ 1)})
    assert not (rebuilt := await read()).resumed and rebuilt.records == ONE_BATCH
    # One recreated with fewer: the last offset read is past its end.
    store.commit({(topic, 0): Position(ONE_BATCH + 10, ONE_BATCH + 9, read_to.last_fingerprint)})
    assert not (rebuilt := await read()).resumed and rebuilt.records == ONE_BATCH
    assert store.positions() == {(topic, 0): read_to}
    store.close()
