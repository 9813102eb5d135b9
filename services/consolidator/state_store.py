"""Conversation states in faust's table store, addressed by partition explicitly.

Faust's disk store (``rocksdb://``) keeps one database per partition and picks
it from the "current event" of the stream being iterated. The consolidator
handles whole batches outside faust's per-event stream, so there is no current
event: every access here names its partition. The memory store keeps one dict
for all partitions plus a key -> partition map, by which faust drops a revoked
partition's keys; it is kept complete here too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from faust.stores.memory import Store as MemoryStore
from faust.types import TP


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
        gone = [key for key, raw in store.data.items()
                if raw is None or partition_of(raw) in (partition, None)]
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

    def persisted_offset(self, tp: TP) -> int | None:
        """Changelog offset up to which a disk store holds the changelog (memory: None)."""
        offset: int | None = self._store.persisted_offset(tp)
        return offset

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        self._store.set_persisted_offset(tp, offset)


class StateSweeper:
    """Walks every held state of the given partitions a slice at a time, round and round,
    so that looking at all of them (for expiry) never stalls one batch."""

    def __init__(self, states: PartitionedStates) -> None:
        self._states = states
        self._keys: list[bytes] = []  # memory store: this round's key snapshot
        self._pos = 0
        self._cursor: dict[int, bytes] = {}  # disk store: last key seen per partition
        self._turn = 0  # disk store: index into the sorted partitions

    def next_slice(self, partitions: set[int], limit: int) -> list[tuple[bytes, int, bytes]]:
        """Up to ``limit`` (key, partition, raw) of ``partitions``; the next call goes on."""
        if not partitions or limit <= 0:
            return []
        store = self._states._store
        if isinstance(store, MemoryStore):
            return self._memory_slice(store, partitions, limit)
        return self._disk_slice(store, sorted(partitions), limit)

    def _memory_slice(self, store: MemoryStore, partitions: set[int],
                      limit: int) -> list[tuple[bytes, int, bytes]]:
        if self._pos >= len(self._keys):
            # A snapshot: the dict changes between slices, so no iterator survives them.
            self._keys, self._pos = list(store.data.keys()), 0
        keys = self._keys[self._pos:self._pos + limit]
        self._pos += len(keys)
        out = []
        data, key_partition = store.data, store._key_partition
        for key in keys:
            raw = data.get(key)
            partition = key_partition.get(key)
            if raw is not None and partition in partitions:
                out.append((key, partition, raw))
        return out

    def _disk_slice(self, store: Any, partitions: list[int],
                    limit: int) -> list[tuple[bytes, int, bytes]]:
        self._turn %= len(partitions)
        partition = partitions[self._turn]
        cursor = self._cursor.get(partition)
        out: list[tuple[bytes, int, bytes]] = []
        db = store._db_for_partition(partition)
        for key, raw in db.items(from_key=cursor) if cursor is not None else db.items():
            if key == cursor or key == store.offset_key:
                continue  # from_key is inclusive
            out.append((key, partition, raw))
            if len(out) >= limit:
                self._cursor[partition] = key
                return out
        # This partition is done for the round: the next call starts the next one.
        self._cursor.pop(partition, None)
        self._turn += 1
        return out
