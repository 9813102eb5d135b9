"""The idempotency ledger's pure parts: what a record does to the book, expiry in hourly
buckets, tombstones read back, and the retention a replay needs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout.fanout_settings import FanoutSettings
from shared.idempotency_ledger import BUCKET_MS, IdempotencyLedger, LedgerBook
from shared.topics import (
    CHAT_REPLIES,
    DAY_MS,
    KAFKA_DEFAULT_SEGMENT_MS,
    MAIL_INBOUND,
    MAIL_INBOUND_RETRY,
    TopicSpec,
    replay_window_ms,
)

NOW_MS = 1_764_070_000_000
HOUR = 3600 * 1000


def record(key: str | None, value: bytes | None, at_ms: int = NOW_MS) -> SimpleNamespace:
    """A ledger record as the tail sees it; ``value=None`` is a tombstone."""
    return SimpleNamespace(
        key=None if key is None else key.encode(), partition=0, value=value, timestamp=at_ms
    )


def ledger(
    retention_ms: int = 10 * DAY_MS, now_ms: list[int] | None = None
) -> IdempotencyLedger[str]:
    clock = now_ms if now_ms is not None else [NOW_MS]
    held: IdempotencyLedger[str] = IdempotencyLedger(
        "127.0.0.1:1",
        "test.ledger",
        lambda value: value.decode() if value != b"?" else None,
        retention_ms=retention_ms,
        clock=lambda: clock[0] / 1000,
    )
    held.books.hold(0)  # what assigning partition 0 does
    return held


def test_a_record_read_from_the_topic_is_an_entry_at_its_own_time() -> None:
    now = [NOW_MS]
    book = ledger(retention_ms=DAY_MS, now_ms=now)
    book._apply(record("k", b"done", at_ms=NOW_MS - DAY_MS - 2 * HOUR))
    assert book.get("k") == "done"
    assert book.expire() == {0: ["k"]}  # its Kafka timestamp, not the time it was read


def test_a_tombstone_read_back_forgets_the_key() -> None:
    book = ledger()
    book._apply(record("k", b"done"))
    book._apply(record("k", None))
    assert book.get("k") is None and len(book) == 0


def test_records_without_a_key_or_that_cannot_be_read_leave_the_book_as_it_was() -> None:
    book = ledger()
    book._apply(record("k", b"done"))
    book._apply(record(None, b"other"))
    book._apply(record("k", b"?"))
    assert book.get("k") == "done" and len(book) == 1


def test_merge_decides_what_a_new_record_of_a_known_key_leaves() -> None:
    book: LedgerBook[str] = LedgerBook(DAY_MS, merge=lambda old, new: old or new)
    book.note("k", "first", NOW_MS)
    book.note("k", "second", NOW_MS)
    assert book.get("k") == "first"


def test_a_key_is_forgotten_a_retention_after_its_newest_record_only() -> None:
    book: LedgerBook[str] = LedgerBook(10 * DAY_MS)
    book.note("old", "x", NOW_MS - 9 * DAY_MS)
    book.note("renewed", "x", NOW_MS - 9 * DAY_MS)
    book.note("renewed", "x", NOW_MS)
    book.note("renewed", "x", NOW_MS - 9 * DAY_MS)  # an older record: no effect
    assert book.expire(NOW_MS) == []
    assert book.expire(NOW_MS + DAY_MS + HOUR) == ["old"]
    assert book.get("renewed") == "x"


def test_expiry_is_exact_whatever_order_the_partitions_were_read_in() -> None:
    book: LedgerBook[str] = LedgerBook(10 * DAY_MS)
    book.note("a", "x", NOW_MS - 5 * DAY_MS)
    book.note("b", "x", NOW_MS - 11 * DAY_MS)  # older, read later
    assert book.expire(NOW_MS) == ["b"]
    assert book.get("a") == "x"


def test_a_key_forgotten_by_its_writer_is_not_reported_expired_later() -> None:
    book: LedgerBook[str] = LedgerBook(DAY_MS)
    book.note("marker", "x", NOW_MS)
    book.forget("marker")
    assert book.expire(NOW_MS + 2 * DAY_MS) == []


@pytest.mark.parametrize("age_ms", [DAY_MS - 1, DAY_MS, DAY_MS + HOUR - 1, DAY_MS + HOUR])
def test_at_the_edges_a_key_goes_no_sooner_than_the_retention_and_within_the_hour_after(
    age_ms: int,
) -> None:
    book: LedgerBook[str] = LedgerBook(DAY_MS)
    book.note("k", "x", NOW_MS)
    expired = book.expire(NOW_MS + age_ms)
    if age_ms < DAY_MS:
        assert expired == [] and book.get("k") == "x"
    assert book.expire(NOW_MS + DAY_MS + HOUR) == ([] if expired else ["k"])
    assert book.get("k") is None


@given(written=st.integers(0, 10 * DAY_MS), age=st.integers(0, 3 * DAY_MS))
def test_never_forgotten_before_the_retention_and_at_most_a_bucket_after(
    written: int, age: int
) -> None:
    book: LedgerBook[str] = LedgerBook(DAY_MS)
    book.note("k", "x", NOW_MS + written)
    now = NOW_MS + written + age
    expired = book.expire(now) == ["k"]
    if age < DAY_MS:
        assert not expired
    if age >= DAY_MS + BUCKET_MS:
        assert expired


def test_replay_window_adds_each_source_topics_longest_life() -> None:
    seven_days = TopicSpec("a", 1)
    hourly = TopicSpec("b", 1, retention_ms=3 * DAY_MS, segment_ms=HOUR)
    assert replay_window_ms(seven_days) == 7 * DAY_MS + KAFKA_DEFAULT_SEGMENT_MS
    assert replay_window_ms(seven_days, hourly) == 14 * DAY_MS + 3 * DAY_MS + HOUR


def test_fanout_forgets_a_part_only_after_every_topic_that_can_replay_its_reply() -> None:
    # The parser re-parses mail.inbound (or its retry topic) into the same reply id.
    assert FanoutSettings().fanout_delivery_retention_days * DAY_MS == replay_window_ms(
        MAIL_INBOUND, MAIL_INBOUND_RETRY, CHAT_REPLIES
    )
