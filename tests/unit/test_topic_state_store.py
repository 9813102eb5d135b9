"""The disk store state holders keep with the topic positions they were read to (rocksdict):
written, reopened and read back; records on disk only together with their positions."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.admin_directory import AdminDirectory
from shared.events import ShopSettings, ShopUser, UserRole, UserStatus
from shared.topic_state_store import Position, TopicStateStore

ROOT = Path(__file__).resolve().parents[2]


def test_records_and_offsets_written_together_are_read_back_after_reopening(
    tmp_path: Path,
) -> None:
    store = TopicStateStore(str(tmp_path / "db"))
    store.put(b"a1", b"one")
    store.put(b"a2", b"two")
    store.commit({("admin.users", 0): Position(2, 1, 77), ("admin.users", 1): Position(0)})
    store.put(b"b1", b"three")
    store.delete(b"a1")
    store.commit({("admin.users", 1): Position(1, 0, 78)})
    store.close()

    again = TopicStateStore(str(tmp_path / "db"))
    assert list(again.scan(b"")) == [(b"a2", b"two"), (b"b1", b"three")]
    assert again.positions() == {
        ("admin.users", 0): Position(2, 1, 77),
        ("admin.users", 1): Position(1, 0, 78),
    }
    again.close()


def test_records_not_committed_are_not_on_disk_and_leave_the_offsets_alone(
    tmp_path: Path,
) -> None:
    store = TopicStateStore(str(tmp_path / "db"))
    store.put(b"a1", b"one")
    store.commit({("t", 0): Position(1)})
    store.put(b"a2", b"two")  # applied, its fetch not committed yet
    assert store.get(b"a2") == b"two"  # already seen by reads
    store.close()

    again = TopicStateStore(str(tmp_path / "db"))
    assert again.get(b"a2") is None and again.positions() == {("t", 0): Position(1)}
    again.close()


_WRITER = textwrap.dedent(
    """
    import sys
    from shared.topic_state_store import Position, TopicStateStore
    store = TopicStateStore(sys.argv[1])
    n = 0
    while True:
        for _ in range(50):
            store.put(b"k%09d" % n, b"v" * 100)
            n += 1
        store.commit({("t", 0): Position(n)})
        if n == 5000:
            print("going", flush=True)
    """
)


def test_a_store_killed_mid_write_holds_exactly_the_records_its_offsets_cover(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "db")
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, path], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "going"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    store = TopicStateStore(path)
    held = sum(1 for _ in store.scan(b"k"))
    assert held >= 5000 and store.positions() == {("t", 0): Position(held)}
    store.close()


def test_wipe_forgets_records_and_offsets(tmp_path: Path) -> None:
    store = TopicStateStore(str(tmp_path / "db"))
    store.put(b"a", b"1")
    store.commit({("t", 0): Position(1)})
    store.wipe()
    assert list(store.scan(b"")) == [] and store.positions() == {}
    store.close()


def test_a_temporary_store_is_removed_at_close() -> None:
    store = TopicStateStore()
    store.put(b"a", b"1")
    store.commit()
    path = store.path
    store.close()
    assert not path.exists()


_KEYS = st.sampled_from([b"a", b"a\x00x", b"ab", b"b", b"b\x00", b"b\x00y", b"bb", b"c"])
_OPS = st.lists(
    st.tuples(st.sampled_from(["put", "delete", "commit"]), _KEYS, st.binary(max_size=3)),
    max_size=30,
)


@settings(max_examples=40, deadline=None)
@given(ops=_OPS, prefix=st.sampled_from([b"", b"a", b"b", b"b\x00"]), after=_KEYS | st.just(b""))
def test_scan_is_the_sorted_prefix_range_of_committed_and_pending_writes(
    ops: list[tuple[str, bytes, bytes]], prefix: bytes, after: bytes
) -> None:
    store = TopicStateStore()
    model: dict[bytes, bytes] = {}
    try:
        for op, key, value in ops:
            if op == "put":
                store.put(key, value)
                model[key] = value
            elif op == "delete":
                store.delete(key)
                model.pop(key, None)
            else:
                store.commit()
        expected = sorted(
            (k, v) for k, v in model.items() if k.startswith(prefix) and (not after or k > after)
        )
        assert list(store.scan(prefix, after)) == expected
        assert all(store.get(k) == model.get(k) for _, k, _ in ops)
    finally:
        store.close()


def _user(shop: str, email: str, role: UserRole) -> ShopUser:
    return ShopUser(
        shop_id=shop,
        email=email,
        role=role,
        status=UserStatus.ACTIVE,
        invited_at_ms=1,
        updated_at_ms=1,
    )


def test_the_directory_reopened_from_its_path_serves_users_settings_and_the_listing(
    tmp_path: Path,
) -> None:
    directory = AdminDirectory(TopicStateStore(str(tmp_path / "dir")))
    for shop in ("s2", "s1", "s3"):
        directory.put_user(_user(shop, f"main@{shop}.example", UserRole.MAIN_ACCOUNT))
    directory.put_user(_user("s1", "agent@s1.example", UserRole.CS_AGENT))
    directory.put_settings(ShopSettings(shop_id="s1", shop_name="One", updated_at_ms=5))
    directory.drop_user("s3", "main@s3.example", at_ms=9)
    directory.close()

    again = AdminDirectory(TopicStateStore(str(tmp_path / "dir")))
    assert [u.email for u in again.users_of("s1")] == ["agent@s1.example", "main@s1.example"]
    assert again.shop_ids() == ["s1", "s2"] and again.shop_ids("s1", 5) == ["s2"]
    assert again.shop_ids(limit=1) == ["s1"] and not again.shop_exists("s3")
    found = again.settings("s1")
    assert found is not None and found.shop_name == "One"
    again.close()
