"""Ledgers per partition, the pure parts: where a ledger record goes, when a replica may
read only its partitions, and the books kept one per ledger partition."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailer.outcome_ledger import Attempt, Entry, Seen, keep_done
from shared.idempotency_ledger import LedgerBooks, ledger_partition, reads_per_partition
from shared.topics import CHAT_DELIVERIES, CHAT_REPLIES, MAIL_DIGESTS, MAIL_NOTICES, MAIL_OUTCOMES

NOW_MS = 1_764_070_000_000
DAY_MS = 24 * 3600 * 1000


@given(ledger_partitions=st.integers(1, 64), data=st.data())
def test_a_ledger_record_goes_to_the_partition_numbered_like_the_record_it_guards(
    ledger_partitions: int, data: st.DataObject
) -> None:
    guarded = data.draw(st.integers(0, ledger_partitions - 1))
    assert ledger_partition(guarded, ledger_partitions) == guarded


@given(guarded=st.integers(0, 255), ledger_partitions=st.integers(1, 64))
def test_a_ledger_record_always_lands_on_a_partition_the_ledger_has(
    guarded: int, ledger_partitions: int
) -> None:
    assert 0 <= ledger_partition(guarded, ledger_partitions) < ledger_partitions


def test_the_shipped_ledgers_have_a_partition_for_every_input_partition() -> None:
    # Otherwise every replica reads the whole ledger (and warns at start).
    assert reads_per_partition(
        MAIL_OUTCOMES.partitions, [MAIL_DIGESTS.partitions, MAIL_NOTICES.partitions], False
    )
    assert reads_per_partition(CHAT_DELIVERIES.partitions, [CHAT_REPLIES.partitions], False)


def test_a_ledger_with_fewer_partitions_than_an_input_topic_is_read_whole() -> None:
    assert not reads_per_partition(4, [4, 8], False)
    assert reads_per_partition(8, [4, 8], False)


def test_read_all_or_no_input_topic_means_the_whole_ledger() -> None:
    assert not reads_per_partition(8, [8], True)
    assert not reads_per_partition(8, [], False)


def books() -> LedgerBooks[str]:
    held: LedgerBooks[str] = LedgerBooks(DAY_MS)
    for partition in (0, 1):
        held.hold(partition)
    return held


def test_a_dropped_partition_takes_its_keys_and_only_them() -> None:
    held = books()
    held.note("a", "done", 0, NOW_MS)
    held.note("b", "done", 1, NOW_MS)
    held.drop(0)
    assert held.get("a") is None and held.get("b") == "done"
    assert held.held == {1} and len(held) == 1


def test_a_record_for_a_partition_not_held_is_not_kept() -> None:
    held = books()
    held.note("elsewhere", "done", 5, NOW_MS)
    held.note("unplaced", "done", None, NOW_MS)
    assert held.get("elsewhere") is None and held.get("unplaced") is None and len(held) == 0


def test_expired_keys_are_reported_with_the_partition_they_were_read_from() -> None:
    held = books()
    held.note("old-0", "done", 0, NOW_MS - 2 * DAY_MS)
    held.note("old-1", "done", 1, NOW_MS - 2 * DAY_MS)
    held.note("new-1", "done", 1, NOW_MS)
    assert held.expire(NOW_MS) == {0: ["old-0"], 1: ["old-1"]}
    assert held.sizes() == {0: 0, 1: 1}


def test_a_key_on_two_partitions_merges_as_if_read_in_turn() -> None:
    # Read-all during the upgrade: an old record on the key's partition, a new one on the
    # digest's. A final outcome on either wins over an attempt on the other.
    for attempted_on, done_on in ((0, 1), (1, 0)):
        held: LedgerBooks[Entry] = LedgerBooks(DAY_MS, keep_done)
        held.hold(0)
        held.hold(1)
        held.note("dg", Attempt(NOW_MS), attempted_on, NOW_MS)
        held.note("dg", Seen.DONE, done_on, NOW_MS)
        assert held.get("dg") is Seen.DONE


def test_forgetting_a_key_forgets_it_on_every_partition() -> None:
    held = books()
    held.note("marker", "x", 0, NOW_MS)
    held.note("marker", "x", 1, NOW_MS)
    held.forget("marker")
    assert held.get("marker") is None
