"""Reading topics back on the real broker: every record so far, per partition (tests, and
the chaos run's trace of what it lost); a tail that follows topics as records arrive (the
playground's timeline); one record awaited after an action (a reply's verdict)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from shared.topics import MAIL_INBOUND, TopicSpec


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


class TopicTail:
    """Every record of ``topics`` from their beginning, then as they arrive, handed to
    ``on_record`` (the playground's timeline; a reply's verdict in the mail sink). Start with
    :meth:`run` as a task; cancel it to stop. ``from_end`` starts at the end instead: only
    what arrives after :meth:`ready` returned."""

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[TopicSpec],
        on_record: Callable[[ConsumerRecord], None],
        *,
        from_end: bool = False,
    ) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._on_record = on_record
        self._from_end = from_end
        self._positioned = asyncio.Event()

    async def ready(self) -> None:
        """Return once the tail has its starting offsets."""
        await self._positioned.wait()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=MAIL_INBOUND.max_message_bytes,
            fetch_max_bytes=MAIL_INBOUND.max_message_bytes,
        )
        await consumer.start()
        try:
            tps = [TopicPartition(t.name, p) for t in self._topics for p in range(t.partitions)]
            consumer.assign(tps)
            if self._from_end:
                await consumer.seek_to_end(*tps)
                for tp in tps:  # resolve the end offsets now, not at the first fetch
                    await consumer.position(tp)
            else:
                await consumer.seek_to_beginning(*tps)
            self._positioned.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        self._on_record(record)
        finally:
            await consumer.stop()


async def wait_for_record(
    bootstrap: str,
    topic: TopicSpec,
    matches: Callable[[ConsumerRecord], bool],
    start: Callable[[], Awaitable[object]],
    *,
    timeout_s: float,
) -> ConsumerRecord | None:
    """Run ``start`` (which makes the record appear: e.g. sends a mail), then wait for the
    first record of ``topic`` written after that call began that ``matches``; None after
    ``timeout_s``. Raises what ``start`` raises."""
    found: asyncio.Future[ConsumerRecord] = asyncio.get_running_loop().create_future()

    def on_record(record: ConsumerRecord) -> None:
        if not found.done() and matches(record):
            found.set_result(record)

    tail = TopicTail(bootstrap, (topic,), on_record, from_end=True)
    task = asyncio.create_task(tail.run())
    try:
        await asyncio.wait_for(tail.ready(), timeout_s)
        await start()
        return await asyncio.wait_for(found, timeout_s)
    except TimeoutError:
        return None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await task
