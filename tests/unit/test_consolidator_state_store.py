"""States addressed by partition in faust's memory store: the key -> partition map faust
uses to drop a revoked partition stays complete, and a changelog replay applies puts and
tombstones in order."""

from __future__ import annotations

from types import SimpleNamespace

from faust.stores.memory import Store as MemoryStore

from consolidator.state_store import PartitionedStates


def _states() -> tuple[PartitionedStates, MemoryStore]:
    store = MemoryStore("memory://", app=None, table=SimpleNamespace(name="t"),
                        key_type=bytes, value_type=bytes)
    return PartitionedStates(SimpleNamespace(data=store)), store


def test_put_get_delete_keep_the_key_partition_map_complete() -> None:
    states, store = _states()
    states.put(b"s:1", 3, b"state-1")
    states.put(b"s:2", 5, b"state-2")
    assert states.get(b"s:1", 3) == b"state-1"
    assert store._key_partition == {b"s:1": 3, b"s:2": 5}
    states.delete(b"s:1", 3)
    assert states.get(b"s:1", 3) is None
    assert store._key_partition == {b"s:2": 5}
    assert states.in_memory and states.persisted_offset(None) is None  # type: ignore[arg-type]


def test_changelog_replay_applies_puts_and_tombstones_in_order() -> None:
    states, _ = _states()
    rec = SimpleNamespace
    applied = states.apply_changelog(2, [rec(key=b"a", value=b"1"), rec(key=b"b", value=b"1"),
                                         rec(key=b"a", value=None), rec(key=None, value=b"x"),
                                         rec(key=b"b", value=b"2")])
    assert applied == 5
    assert dict(states.items([2])) == {b"b": b"2"}


def test_forget_partition_drops_only_that_partitions_and_unreadable_states() -> None:
    states, store = _states()
    for key, partition in ((b"a", 1), (b"b", 2), (b"c", 1)):
        states.put(key, partition, bytes([partition]))
    store.data[b"junk"] = b""
    states.forget_partition(1, lambda raw: raw[0] if raw else None)
    assert dict(states.items([1, 2])) == {b"b": b"\x02"}
    assert store._key_partition == {b"b": 2}
