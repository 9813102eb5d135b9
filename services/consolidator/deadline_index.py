"""Time-ordered index of pending conversations: per-partition min-heaps of (deadline, key).

A tick pops only the entries that are due, so its cost follows the number of
digests released, not the number of pending conversations. The index is
memory only: it is rebuilt from the state store (each value's fixed header
holds the deadline) after every rebalance or restart.

Invariant kept by :mod:`consolidator.consolidation`: every pending conversation
has at least one entry at or before its deadline. When a deadline moves later
(the buyer kept typing) nothing is pushed; the old entry pops, the caller sees
the deadline is later and pushes it again. That keeps about one entry per
pending conversation however chatty the buyer is.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable


class DeadlineIndex:
    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, bytes]]] = {}

    def push(self, partition: int, due_ms: int, key: bytes) -> None:
        heapq.heappush(self._heaps.setdefault(partition, []), (due_ms, key))

    def pop_due(self, partition: int, now_ms: int) -> list[bytes]:
        """Keys whose indexed deadline is at or before ``now_ms`` (may be stale: check state)."""
        heap = self._heaps.get(partition)
        keys: list[bytes] = []
        while heap and heap[0][0] <= now_ms:
            keys.append(heapq.heappop(heap)[1])
        return keys

    def next_due(self, partition: int) -> int | None:
        heap = self._heaps.get(partition)
        return heap[0][0] if heap else None

    def rebuild(
        self, entries: Iterable[tuple[int, int, bytes]], partitions: set[int] | None = None
    ) -> int:
        """Replace everything with (partition, due_ms, key) entries; returns how many."""
        heaps: dict[int, list[tuple[int, bytes]]] = {}
        for partition, due, key in entries:
            if due and (partitions is None or partition in partitions):
                heaps.setdefault(partition, []).append((due, key))
        for heap in heaps.values():
            heapq.heapify(heap)
        self._heaps = heaps
        return sum(len(h) for h in heaps.values())

    def drop_partitions(self, keep: set[int]) -> None:
        for p in [p for p in self._heaps if p not in keep]:
            del self._heaps[p]

    def __len__(self) -> int:
        return sum(len(h) for h in self._heaps.values())
