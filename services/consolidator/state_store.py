"""The walk over every stored conversation state, a slice at a time, for expiry.

The store itself, addressed by partition, is faust's: reached only through
:class:`consolidator.faust_adapter.PartitionedStates`.
"""

from __future__ import annotations

from consolidator.faust_adapter import PartitionedStates


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
        if self._states.in_memory:
            return self._memory_slice(partitions, limit)
        return self._disk_slice(sorted(partitions), limit)

    def _memory_slice(self, partitions: set[int], limit: int) -> list[tuple[bytes, int, bytes]]:
        if self._pos >= len(self._keys):
            # A snapshot: the dict changes between slices, so no iterator survives them.
            self._keys, self._pos = self._states.memory_keys(), 0
        keys = self._keys[self._pos : self._pos + limit]
        self._pos += len(keys)
        out = []
        entry = self._states.memory_entry
        for key in keys:
            raw, partition = entry(key)
            if raw is not None and partition is not None and partition in partitions:
                out.append((key, partition, raw))
        return out

    def _disk_slice(self, partitions: list[int], limit: int) -> list[tuple[bytes, int, bytes]]:
        self._turn %= len(partitions)
        partition = partitions[self._turn]
        out: list[tuple[bytes, int, bytes]] = []
        for key, raw in self._states.partition_items(partition, self._cursor.get(partition)):
            out.append((key, partition, raw))
            if len(out) >= limit:
                self._cursor[partition] = key
                return out
        # This partition is done for the round: the next call starts the next one.
        self._cursor.pop(partition, None)
        self._turn += 1
        return out
