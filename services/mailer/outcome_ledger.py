"""What the mailer group has already done, from a live tail of ``mail.outcomes``.

``mail.outcomes`` is compacted and keyed by digest (or notice) id, while
``mail.digests`` is keyed by conversation, so the replica that owns a digest's
partition does not own its outcome's partition: every replica therefore reads
*all* outcome partitions, from the beginning, for as long as it runs.

Loading the set once at start is not enough: with two replicas and a rebalance,
replica B can be handed a partition whose last batch replica A sent after B
started. :meth:`OutcomeLedger.catch_up` closes that hole: before a batch is
handled, the ledger reads up to the outcome topic's end offsets *as of now*, so
every outcome a previous owner wrote before giving up the partition is known
(the digest consumer makes the previous owner finish and record its in-flight
batch before it lets a partition go).

The ledger reads when asked (each catch-up) and once every ``poll_ms`` in the
background, not continuously: a live tail fetched about once per outcome written
(two records per digest, mostly this process's own, which :meth:`record_done`
already knows), which cost ~0.2 ms of event-loop CPU per digest on the bench.
Between reads the consumer holds at most one fetched response per partition and
stops fetching, so a catch-up reads everything since the last in a few requests.

Two kinds of record share a key: ``attempting`` (written just before the SMTP
transaction) and the final outcome (``sent``/``failed``/``duplicate``), which
compaction keeps. An id seen only as ``attempting`` means a process died between
starting a send and recording it: the relay may or may not have the mail.

Bounded memory, bounded topic. An outcome is needed only while its digest can still
be handled: while the digest record is on ``mail.digests``, or can be emitted there
again. Digest ids are a function of the conversation's message ids, so a consolidator
replaying ``chat.events`` re-emits the same id. Kafka keeps a record at least
``retention.ms`` and, because only closed segments are deleted, up to
``retention.ms + segment.ms`` (7 days unless the topic sets it). So an outcome can be
asked for up to :data:`DEFAULT_RETENTION_MS` after it was written: the longest
``chat.events`` life plus the longest ``mail.digests`` life (28 days with today's
topics). The ledger forgets an id that long after its newest record (the record's
Kafka timestamp; ``BRIDGE_MAILER_OUTCOME_RETENTION_DAYS`` overrides), so memory holds
at most that window of ids, and by default writes a tombstone for it, so compaction
drops the key from ``mail.outcomes`` too (after ``delete.retention.ms``). A tombstone
read back means "forgotten" and the id is dropped from memory. Safety rests on the
arithmetic above: a tombstone is written only when no record that could replay the
digest can still exist, so it never makes a replayable digest look unsent; a shorter
retention setting trades that for memory (a replay older than it is sent again,
never lost). Every replica expires ids at the same moments and writes its own
tombstone (no coordination: with R replicas an id gets R tombstones, which compact
to none); an id expired while a tombstone write failed stays on the topic and is
tombstoned again when a replica next replays it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import Enum

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from mailer.mailer_metrics import LEDGER_EXPIRED, LEDGER_IDS
from shared.kafka import topic_partitions
from shared.topics import CHAT_EVENTS, DAY_MS, MAIL_DIGESTS

log = logging.getLogger(__name__)

ATTEMPTING = "attempting"

# Kafka's default log.roll.ms: a record lives until its segment is closed and then
# older than retention.ms, so up to retention.ms + this.
KAFKA_DEFAULT_SEGMENT_MS = 7 * DAY_MS
# Expiry granularity: ids are forgotten in hourly buckets.
_BUCKET_MS = 3600 * 1000
# How long after its last record an outcome can still be asked for (module docstring).
DEFAULT_RETENTION_MS = (CHAT_EVENTS.retention_ms + KAFKA_DEFAULT_SEGMENT_MS
                        + MAIL_DIGESTS.retention_ms + KAFKA_DEFAULT_SEGMENT_MS)


# A catch-up waits for the fetch already in flight to the broker before its own can go;
# with Kafka's default (500 ms, the broker holding an empty fetch that long) that was
# most of a catch-up, once per batch. At 10 ms a catch-up takes ~4-6 ms on the bench;
# the price is an idle ledger polling its empty partitions ~100 times a second.
_FETCH_MAX_WAIT_MS = 10


class Seen(Enum):
    NOTHING = "nothing"
    ATTEMPTED = "attempted"  # a send started; whether the relay took it is unknown
    DONE = "done"  # a final outcome is recorded


class OutcomeLedger:
    """Digest ids with a recorded outcome, kept current by a background tail.

    ``retention_ms``: how long after its newest record an id is kept (module docstring).
    ``tombstones``: the producer that writes a tombstone for each forgotten id, or
    ``None`` to only forget it in memory. ``clock``: seconds since the epoch.
    """

    def __init__(self, bootstrap: str, topic: str, *, poll_ms: int = 1000,
                 retention_ms: int = DEFAULT_RETENTION_MS,
                 tombstones: AIOKafkaProducer | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._poll_ms = poll_ms
        self._retention_ms = retention_ms
        self._tombstones = tombstones
        self._clock = clock
        # id -> the expiry bucket (hour) of its newest record; each bucket lists the ids
        # touched in it (some since moved to a later bucket), so expiry visits only ids
        # that are due, whatever order the partitions were read in.
        self._done: dict[str, int] = {}
        self._attempted: dict[str, int] = {}
        self._buckets: dict[int, set[str]] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._tps: list[TopicPartition] = []
        self._positions: dict[TopicPartition, int] = {}
        self._reading = asyncio.Lock()  # one getmany at a time: catch-ups and the refresher
        self._task: asyncio.Task[None] | None = None

    def seen(self, item_id: str) -> Seen:
        if item_id in self._done:
            return Seen.DONE
        if item_id in self._attempted:
            return Seen.ATTEMPTED
        return Seen.NOTHING

    def record_done(self, item_id: str, at_ms: int | None = None) -> None:
        """Note an outcome this process has just written (no need to wait for the tail)."""
        self._touch(self._done, item_id, self._now_ms() if at_ms is None else at_ms)
        self._attempted.pop(item_id, None)

    def __len__(self) -> int:
        return len(self._done)

    def expire(self) -> list[str]:
        """Forget ids whose newest record is older than the retention; returns them.

        Exact to the bucket: an id is forgotten at most one bucket (an hour) after its
        time, never before it."""
        cutoff_bucket = (self._now_ms() - self._retention_ms) // _BUCKET_MS
        expired: list[str] = []
        for bucket in [b for b in self._buckets if b < cutoff_bucket]:
            for item_id in self._buckets.pop(bucket):
                for book in (self._done, self._attempted):
                    if book.get(item_id) == bucket:
                        del book[item_id]
                        expired.append(item_id)
        if expired:
            LEDGER_EXPIRED.inc(len(expired))
        LEDGER_IDS.set(len(self._done) + len(self._attempted))
        return expired

    def _touch(self, book: dict[str, int], item_id: str, at_ms: int) -> None:
        """Note a record of ``item_id`` at ``at_ms`` (an id never moves back in time)."""
        bucket = max(at_ms // _BUCKET_MS, book.get(item_id, 0))
        book[item_id] = bucket
        self._buckets.setdefault(bucket, set()).add(item_id)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def start(self) -> None:
        """Read every outcome recorded so far, then keep reading in the background."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self._bootstrap, group_id=None,
                                    enable_auto_commit=False, auto_offset_reset="earliest",
                                    isolation_level="read_committed",
                                    fetch_max_wait_ms=_FETCH_MAX_WAIT_MS)
        await consumer.start()
        self._consumer = consumer
        self._tps = await topic_partitions(self._bootstrap, self._topic)
        if not self._tps:
            raise RuntimeError(f"topic {self._topic} has no partitions; run ensure_topics first")
        consumer.assign(self._tps)
        await consumer.seek_to_beginning(*self._tps)
        self._positions = dict.fromkeys(self._tps, 0)
        await self.catch_up()
        self._task = asyncio.create_task(self._refresh(), name="outcome-ledger-refresh")

    async def catch_up(self, timeout_s: float = 30.0) -> None:
        """Return once every outcome written before this call has been applied."""
        assert self._consumer is not None, "start() first"
        if self._task is not None and self._task.done():
            self._task.result()  # surface a dead background reader
        ends = await self._consumer.end_offsets(self._tps)
        async with self._reading:
            await asyncio.wait_for(self._read_until(ends), timeout_s)
        await self._expire_and_tombstone()

    async def _read_until(self, ends: dict[TopicPartition, int]) -> None:
        while not all(self._positions[tp] >= end for tp, end in ends.items()):
            await self._read(timeout_ms=100)

    async def _read(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        batches = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in batches.values():
            for rec in records:
                self._apply(rec)
        # Positions from the consumer, not from the last record: they also move past
        # control records and compacted gaps, and idle partitions report their end.
        for tp in self._tps:
            with contextlib.suppress(Exception):
                self._positions[tp] = await self._consumer.position(tp)

    async def _refresh(self) -> None:
        """Between catch-ups, read what has arrived every ``poll_ms`` (and expire)."""
        while True:
            await asyncio.sleep(self._poll_ms / 1000)
            async with self._reading:
                await self._read(timeout_ms=0)
            await self._expire_and_tombstone()

    async def _expire_and_tombstone(self) -> None:
        expired = self.expire()
        if expired and self._tombstones is not None:
            await self._write_tombstones(expired)

    async def _write_tombstones(self, item_ids: list[str]) -> None:
        """Queue one tombstone per id; not awaited one by one (a failure only leaves
        the key on the topic, to be tombstoned again at the next replay)."""
        assert self._tombstones is not None
        for item_id in item_ids:
            try:
                sent = await self._tombstones.send(self._topic, None, key=item_id.encode())
            except Exception as exc:  # the broker is away: the next replay retries
                log.warning("cannot queue outcome tombstones", extra={"error": str(exc)})
                return
            sent.add_done_callback(_log_tombstone_failure)

    def _apply(self, rec: ConsumerRecord) -> None:
        if not rec.key:
            return
        item_id = rec.key.decode("utf-8", "replace")
        if rec.value is None:
            # A tombstone: some replica found this id past the retention (see above).
            self._done.pop(item_id, None)
            self._attempted.pop(item_id, None)
            return
        status = ""
        try:
            status = str(orjson.loads(rec.value).get("status", ""))
        except (orjson.JSONDecodeError, AttributeError):
            log.warning("unreadable outcome record", extra={"key": item_id})
        at_ms = rec.timestamp if rec.timestamp and rec.timestamp > 0 else self._now_ms()
        if status == ATTEMPTING:
            if item_id not in self._done:
                self._touch(self._attempted, item_id, at_ms)
        else:
            self.record_done(item_id, at_ms)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


def _log_tombstone_failure(sent: asyncio.Future[object]) -> None:
    if not sent.cancelled() and sent.exception() is not None:
        log.warning("outcome tombstone not written", extra={"error": str(sent.exception())})
