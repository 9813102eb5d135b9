"""What the mailer group has already done, from a live tail of ``mail.outcomes``.

``mail.outcomes`` is compacted and keyed by digest (or notice) id, while
``mail.digests`` is keyed by conversation, so the replica that owns a digest's
partition does not own its outcome's partition: every replica therefore tails
*all* outcome partitions, from the beginning, for as long as it runs.

Loading the set once at start is not enough: with two replicas and a rebalance,
replica B can be handed a partition whose last batch replica A sent after B
started. :meth:`OutcomeLedger.catch_up` closes that hole: before a batch is
handled, the ledger reads up to the outcome topic's end offsets *as of now*, so
every outcome a previous owner wrote before giving up the partition is known
(the digest consumer makes the previous owner finish and record its in-flight
batch before it lets a partition go).

Two kinds of record share a key: ``attempting`` (written just before the SMTP
transaction) and the final outcome (``sent``/``failed``/``duplicate``), which
compaction keeps. An id seen only as ``attempting`` means a process died between
starting a send and recording it: the relay may or may not have the mail.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import Enum

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)

ATTEMPTING = "attempting"


class Seen(Enum):
    NOTHING = "nothing"
    ATTEMPTED = "attempted"  # a send started; whether the relay took it is unknown
    DONE = "done"  # a final outcome is recorded


class OutcomeLedger:
    """Digest ids with a recorded outcome, kept current by a background tail."""

    def __init__(self, bootstrap: str, topic: str, *, poll_ms: int = 200) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._poll_ms = poll_ms
        self._done: set[str] = set()
        self._attempted: set[str] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def seen(self, item_id: str) -> Seen:
        if item_id in self._done:
            return Seen.DONE
        if item_id in self._attempted:
            return Seen.ATTEMPTED
        return Seen.NOTHING

    def record_done(self, item_id: str) -> None:
        """Note an outcome this process has just written (no need to wait for the tail)."""
        self._done.add(item_id)
        self._attempted.discard(item_id)

    def __len__(self) -> int:
        return len(self._done)

    async def start(self) -> None:
        """Read every outcome recorded so far, then keep tailing in the background."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed")
        await consumer.start()
        self._consumer = consumer
        parts = consumer.partitions_for_topic(self._topic) or set()
        self._tps = [TopicPartition(self._topic, p) for p in sorted(parts)]
        if not self._tps:
            raise RuntimeError(f"topic {self._topic} has no partitions; run ensure_topics first")
        consumer.assign(self._tps)
        await consumer.seek_to_beginning(*self._tps)
        self._positions = dict.fromkeys(self._tps, 0)
        self._task = asyncio.create_task(self._tail(), name="outcome-ledger-tail")
        await self.catch_up()

    async def catch_up(self, timeout_s: float = 30.0) -> None:
        """Return once every outcome written before this call has been applied."""
        assert self._consumer is not None, "start() first"
        ends = await self._consumer.end_offsets(self._tps)

        def reached() -> bool:
            if self._task is not None and self._task.done():
                self._task.result()  # surface a dead tail instead of waiting forever
            return all(self._positions[tp] >= end for tp, end in ends.items())

        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(reached), timeout_s)

    async def _tail(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=self._poll_ms)
            for records in batches.values():
                for rec in records:
                    self._apply(rec)
            # Positions from the consumer, not from the last record: they also move past
            # control records and compacted gaps, and idle partitions report their end.
            for tp in self._tps:
                with contextlib.suppress(Exception):
                    self._positions[tp] = await self._consumer.position(tp)
            async with self._progress:
                self._progress.notify_all()

    def _apply(self, rec: ConsumerRecord) -> None:
        if not rec.key:
            return
        item_id = rec.key.decode("utf-8", "replace")
        status = ""
        if rec.value:
            try:
                status = str(orjson.loads(rec.value).get("status", ""))
            except (orjson.JSONDecodeError, AttributeError):
                log.warning("unreadable outcome record", extra={"key": item_id})
        if status == ATTEMPTING:
            if item_id not in self._done:
                self._attempted.add(item_id)
        else:
            self.record_done(item_id)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
