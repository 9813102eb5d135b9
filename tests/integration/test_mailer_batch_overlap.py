"""The mailer's consume loop with overlapping batches, on the real broker.

``mailer.digest_consumer.consume_digests`` reads a topic of its own (so the session
stack's mailer never sees these records) in small batches, with the real outcome
ledger catching up before each; the handler takes a varying time per record. A
watcher reads the group's committed offsets throughout: none may ever pass a record
whose handling has not finished, and each key's records run one at a time, in order.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from mailer.digest_consumer import consume_digests
from mailer.outcome_ledger import OutcomeLedger
from shared.config import BridgeSettings
from shared.kafka import make_consumer
from shared.topics import MAIL_OUTCOMES
from tests.polling import eventually

pytestmark = pytest.mark.integration

PARTITIONS = 3
KEYS = 6
RECORDS = 120


async def test_overlapping_batches_keep_key_order_and_never_commit_past_an_unfinished_record(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.mailer-overlap.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sends = [
            await producer.send(topic, str(n).encode(), key=f"k{n % KEYS}".encode())
            for n in range(RECORDS)
        ]
        # Tansu: its ListOffsets undercounts batched records, so the ends come from the acks.
        ends: dict[TopicPartition, int] = defaultdict(int)
        for meta in await asyncio.gather(*sends):
            tp = TopicPartition(meta.topic, meta.partition)
            ends[tp] = max(ends[tp], meta.offset + 1)
    finally:
        await producer.stop()

    rng = random.Random(7)
    finished: dict[TopicPartition, set[int]] = defaultdict(set)
    running_keys: set[bytes] = set()
    order: dict[bytes, list[int]] = defaultdict(list)
    most_at_once = 0
    running = 0
    violations: list[str] = []

    async def handle(rec: ConsumerRecord, still_owned) -> None:  # type: ignore[no-untyped-def]
        nonlocal running, most_at_once
        assert still_owned()
        if rec.key in running_keys:
            violations.append(f"two records of {rec.key!r} at once")
        running_keys.add(rec.key)
        running += 1
        most_at_once = max(most_at_once, running)
        order[rec.key].append(int(rec.value))
        await asyncio.sleep(rng.choice((0.0, 0.002, 0.01, 0.05)))
        running -= 1
        running_keys.discard(rec.key)
        finished[TopicPartition(rec.topic, rec.partition)].add(rec.offset)

    settings = BridgeSettings(kafka_bootstrap=kafka_bootstrap)
    group = f"test-overlap-{uuid.uuid4().hex[:8]}"
    ledger = OutcomeLedger(kafka_bootstrap, MAIL_OUTCOMES.name)
    await ledger.start()
    consumer = make_consumer(settings, group_id=group)
    await consumer.start()
    watcher = make_consumer(settings, group_id=group)
    await watcher.start()
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    loop = asyncio.create_task(
        consume_digests(consumer, [topic], ledger, handle, max_records=8, revoke_timeout_s=30)
    )

    async def all_committed() -> bool:
        for tp in parts:
            committed = await watcher.committed(tp) or 0
            unfinished = [o for o in range(committed) if o not in finished[tp]]
            if unfinished:
                violations.append(f"{tp} committed {committed} before {unfinished} finished")
        return all([(await watcher.committed(tp) or 0) == ends[tp] for tp in parts])

    try:
        assert sum(ends[tp] for tp in parts) == RECORDS
        await eventually(
            all_committed, timeout_s=60, interval_s=0.02, what="every record handled and committed"
        )
        assert not loop.done(), loop.exception() if loop.done() else None
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await watcher.stop()
        await consumer.stop()
        await ledger.stop()
    assert not violations, violations[:5]
    for key, seqs in order.items():
        assert seqs == sorted(seqs), f"{key!r} handled out of order: {seqs}"
    assert sum(len(s) for s in order.values()) == RECORDS
    # Keys run concurrently (6 keys, batches of 8): more than one record at a time.
    assert most_at_once > 1


class SlowToCatchUp(OutcomeLedger):
    """The real ledger, whose catch-ups time out ``failures`` times first, as on a
    loaded broker (a 30 s catch-up ran out in a chaos run and the mailer exited)."""

    def __init__(self, bootstrap: str, failures: int) -> None:
        super().__init__(bootstrap, MAIL_OUTCOMES.name)
        self.failures = failures
        self.current = False

    async def catch_up(self, timeout_s: float = 30.0) -> None:
        if self.failures > 0:
            self.failures -= 1
            self.current = False
            raise TimeoutError("mail.outcomes not read to its end in time")
        await super().catch_up(timeout_s)
        self.current = True


async def test_a_catch_up_that_times_out_is_retried_and_no_batch_runs_before_it_succeeds(
    kafka_bootstrap: str,
) -> None:
    topic = f"test.mailer-catch-up.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, b"%d" % n, key=b"k") for n in range(5)])
    finally:
        await producer.stop()
    ledger = SlowToCatchUp(kafka_bootstrap, failures=0)
    await ledger.start()
    ledger.failures = 2  # the catch-ups before the batches
    handled: list[int] = []

    async def handle(rec: ConsumerRecord, still_owned) -> None:  # type: ignore[no-untyped-def]
        assert ledger.current, "a batch ran before the ledger caught up"
        handled.append(int(rec.value))

    consumer = make_consumer(
        BridgeSettings(kafka_bootstrap=kafka_bootstrap), group_id=f"test-{uuid.uuid4().hex[:8]}"
    )
    await consumer.start()
    loop = asyncio.create_task(
        consume_digests(consumer, [topic], ledger, handle, revoke_timeout_s=30)
    )
    try:
        await eventually(
            lambda: loop.done() or len(handled) == 5, timeout_s=30, what="every record handled"
        )
        assert not loop.done(), loop.exception()
        assert handled == [0, 1, 2, 3, 4] and ledger.failures == 0
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await consumer.stop()
        await ledger.stop()
