"""Every use of faust-streaming's and aiokafka's non-public names, in one place.

The consolidator keeps faust for the group, the assignor, the table with its
changelog and store, recovery, the producer and the worker, and goes around it on
the hot path. What that takes of faust's internals is here and only here, so an
upgrade is checked in one module: faust-streaming is pinned below 0.16 in
``pyproject.toml`` and ``tests/unit/test_faust_adapter.py`` fails, naming the
missing attribute or changed signature, when the pinned internals change.

* :class:`BatchingConsumer` (faust's aiokafka consumer): the records of ONE topic
  (``chat.events``) skip faust's per-record ``Message``/``Event``/stream-queue/ack
  machinery. :meth:`BatchingConsumer.getmany` passes each fetched ``{tp: [records]}``
  of that topic to the app's batch handler, inside faust's fetcher task, and yields
  the other topics' records (the table's changelog during recovery) as faust does.
  The handler commits the batch's offsets itself (:meth:`commit_batch`) once its
  effects are durable (possibly in the background: ``batch_flush`` waits for that),
  and a rebalance waits for the batch in flight before partitions are given up
  (:meth:`wait_empty`), as faust waits for its streams.
* :class:`BatchingApp`: a faust App whose transport builds that consumer.
* :func:`raw_bytes_table`: a table whose keys and values (changelog and recovery
  included) are raw bytes, which faust's constructor cannot express.
* :func:`aiokafka_producer`: the aiokafka producer inside faust's, to build record
  batches on it directly.
* :func:`keep_changelog_off`: faust's recovery applies changelog records to the store
  in buffers, one per table for active and standby partitions alike, flushed when full:
  records read past a partition's reported end (Tansu reports the first offset of its
  last batch) wait there until standby records fill the buffer, and then overwrite what
  the worker wrote since. The worker reads its active partitions' changelogs itself
  (to a fence), so faust's writes to them are dropped.
* :class:`PartitionedStates`: a table's store addressed by partition explicitly.
  Faust's disk store (``rocksdb://``) keeps one database per partition and picks it
  from the "current event" of the stream being iterated; batches handled outside
  faust's stream have no current event. The memory store keeps one dict for all
  partitions plus a key -> partition map, by which faust drops a revoked
  partition's keys; it is kept complete here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
)
from typing import Any, Protocol, cast

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from faust.stores.memory import Store as MemoryStore
from faust.tables.table import Table
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

BatchHandler = Callable[[Mapping[TP, list[ConsumerRecord]]], Awaitable[None]]
BatchFlush = Callable[[], Awaitable[None]]


class BatchingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer; the app's ``batch_topic`` goes to its ``batch_handler``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._batch_idle = asyncio.Event()
        self._batch_idle.set()

    async def getmany(
        self,
        timeout: float,  # noqa: ASYNC109 - faust's signature
    ) -> AsyncIterator[tuple[TP, Message]]:
        app = self.app
        topic: str = app.batch_topic  # type: ignore[attr-defined]
        handler: BatchHandler | None = app.batch_handler  # type: ignore[attr-defined]
        fetched_in = app.consumer_generation_id
        records, active = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        generation = app.consumer_generation_id  # as faust, for the other topics
        if not self.flow_active:
            # What faust does here: a rebalance stopped the flow after this fetch;
            # seek back so nothing fetched now is skipped once the flow resumes.
            await self.perform_seek()
            return
        batch: dict[TP, list[ConsumerRecord]] = {}
        others: dict[TP, list[ConsumerRecord]] = {}
        for tp, recs in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            (batch if tp.topic == topic else others)[tp] = recs
        if batch:
            if handler is None:
                raise RuntimeError(f"records of {topic} fetched but no batch handler is set")
            if app.consumer_generation_id != fetched_in:
                # A rebalance completed while this fetch was out: these partitions may
                # be another worker's now. Not handled, not committed: whoever holds
                # them reads them again from the committed offset. (A rebalance that
                # begins later waits for the handler: see wait_empty.)
                return
            for tp in batch:
                app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            self._batch_idle.clear()
            try:
                await handler(batch)
            except Exception as exc:
                # Nothing of this batch is committed, so a restart handles it again; a
                # fetcher left running without its handler would silently stop consuming.
                self.log.exception("chat batch handler failed: %r", exc)
                await app.crash(exc)
                return
            finally:
                self._batch_idle.set()
        for tp, message in self.scheduler.iterate(others):
            if not self.flow_active or app.consumer_generation_id != generation:
                break
            app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, self._to_message(tp, message)

    async def commit_batch(self, offsets: Mapping[TP, int]) -> bool:
        """Commit ``{tp: next offset}`` for handled batch records; False when the group
        has moved on (a rebalance): the new owner then handles them again."""
        done = bool(offsets) and await self._commit(offsets)
        if done:
            self._committed_offset.update(offsets)
            self.app.monitor.on_tp_commit(dict(offsets))
        return done

    async def wait_empty(self) -> None:
        """Before partitions are given up (rebalance, shutdown): finish the batch in flight,
        including what the handler left to complete in the background (``batch_flush``)."""
        await self._batch_idle.wait()
        flush: BatchFlush | None = self.app.batch_flush  # type: ignore[attr-defined]
        if flush is not None:
            await flush()
        await super().wait_empty()


class BatchingTransport(aiokafka_driver.Transport):
    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A faust App whose consumer hands ``batch_topic`` to ``batch_handler`` in batches."""

    batch_topic: str = ""
    batch_handler: BatchHandler | None = None
    batch_flush: BatchFlush | None = None

    def _new_transport(self) -> BatchingTransport:
        return BatchingTransport(self.conf.broker_consumer, self)


