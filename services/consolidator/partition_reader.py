"""Exact reads of one partition's offset range, on a consumer of our own beside faust's.

Two things faust's consumer does not give reliably, and the consolidator needs:

* the whole of a changelog partition up to a known offset. faust's recovery stops
  at the partition's reported end offset; a broker that under-reports it (Tansu, the
  embedded broker, ends it just after the FIRST record of the last batch) leaves the last
  writes of the previous owner unread, and a store that already held newer values
  (standby) gets older ones written over them. Writing a fence record and reading
  up to ITS offset (known from the produce ack) does not depend on the end offset.
* records of ``chat.events`` that faust's fetcher skipped: when faust seeks a
  partition back to its committed offset while records fetched before the seek
  are still being handed out, it takes the jump as a "gap", marks the offsets in
  between as acked and never delivers them.

No consumer group: partitions are assigned by hand, nothing is committed.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


class PartitionReader:
    """Reads ``[start, end)`` of a partition; one read at a time."""

    def __init__(self, bootstrap: str, *, timeout_s: float = 30.0) -> None:
        self.bootstrap = bootstrap
        self.timeout_s = timeout_s
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            # A short fetch wait: reads are short and awaited by the batch handler.
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=20,
                client_id="consolidator-partition-reader",
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def read(
        self, topic: str, partition: int, start: int, end: int
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Every record of one partition with ``start <= offset < end``, in offset order."""
        return (await self.read_many(topic, {partition: (start, end)})).get(partition, [])

    async def read_many(
        self, topic: str, ranges: dict[int, tuple[int, int]]
    ) -> dict[int, list[ConsumerRecord[bytes, bytes]]]:
        """``partition -> (start, end)`` read together: the records of each range, in order.

        A compacted topic may have holes; a range is done when the position passes
        ``end - 1``. Raises TimeoutError when that takes longer than ``timeout_s``.
        """
        wanted = {TopicPartition(topic, p): r for p, r in ranges.items() if r[1] > r[0]}
        out: dict[int, list[ConsumerRecord[bytes, bytes]]] = {p: [] for p in ranges}
        if not wanted:
            return out
        async with self._lock:
            consumer = await self._started()
            consumer.assign(list(wanted))
            for tp, (start, _) in wanted.items():
                consumer.seek(tp, start)
            deadline = time.monotonic() + self.timeout_s
            pending = set(wanted)
            while pending:
                for tp in list(pending):
                    if await consumer.position(tp) >= wanted[tp][1]:
                        pending.discard(tp)
                if not pending:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{topic} ranges {sorted(ranges.items())} not read "
                        f"within {self.timeout_s} s"
                    )
                batch = await consumer.getmany(*pending, timeout_ms=200)
                for tp, records in batch.items():
                    start, end = wanted[tp]
                    out[tp.partition].extend(r for r in records if start <= r.offset < end)
            consumer.unsubscribe()
            return out

    async def first_offset(self, topic: str, partition: int) -> int:
        """The partition's earliest offset (where a group without a commit starts)."""
        async with self._lock:
            consumer = await self._started()
            tp = TopicPartition(topic, partition)
            return int((await consumer.beginning_offsets([tp]))[tp])

    async def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int]:
        """The group's committed offsets (the next offset to handle); absent when none."""
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self.bootstrap, client_id="consolidator-partition-reader"
            )
            await admin.start()
            self._admin = admin
        tps = [TopicPartition(topic, p) for p in partitions]
        offsets = await self._admin.list_consumer_group_offsets(group, partitions=tps)
        return {
            tp.partition: meta.offset
            for tp, meta in offsets.items()
            if meta is not None and meta.offset >= 0
        }

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
