"""Which offsets of a hole-free partition the worker has not been handed yet.

``chat.events`` is neither compacted nor written in transactions, so within an
assignment the records of a partition must reach the batch handler at
consecutive offsets from the group's committed offset on. A forward jump means
the records in between were skipped (a seek during a partition hand-over can do
that); the handler reads those itself before going on, so the offset it commits
never passes a record it has not handled. Going backwards (a redelivery after a
seek) is harmless: every step of the consolidation is idempotent.
"""

from __future__ import annotations


class OffsetContinuity:
    """Next expected offset per partition."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def reset(self, expected: dict[int, int]) -> None:
        """Start a new assignment: ``partition -> first offset that must be handled``."""
        self._next = dict(expected)

    def missing_before(self, partition: int, offset: int) -> tuple[int, int] | None:
        """Record ``offset`` as handed over; the ``[start, offset)`` range skipped before it."""
        expected = self._next.get(partition)
        if expected is None or offset >= expected:
            self._next[partition] = offset + 1
        if expected is not None and offset > expected:
            return expected, offset
        return None

    def expected(self, partition: int) -> int | None:
        return self._next.get(partition)
