"""The deadline index pops only what is due, per partition, and rebuilds from stored headers."""

from __future__ import annotations

from consolidator.deadline_index import DeadlineIndex


def test_pop_due_returns_only_entries_at_or_before_now_of_that_partition() -> None:
    index = DeadlineIndex()
    index.push(0, 300, b"c")
    index.push(0, 100, b"a")
    index.push(1, 50, b"other-partition")
    index.push(0, 200, b"b")
    assert index.pop_due(0, 200) == [b"a", b"b"]
    assert index.pop_due(0, 250) == []
    assert index.next_due(0) == 300
    assert len(index) == 2


def test_rebuild_keeps_only_pending_entries_of_active_partitions() -> None:
    index = DeadlineIndex()
    index.push(7, 1, b"stale")
    count = index.rebuild([(0, 10, b"a"), (0, 0, b"idle"), (2, 5, b"standby")], {0})
    assert count == 1
    assert index.pop_due(0, 10**12) == [b"a"]
    assert index.pop_due(7, 10**12) == [] and index.pop_due(2, 10**12) == []
