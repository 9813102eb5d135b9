"""Faust's late changelog writes stay off the partitions this worker owns.

Faust's recovery applies changelog records to the table's store from ONE buffer per
table, shared by active and standby partitions, and flushes it when it is full. On
Tansu (the end offset it reports is the first offset of a partition's last batch) the
records of an active partition's last batch arrive after recovery has ended and wait
in that buffer until standby records fill it, minutes after this worker read its
partitions to the fence and wrote newer states: applied then, they put older states
back (a conversation released already is pending again with no deadline entry, and
its next messages are never emailed). This drives the table the way faust's recovery
does, through ``table.apply_changelog_batch``, with the real table and memory store.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from consolidator.app import Consolidator
from consolidator.consolidator_settings import ConsolidatorSettings


def _changelog_event(key: bytes, value: bytes | None, partition: int, offset: int) -> object:
    # What faust's recovery buffers: an event whose message says where it was read.
    message = SimpleNamespace(key=key, value=value, partition=partition, offset=offset)
    return SimpleNamespace(key=key, value=value, message=message)


@pytest.fixture
def worker(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> Consolidator:
    cfg = ConsolidatorSettings(consolidator_data_dir=str(tmp_path))
    consolidator = Consolidator(cfg)
    # This worker holds chat.events 7 as active; 2 is another worker's (a standby here).
    monkeypatch.setattr(consolidator, "_active_partitions", lambda: {7})
    return consolidator


def test_a_late_changelog_flush_does_not_put_an_older_state_back(
    worker: Consolidator,
) -> None:
    key = b"shop-1:conv-604"
    worker.store.put(key, 7, b"released: nothing pending")  # written by this worker
    worker.states.apply_changelog_batch(
        [_changelog_event(key, b"pending: bm-604-1, due long ago", 7, 1210)]
    )
    assert worker.store.get(key, 7) == b"released: nothing pending"


def test_a_late_changelog_tombstone_does_not_delete_an_owned_state(
    worker: Consolidator,
) -> None:
    key = b"shop-1:conv-840"
    worker.store.put(key, 7, b"pending: bm-840-4")
    worker.states.apply_changelog_batch([_changelog_event(key, None, 7, 1300)])
    assert worker.store.get(key, 7) == b"pending: bm-840-4"


def test_only_other_workers_partitions_are_applied_from_the_changelog(worker: Consolidator) -> None:
    worker.states.apply_changelog_batch(
        [
            _changelog_event(b"shop-2:conv-1", b"other worker's state", 2, 5),
            _changelog_event(b"shop-1:conv-9", b"stale own state", 7, 6),
        ]
    )
    assert worker.store.get(b"shop-2:conv-1", 2) == b"other worker's state"
    assert worker.store.get(b"shop-1:conv-9", 7) is None
