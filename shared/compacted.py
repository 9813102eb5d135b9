"""Read a (compacted) topic from the beginning to its current end, once.

Services rebuild small idempotency state this way at start: the mailer's
sent digests, the fan-out's delivered parts.
"""

from __future__ import annotations

from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from shared.kafka import topic_partitions


async def replay_topic(bootstrap: str, topic: str, apply: Callable[[ConsumerRecord], None],
                       *, poll_ms: int = 1000) -> int:
    """Feed every record currently in ``topic`` to ``apply``; returns the count."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    count = 0
    try:
        tps = await topic_partitions(bootstrap, topic)
        if not tps:
            return 0
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            for tp, recs in (await consumer.getmany(timeout_ms=poll_ms)).items():
                for rec in recs:
                    apply(rec)
                    count += 1
                if recs and recs[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return count
