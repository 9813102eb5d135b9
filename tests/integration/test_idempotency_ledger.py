"""The idempotency ledger on a real broker: a catch-up sees everything recorded before it
(by any process), reads only what is new since the last one, holds lookups from an
assignment change until then; the fan-out's ledger now forgets and tombstones old parts;
a ledger guarding input topics holds only the partitions of the inputs assigned."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from fanout.delivery_log import DeliveryLog
from fanout.fanout_settings import FanoutSettings
from shared.codec import encode
from shared.compacted_topic import replay_topic
from shared.events import DeliveryStatus, PartDelivery
from shared.idempotency_ledger import IdempotencyLedger
from shared.kafka import ensure_topics
from shared.topics import CHAT_DELIVERIES, DAY_MS, TopicSpec
from tests.integration.test_mailer_outcome_retention import records_of
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def fresh_ledger_topic(bootstrap: str, partitions: int = 4) -> str:
    topic = f"test.ledger.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions, compacted=True)])
    return topic


async def fresh_input_topic(bootstrap: str, partitions: int = 4) -> str:
    topic = f"test.input.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [TopicSpec(topic, partitions)])
    return topic


async def write_to(bootstrap: str, topic: str, keys_by_partition: dict[int, list[str]]) -> None:
    """Each key's record on the partition given (as the services place them)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, keys in keys_by_partition.items():
            for key in keys:
                await producer.send_and_wait(topic, b"done", key=key.encode(), partition=partition)
    finally:
        await producer.stop()


def keys_on(partition: int, n: int = 5) -> list[str]:
    return [f"p{partition}-k{i}" for i in range(n)]


async def write(bootstrap: str, topic: str, *keys: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key in keys:
            await producer.send_and_wait(topic, b"done", key=key.encode())
    finally:
        await producer.stop()


def counting_ledger(
    bootstrap: str,
    topic: str,
    reads: list[bytes],
    guarded: tuple[str, ...] = (),
    read_all: bool = False,
) -> IdempotencyLedger[str]:
    def read(value: bytes) -> str:
        reads.append(value)
        return value.decode()

    # A tail that never runs on its own: only catch-ups read.
    return IdempotencyLedger(
        bootstrap,
        topic,
        read,
        retention_ms=DAY_MS,
        poll_ms=3_600_000,
        guarded=guarded,
        read_all=read_all,
    )


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
        every = range(CHAT_DELIVERIES.partitions)  # the parts lie where their key put them
        await ledger.hold(every)
        assert old_key not in ledger and recent_key in ledger
        history = await records_of(
            kafka_bootstrap,
            {old_key, recent_key},
            until=lambda h: (old_key, None) in h,
            topic=CHAT_DELIVERIES.name,
        )
        assert (recent_key, None) not in history
        # A replica with the default retention forgets it only through the tombstone.
        await later.hold(every)
        assert old_key not in later and recent_key in later
    finally:
        await later.stop()
        await ledger.stop()
        await producer.stop()


async def test_a_ledger_holds_only_the_partitions_of_its_assigned_inputs_reading_a_new_one_whole(
    kafka_bootstrap: str,
) -> None:
    topic = await fresh_ledger_topic(kafka_bootstrap)
    inputs = await fresh_input_topic(kafka_bootstrap)
    await write_to(kafka_bootstrap, topic, {p: keys_on(p) for p in range(4)})
    reads: list[bytes] = []
    ledger = counting_ledger(kafka_bootstrap, topic, reads, guarded=(inputs,))
    try:
        await ledger.start()
        assert ledger.per_partition and ledger.held == set() and reads == []
        await ledger.hold({0, 1})
        assert ledger.held == {0, 1} and len(ledger) == 10 and len(reads) == 10
        assert all(ledger.get(k) == "done" for k in keys_on(0) + keys_on(1))
        assert ledger.get(keys_on(2)[0]) is None
        # A rebalance: input 0 goes, 2 comes, 1 stays (and is not read again).
        await ledger.hold({1, 2})
        assert ledger.held == {1, 2} and len(reads) == 15
        assert all(ledger.get(k) is None for k in keys_on(0))
        assert all(ledger.get(k) == "done" for k in keys_on(1) + keys_on(2))
        # The tail keeps held partitions current, and only them.
        await write_to(kafka_bootstrap, topic, {1: ["p1-new"], 3: ["p3-new"]})
        await ledger.catch_up()
        assert ledger.get("p1-new") == "done" and ledger.get("p3-new") is None
        assert len(reads) == 16
    finally:
        await ledger.stop()


async def test_an_expired_key_is_tombstoned_on_the_partition_it_was_read_from(
    kafka_bootstrap: str,
) -> None:
    topic = await fresh_ledger_topic(kafka_bootstrap)
    inputs = await fresh_input_topic(kafka_bootstrap)
    two_days_ago = int(time.time() * 1000) - 2 * DAY_MS
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    ledger: IdempotencyLedger[str] = IdempotencyLedger(
        kafka_bootstrap,
        topic,
        bytes.decode,
        retention_ms=DAY_MS,
        tombstones=producer,
        guarded=(inputs,),
    )
    try:
        await producer.send_and_wait(
            topic, b"done", key=b"old", partition=2, timestamp_ms=two_days_ago
        )
        await ledger.hold({2})
        assert ledger.get("old") is None

        async def tombstones() -> list[int]:
            found: list[int] = []

            def apply(rec) -> None:  # type: ignore[no-untyped-def]
                if rec.key == b"old" and rec.value is None:
                    found.append(rec.partition)

            await replay_topic(kafka_bootstrap, topic, apply)
            return found

        assert await eventually(tombstones, timeout_s=20, what="the tombstone") == [2]
    finally:
        await ledger.stop()
        await producer.stop()


async def test_a_ledger_with_fewer_partitions_than_its_input_reads_every_partition(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    topic = await fresh_ledger_topic(kafka_bootstrap, partitions=2)
    inputs = await fresh_input_topic(kafka_bootstrap, partitions=4)
    await write_to(kafka_bootstrap, topic, {0: keys_on(0), 1: keys_on(1)})
    ledger = counting_ledger(kafka_bootstrap, topic, [], guarded=(inputs,))
    try:
        await ledger.start()
        assert not ledger.per_partition and ledger.held == {0, 1} and len(ledger) == 10
        await ledger.hold({3})  # assigned input 3 only: still everything
        assert ledger.held == {0, 1} and len(ledger) == 10
        assert ledger.partition_for(3) == 1
        assert "fewer partitions than an input topic" in caplog.text
    finally:
        await ledger.stop()


async def test_read_all_holds_every_partition_whatever_is_assigned(kafka_bootstrap: str) -> None:
    topic = await fresh_ledger_topic(kafka_bootstrap)
    inputs = await fresh_input_topic(kafka_bootstrap)
    await write_to(kafka_bootstrap, topic, {p: keys_on(p) for p in range(4)})
    ledger = counting_ledger(kafka_bootstrap, topic, [], guarded=(inputs,), read_all=True)
    try:
        await ledger.hold({0})
        assert ledger.held == {0, 1, 2, 3} and len(ledger) == 20
        assert ledger.partition_for(2) == 2  # placed per partition all the same
    finally:
        await ledger.stop()
