"""Reads a topic (or chosen partitions) from its start to its current end, then optionally tails it.

The one way a process rebuilds state from Kafka: shop settings, the admin directory (on
disk), the sent-mail log, the idempotency ledgers. No consumer group (every process reads
every partition it names, like a global table), nothing committed to Kafka; partitions can
be added (:meth:`CompactedTopicReader.assign`) and dropped
(:meth:`CompactedTopicReader.revoke`) while it runs, for state held per partition. Each
record goes
to ``apply`` (a tombstone has ``value`` None); :attr:`CompactedTopicReader.ready` is set
once everything that was on the topic at start has been applied, and
:meth:`CompactedTopicReader.catch_up` waits for everything written before its call.

With a ``checkpoint`` (a :class:`shared.topic_state_store.TopicStateStore`) the holder's
state is on disk with the positions it was read to: reading resumes there, and after
each fetch the positions are committed with the records that fetch applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.backoff import RetryPolicy, retry
from shared.kafka import topic_partitions
from shared.topic_state_store import Position

log = logging.getLogger(__name__)

# A failed fetch is retried until it works: aiokafka reconnects meanwhile.
FETCH_RETRY = RetryPolicy(base_s=0.5, max_s=5.0)


class Checkpoint(Protocol):
    """Where a holder's state and the positions it was read up to are kept together."""

    def positions(self) -> dict[tuple[str, int], Position]: ...

    def commit(self, positions: Mapping[tuple[str, int], Position] | None = None) -> None: ...

    def wipe(self) -> None: ...


def record_fingerprint(rec: ConsumerRecord) -> int:
    """What tells one record from another at the same offset (a topic recreated)."""
    return zlib.crc32(b"%d\x00%b\x00%b" % (rec.timestamp, rec.key or b"", rec.value or b""))


