"""States addressed by partition in faust's memory store: the key -> partition map faust
uses to drop a revoked partition stays complete, and a changelog replay applies puts and
tombstones in order. The sweeper that looks at every state for expiry, a slice at a time."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from faust.stores.memory import Store as MemoryStore
from rocksdict import Rdict

from consolidator.faust_adapter import PartitionedStates
from consolidator.state_store import StateSweeper


def _states() -> tuple[PartitionedStates, MemoryStore]:
    store = MemoryStore(
        "memory://", app=None, table=SimpleNamespace(name="t"), key_type=bytes, value_type=bytes
    )
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
    applied = states.apply_changelog(
        2,
        [
            rec(key=b"a", value=b"1"),
            rec(key=b"b", value=b"1"),
            rec(key=b"a", value=None),
            rec(key=None, value=b"x"),
            rec(key=b"b", value=b"2"),
        ],
    )
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


def test_memory_sweeper_sees_every_state_of_its_partitions_slice_by_slice_then_again() -> None:
    states, _ = _states()
    for n in range(10):
        states.put(f"k{n}".encode(), n % 3, b"v")
    sweeper = StateSweeper(states)
    seen = [sweeper.next_slice({0, 1}, 4) for _ in range(3)]  # 10 keys: 4 + 4 + 2
    keys = [k for part in seen for k, _, _ in part]
    assert sorted(keys) == sorted(f"k{n}".encode() for n in range(10) if n % 3 in (0, 1))
    assert all(p in (0, 1) for part in seen for _, p, _ in part)
    states.delete(b"k0", 0)
    again = [k for _ in range(3) for k, _, _ in sweeper.next_slice({0, 1}, 4)]
    assert b"k0" not in again and b"k1" in again  # a new round, from a new snapshot


class _DiskStore:
    """The two things the sweeper uses of faust's rocksdb store, on real rocksdict dbs."""

    offset_key = b"__faust\0offset__"

    def __init__(self, root: Path) -> None:
        self.root, self.dbs = root, {}

    def _db_for_partition(self, partition: int) -> Rdict:
        if partition not in self.dbs:
            self.dbs[partition] = Rdict(str(self.root / f"p{partition}"))
        return self.dbs[partition]


def test_disk_sweeper_walks_each_partition_with_a_cursor_and_skips_the_offset_key(
    tmp_path: Path,
) -> None:
    disk = _DiskStore(tmp_path)
    for n in range(7):
        disk._db_for_partition(n % 2)[f"k{n}".encode()] = b"v"
    disk._db_for_partition(0)[disk.offset_key] = b"42"
    sweeper = StateSweeper(PartitionedStates(SimpleNamespace(data=disk)))
    got = [sweeper.next_slice({0, 1}, 3) for _ in range(4)]
    flat = [(k, p) for part in got for k, p, _ in part]
    assert sorted(flat) == sorted((f"k{n}".encode(), n % 2) for n in range(7))
    assert all(len(part) <= 3 for part in got)
    assert [k for k, _, _ in sweeper.next_slice({0, 1}, 10)] == [b"k0", b"k2", b"k4", b"k6"]
    for db in disk.dbs.values():
        db.close()