def raw_bytes_table(app: faust.App, name: str, partitions: int) -> Table:
    """A table of raw bytes both ways, its changelog and recovery included: the state
    has its own compact encoding, and faust would otherwise pick "json" for ``bytes``."""
    # A Table, not just the TableT that app.Table is typed to return: its serializers are set.
    table = cast(
        Table,
        app.Table(name, default=None, key_type=bytes, value_type=bytes, partitions=partitions),
    )
    table.key_serializer = table.value_serializer = "raw"
    return table


def aiokafka_producer(app: faust.App) -> AIOKafkaProducer:
    """The aiokafka producer inside faust's: record batches are built on it directly."""
    producer: AIOKafkaProducer = app.producer._ensure_producer()  # type: ignore[attr-defined]
    return producer


def keep_changelog_off(table: Table, partitions: Callable[[], Collection[int]]) -> None:
    """Faust applies the table's changelog records only for partitions not in
    ``partitions()`` (asked when the records are applied, not when they were read)."""
    apply = table.apply_changelog_batch

    def apply_others(batch: Iterable[Any]) -> None:
        owned = partitions()
        apply([event for event in batch if event.message.partition not in owned])

    # An instance attribute: faust's recovery calls table.apply_changelog_batch(buffer).
    table.apply_changelog_batch = apply_others  # type: ignore[method-assign]


class ChangelogRecord(Protocol):
    key: bytes | None
    value: bytes | None


class PartitionedStates:
    """Get, put and delete raw state bytes of one partition of a faust table's store."""

    def __init__(self, table: Any) -> None:
        self._table = table  # faust creates the store lazily: look it up on use

    @property
    def _store(self) -> Any:
        return self._table.data

    @property
    def in_memory(self) -> bool:
        return isinstance(self._store, MemoryStore)

    def get(self, key: bytes, partition: int) -> bytes | None:
        store = self._store
        if isinstance(store, MemoryStore):
            return store.data.get(key)
        value: bytes | None = store._db_for_partition(partition).get(key)
        return value

    def put(self, key: bytes, partition: int, value: bytes) -> None:
        store = self._store
        if isinstance(store, MemoryStore):
            store.data[key] = value
            store._key_partition[key] = partition
        else:
            store._db_for_partition(partition).put(key, value)
            store._key_index[key] = partition

    def delete(self, key: bytes, partition: int) -> None:
        store = self._store
        if isinstance(store, MemoryStore):
            store.data.pop(key, None)
            store._key_partition.pop(key, None)
        else:
            store._db_for_partition(partition).delete(key)

    def apply_changelog(self, partition: int, records: Iterable[ChangelogRecord]) -> int:
        """Apply changelog records (tombstones delete) in order; how many."""
        applied = 0
        for rec in records:
            applied += 1
            if rec.key is None:
                continue
            if rec.value is None:
                self.delete(rec.key, partition)
            else:
                self.put(rec.key, partition, rec.value)
        return applied

    def forget_partition(self, partition: int, partition_of: Any) -> None:
        """Memory store only: drop what is held for ``partition`` before its changelog is
        read whole. ``partition_of(raw)`` names a value's partition (None: unreadable,
        dropped too); stale values of a partition held before may linger otherwise."""
        store = self._store
        gone = [
            key
            for key, raw in store.data.items()
            if raw is None or partition_of(raw) in (partition, None)
        ]
        for key in gone:
            del store.data[key]
            store._key_partition.pop(key, None)

    def items(self, partitions: Iterable[int]) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, raw state) held; for a disk store, of ``partitions`` only."""
        store = self._store
        if isinstance(store, MemoryStore):
            yield from store.data.items()
            return
        # A disk store iterates only the databases it has opened so far, which right
        # after a restart can be none: open each partition's.
        for partition in sorted(partitions):
            yield from store._visible_items(store._db_for_partition(partition))

    def memory_keys(self) -> list[bytes]:
        """Memory store: a snapshot of every key held."""
        return list(self._store.data.keys())

    def memory_entry(self, key: bytes) -> tuple[bytes | None, int | None]:
        """Memory store: the raw state held for ``key`` and its partition."""
        store = self._store
        return store.data.get(key), store._key_partition.get(key)

    def partition_items(
        self, partition: int, after: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Disk store: (key, raw state) of one partition in key order, from the key after
        ``after``; the store's own offset record is left out."""
        store = self._store
        db = store._db_for_partition(partition)
        for key, raw in db.items(from_key=after) if after is not None else db.items():
            if key == after or key == store.offset_key:
                continue  # from_key is inclusive
            yield key, raw

    def persisted_offset(self, tp: TP) -> int | None:
        """Changelog offset up to which a disk store holds the changelog (memory: None)."""
        offset: int | None = self._store.persisted_offset(tp)
        return offset

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self._store.set_persisted_offset(tp, offset)