class CompactedTopicReader:
    """Applies every record of ``topics`` (or of ``partitions``) to ``apply``.

    Reading starts at the beginning, or at the first record at or after ``since_ms``
    (a time), or at the end (``from_end``: only what is written from now on). With
    ``follow`` the reader keeps tailing after :attr:`ready`, reading what arrived every
    ``poll_ms``; without it, it stops and closes its consumer once caught up.

    With ``checkpoint``, reading starts at the stored positions when they are of the same
    partitions and each partition still holds the last record read from it, or a later
    one where compaction dropped it (else the topic was recreated: the checkpoint is
    wiped and reading starts at the beginning); :attr:`resumed` says which happened.
    """

    def __init__(
        self,
        bootstrap: str,
        apply: Callable[[ConsumerRecord], None],
        *,
        topics: Sequence[str] = (),
        partitions: Sequence[TopicPartition] = (),
        since_ms: int | None = None,
        from_end: bool = False,
        follow: bool = True,
        poll_ms: int = 100,
        client_id: str = "compacted-topic-reader",
        fetch_max_wait_ms: int = 500,
        checkpoint: Checkpoint | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._apply = apply
        self._topics = tuple(topics)
        self._tps = list(partitions)
        self._since_ms = since_ms
        self._from_end = from_end
        self._follow = follow
        self._poll_s = poll_ms / 1000
        self._client_id = client_id
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._last: dict[TopicPartition, tuple[int, int]] = {}  # offset, fingerprint
        self._reading = asyncio.Lock()  # one getmany at a time: catch-ups and the tail
        self._task: asyncio.Task[None] | None = None
        self._checkpoint = checkpoint
        self.ready = asyncio.Event()
        self.records = 0  # applied so far
        self.resumed = False  # started from a checkpoint's stored positions

    @property
    def partitions(self) -> list[TopicPartition]:
        return list(self._tps)

    async def start(self, wait_s: float | None = None) -> None:
        """Position every partition and start reading in the background; then wait up to
        ``wait_s`` for :attr:`ready` (None: not at all). Not ready in time is logged, and
        reading goes on: callers serve what is known rather than nothing."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            client_id=self._client_id,
            fetch_max_wait_ms=self._fetch_max_wait_ms,
        )
        await consumer.start()
        self._consumer = consumer
        try:
            if not self._tps and self._topics:
                self._tps = await topic_partitions(self._bootstrap, *self._topics)
                missing = set(self._topics) - {tp.topic for tp in self._tps}
                if missing:
                    log.warning(
                        "topics not found: nothing to read from them (run ensure_topics first)",
                        extra={"topics": sorted(missing)},
                    )
            ends = await self._position(consumer)
        except BaseException:
            await self._close()
            raise
        self._task = asyncio.create_task(self._run(ends), name=f"{self._client_id}-reader")
        if wait_s is None:
            return
        try:
            await asyncio.wait_for(self.ready.wait(), wait_s)
        except TimeoutError:
            log.warning(
                "topic not read to its end in time; going on with what is read",
                extra={"client_id": self._client_id, "wait_s": wait_s},
            )

    async def _position(self, consumer: AIOKafkaConsumer) -> dict[TopicPartition, int]:
        """Seek every partition to where reading starts; returns the ends to reach."""
        if not self._tps:
            return {}
        consumer.assign(self._tps)
        await self._seek_start(consumer, self._tps)
        return await consumer.end_offsets(self._tps)

    async def _seek_start(self, consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> None:
        if self._from_end:
            await consumer.seek_to_end(*tps)
        elif self._since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, self._since_ms))
            for tp in tps:
                at = found.get(tp)
                if at is None:  # nothing that recent
                    await consumer.seek_to_end(tp)
                else:
                    consumer.seek(tp, at.offset)
        elif self._checkpoint is not None and await self._resume(consumer):
            self.resumed = True
        else:
            await consumer.seek_to_beginning(*tps)
        for tp in tps:
            self._positions[tp] = await consumer.position(tp)

    async def _resume(self, consumer: AIOKafkaConsumer) -> bool:
        """Seek to the checkpoint's positions if they belong to these partitions' logs;
        otherwise wipe it (the caller reads from the beginning)."""
        assert self._checkpoint is not None
        stored = self._checkpoint.positions()
        by_tp = {tp: stored.get((tp.topic, tp.partition)) for tp in self._tps}
        usable = bool(stored) and len(stored) == len(self._tps) and None not in by_tp.values()
        for tp, at in by_tp.items():
            if not usable:
                break
            assert at is not None
            usable = await self._same_log(consumer, tp, at)
        if not usable:
            if stored:
                log.warning(
                    "stored positions do not match the topics; reading them again from the start",
                    extra={"client_id": self._client_id, "topics": sorted(self._topics)},
                )
            self._checkpoint.wipe()
            return False
        for tp, at in by_tp.items():
            assert at is not None
            consumer.seek(tp, at.next_offset)
            if at.last_offset >= 0:
                self._last[tp] = (at.last_offset, at.last_fingerprint)
        return True

    async def _same_log(self, consumer: AIOKafkaConsumer, tp: TopicPartition, at: Position) -> bool:
        """Whether ``tp`` still holds the last record read from it (or, compacted away,
        a later one), i.e. is the log it was read from and reaches the stored position.

        Fetched rather than compared with the end offset: Tansu reports an end one past
        the FIRST record of the partition's last batch, short of a position inside it.
        """
        if at.last_offset < 0:  # nothing read from it: a recreated one is read whole
            return True
        consumer.seek(tp, at.last_offset)
        for _ in range(10):
            got = (await consumer.getmany(tp, timeout_ms=200)).get(tp)
            if got:
                first = got[0]
                if first.offset == at.last_offset:
                    return record_fingerprint(first) == at.last_fingerprint
                # Later: compaction dropped it (a newer record of its key follows). Earlier:
                # the offset was past the log end and the consumer went back to its start.
                return first.offset > at.last_offset
        return False

    async def assign(self, partitions: Sequence[TopicPartition]) -> None:
        """Read ``partitions`` too, each from where reading starts (see the class); the
        next :meth:`catch_up` returns only once they are read to their end. Partitions
        already read are kept where they are."""
        consumer = self._consumer_started()
        new = [tp for tp in dict.fromkeys(partitions) if tp not in self._tps]
        if not new:
            return
        async with self._reading:
            self._tps.extend(new)
            try:
                self._reassign(consumer)
                await self._seek_start(consumer, new)
            except BaseException:  # left unassigned, so a later assign starts them afresh
                self._tps = [tp for tp in self._tps if tp not in new]
                for tp in new:
                    self._positions.pop(tp, None)
                self._reassign(consumer)
                raise

    async def revoke(self, partitions: Sequence[TopicPartition]) -> None:
        """Stop reading ``partitions``: no record of theirs is applied once this returns."""
        consumer = self._consumer_started()
        gone = set(partitions) & set(self._tps)
        if not gone:
            return
        async with self._reading:
            self._tps = [tp for tp in self._tps if tp not in gone]
            for tp in gone:
                self._positions.pop(tp, None)
            self._reassign(consumer)

    def _reassign(self, consumer: AIOKafkaConsumer) -> None:
        """Give the consumer the current partitions. A new assignment forgets every
        position (and drops what was fetched for it), so the kept ones are put back."""
        if not self._tps:
            consumer.unsubscribe()
            return
        consumer.assign(self._tps)
        for tp in self._tps:
            if tp in self._positions:
                consumer.seek(tp, self._positions[tp])

    async def catch_up(self, timeout_s: float | None = 30.0) -> None:
        """Return once every record written before this call has been applied (None: no
        time limit; a timed-out catch-up keeps what it read, the next goes on from there)."""
        consumer = self._consumer
        assert consumer is not None, "start() first"
        if not self._tps:
            return
        ends = await consumer.end_offsets(list(self._tps))
        async with self._reading:
            await asyncio.wait_for(self._read_until(ends), timeout_s)

    def _reached(self, ends: dict[TopicPartition, int]) -> bool:
        # A partition revoked meanwhile is no longer waited for.
        return all(
            self._positions.get(tp, 0) >= end for tp, end in ends.items() if tp in self._positions
        )

    async def _read_until(self, ends: dict[TopicPartition, int]) -> None:
        while not self._reached(ends):
            await self._read(timeout_ms=100)
            # Positions from the consumer, not from the last record: they also move past
            # control records and compacted gaps, and idle partitions report their end.
            for tp, end in ends.items():
                if self._positions.get(tp, 0) < end:
                    with contextlib.suppress(Exception):
                        self._positions[tp] = await self._consumer_started().position(tp)
        self._commit()

    async def _read(self, timeout_ms: int) -> None:
        # Tansu: the end offset it reports is one past the FIRST record of a partition's
        # last batch, so a position past that end does not prove the batch was applied.
        # No max_records: each getmany hands out whole fetched responses (whole batches),
        # so the rest of that batch is applied in the same read that reaches the end.
        if not self._tps:  # nothing assigned (yet): nothing to fetch
            return
        batches = await self._consumer_started().getmany(timeout_ms=timeout_ms)
        for tp, records in batches.items():
            for rec in records:
                self._apply(rec)
            self.records += len(records)
            if records:
                last = records[-1]
                self._positions[tp] = max(self._positions.get(tp, 0), last.offset + 1)
                if self._checkpoint is not None:
                    self._last[tp] = (last.offset, record_fingerprint(last))
        if batches:
            self._commit()

    def _commit(self) -> None:
        """The records applied so far and the positions they were read to, together (no
        await since they were applied: nothing else wrote meanwhile)."""
        if self._checkpoint is not None:
            self._checkpoint.commit(
                {
                    (tp.topic, tp.partition): Position(at, *self._last.get(tp, (-1, 0)))
                    for tp, at in self._positions.items()
                }
            )

    def _consumer_started(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "start() first"
        return self._consumer

    async def _run(self, ends: dict[TopicPartition, int]) -> None:
        async def replay(_: int) -> None:
            async with self._reading:
                await self._read_until(ends)

        async def tail(_: int) -> None:
            async with self._reading:
                await self._read(timeout_ms=0)

        # A broker hiccup while replaying or tailing: aiokafka reconnects; retried until
        # it works (a reader that gave up would leave its holder stale for good).
        await retry(replay, FETCH_RETRY, on=Exception, on_retry=self._fetch_failed("replay"))
        if not self._follow:
            await self._close()
            self.ready.set()
            return
        self.ready.set()
        while True:
            await asyncio.sleep(self._poll_s)
            await retry(tail, FETCH_RETRY, on=Exception, on_retry=self._fetch_failed("tail"))

    def _fetch_failed(self, what: str) -> Callable[[Exception, int, float], None]:
        def log_it(exc: Exception, attempt: int, delay_s: float) -> None:
            log.warning(
                "%s fetch failed (attempt %d); retrying in %.1f s",
                what,
                attempt,
                delay_s,
                exc_info=exc,
                extra={"client_id": self._client_id},
            )

        return log_it

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._close()

    async def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


async def replay_topic(bootstrap: str, topic: str, apply: Callable[[ConsumerRecord], None]) -> int:
    """Feed every record currently in ``topic`` to ``apply`` once; returns the count."""
    reader = CompactedTopicReader(
        bootstrap, apply, topics=[topic], follow=False, client_id="replay-topic"
    )
    try:
        await reader.start()
        await reader.ready.wait()
    finally:
        await reader.stop()
    return reader.records
