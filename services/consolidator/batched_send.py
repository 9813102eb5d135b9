"""Produce many records as whole Kafka record batches, one future per batch.

``producer.send()`` costs a future, a metadata lookup and an accumulator walk per
record; a batch of thousands of changelog records built with
aiokafka's ``create_batch``/``send_batch`` costs one of each per partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer


async def send_batched(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[tuple[int, bytes | None, bytes | None]],
) -> dict[int, int]:
    """Send ``(partition, key, value)`` records in order per partition; wait for the acks.

    Returns the offset of the last record written to each partition.
    """
    builders: dict[int, object] = {}
    counts: dict[int, int] = {}
    sent: list[tuple[int, asyncio.Future, int]] = []  # type: ignore[type-arg]
    for partition, key, value in records:
        builder = builders.get(partition)
        if builder is None:
            builder = builders[partition] = producer.create_batch()
            counts[partition] = 0
        if builder.append(key=key, value=value, timestamp=None) is None:  # type: ignore[attr-defined]
            # Full: send it and start the next one (same partition, so in order).
            sent.append(
                (
                    partition,
                    await producer.send_batch(builder, topic, partition=partition),
                    counts[partition],
                )
            )
            # An empty batch takes any record, however large (it then travels alone;
            # the broker's max.message.bytes is the limit).
            builder = builders[partition] = producer.create_batch()
            counts[partition] = 0
            builder.append(key=key, value=value, timestamp=None)  # type: ignore[attr-defined]
        counts[partition] += 1
    for partition, builder in builders.items():
        if counts[partition]:
            sent.append(
                (
                    partition,
                    await producer.send_batch(builder, topic, partition=partition),
                    counts[partition],
                )
            )
    last: dict[int, int] = {}
    for partition, future, count in sent:
        meta = await future
        last[partition] = max(last.get(partition, -1), meta.offset + count - 1)
    return last
