"""Reading a topic back on the real broker (tests, and the chaos run's trace of what it
lost): every record so far, per partition."""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition


async def records_so_far(
    bootstrap: str, topic: str, partitions: int, timeout_s: float = 10.0
) -> dict[int, list[ConsumerRecord]]:
    """The records of ``topic`` from the beginning up to the end offsets as of this call,
    in offset order per partition (bounded by ``timeout_s``)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[ConsumerRecord]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            behind = [tp for tp, end in ends.items() if await consumer.position(tp) < end]
            if not behind:
                break
            for tp, recs in (await consumer.getmany(*behind, timeout_ms=500)).items():
                out[tp.partition].extend(recs)
        return out
    finally:
        await consumer.stop()
