"""The debounce state machine: deadlines, unread semantics, ordering, dedup, encoding."""

from __future__ import annotations

from consolidator.debounce import (
    ConversationState,
    add_buyer_message,
    cover_by_seller,
    decode_state,
    digest_id_for,
    drop_pending,
    encode_state,
    idle_expired,
    release_digest,
    state_header,
)
from shared.events import ChatContent, ChatEvent, ChatEventKind, ContentKind, ShopSettings
from shared.notification_window import Windows

MIN = 60_000
SHOP = ShopSettings(shop_id="s1", destination_email="seller@shop.test")


def buyer(mid: str, sent_s: int, received_ms: int, seq: int = 0, text: str = "hi") -> ChatEvent:
    return ChatEvent(
        kind=ChatEventKind.BUYER_MESSAGE,
        shop_id="s1",
        conversation_id="c1",
        message_id=mid,
        sent_at_ms=sent_s * 1000,
        seq=seq,
        buyer_id="b1",
        buyer_name="Ana",
        content=ChatContent(text=text),
        received_at_ms=received_ms,
    )


def test_deadline_runs_from_the_buyers_last_message() -> None:
    st = ConversationState(partition=3)
    w = Windows(quiet_ms=15 * MIN, max_wait_ms=60 * MIN)
    add_buyer_message(st, buyer("m1", 100, 1_000_000), w)
    assert st.due_at_ms == 1_000_000 + 15 * MIN
    add_buyer_message(st, buyer("m2", 200, 1_000_000 + 10 * MIN), w)
    assert st.due_at_ms == 1_000_000 + 25 * MIN
    assert release_digest(st, SHOP, "c1", 1_000_000 + 24 * MIN) is None
    digest = release_digest(st, SHOP, "c1", 1_000_000 + 25 * MIN)
    assert digest is not None and [m.message_id for m in digest.messages] == ["m1", "m2"]


def test_a_buyer_who_keeps_typing_is_released_at_max_wait() -> None:
    st = ConversationState()
    w = Windows(quiet_ms=15 * MIN, max_wait_ms=60 * MIN)
    for i in range(20):
        add_buyer_message(st, buyer(f"m{i}", i * 300, i * 5 * MIN), w)
    assert st.due_at_ms == 60 * MIN
    digest = release_digest(st, SHOP, "c1", 60 * MIN)
    assert digest is not None and len(digest.messages) == 20


def test_redelivered_message_counts_once() -> None:
    st = ConversationState()
    w = Windows(MIN, 60 * MIN)
    assert add_buyer_message(st, buyer("m1", 1, 1000), w)
    assert not add_buyer_message(st, buyer("m1", 1, 5000), w)
    digest = release_digest(st, SHOP, "c1", 10**9)
    assert digest is not None
    assert not add_buyer_message(st, buyer("m1", 1, 9000), w)  # after the digest too
    assert not st.pending


def test_digest_is_ordered_by_platform_time_and_sequence_not_arrival() -> None:
    st = ConversationState()
    w = Windows(MIN, 60 * MIN)
    add_buyer_message(st, buyer("late", 10, 3000, seq=3), w)
    add_buyer_message(st, buyer("b", 5, 4000, seq=2), w)
    add_buyer_message(st, buyer("a", 5, 5000, seq=1), w)
    digest = release_digest(st, SHOP, "c1", 10**9)
    assert digest is not None and [m.message_id for m in digest.messages] == ["a", "b", "late"]


def test_seller_message_removes_what_it_covers_and_nothing_left_means_no_email() -> None:
    st = ConversationState()
    w = Windows(MIN, 60 * MIN)
    add_buyer_message(st, buyer("m1", 10, 1000, seq=1), w)
    add_buyer_message(st, buyer("m2", 20, 2000, seq=2), w)
    assert cover_by_seller(st, 15_000) == 1
    assert [m.message_id for m in st.pending] == ["m2"]
    assert cover_by_seller(st, 20_000) == 1
    assert st.pending == [] and st.due_at_ms == 0
    assert release_digest(st, SHOP, "c1", 10**9) is None


def test_same_second_seller_message_covers_only_earlier_sequence() -> None:
    st = ConversationState()
    w = Windows(MIN, 60 * MIN)
    add_buyer_message(st, buyer("m1", 10, 1000, seq=1), w)
    add_buyer_message(st, buyer("m3", 10, 1000, seq=3), w)
    cover_by_seller(st, 10_000, until_seq=2)
    assert [m.message_id for m in st.pending] == ["m3"]


def test_late_message_already_read_is_not_emailed() -> None:
    st = ConversationState()
    cover_by_seller(st, 50_000)
    assert not add_buyer_message(st, buyer("old", 40, 60_000), Windows(MIN, 60 * MIN))


def test_late_message_after_its_digest_goes_into_the_next_one() -> None:
    st = ConversationState()
    w = Windows(MIN, 60 * MIN)
    add_buyer_message(st, buyer("m2", 20, 1000), w)
    first = release_digest(st, SHOP, "c1", 10**9)
    add_buyer_message(st, buyer("m1", 10, 10**9 + 5), w)
    second = release_digest(st, SHOP, "c1", 10**10)
    assert first is not None and second is not None
    assert [m.message_id for m in second.messages] == ["m1"]
    assert second.previous_digest_ids == (first.digest_id,)


def test_alerts_off_drop_forgets_pending_and_ignores_their_redelivery() -> None:
    st = ConversationState()
    w = Windows(MIN, 60 * MIN)
    add_buyer_message(st, buyer("m1", 1, 1000), w)
    assert drop_pending(st) == 1
    assert st.due_at_ms == 0
    assert not add_buyer_message(st, buyer("m1", 1, 1000), w)


def test_digest_id_depends_only_on_the_message_ids() -> None:
    assert digest_id_for("s", "c", ["a", "b"]) == digest_id_for("s", "c", ["b", "a"])
    assert digest_id_for("s", "c", ["a"]) != digest_id_for("s", "c", ["a", "b"])
    assert digest_id_for("s", "c", ["a"]) != digest_id_for("s", "d", ["a"])


def test_state_round_trips_through_compact_bytes_with_deadline_in_header() -> None:
    st = ConversationState(partition=5)
    w = Windows(MIN, 60 * MIN)
    add_buyer_message(st, buyer("m1", 1, 1000, text="héllo 👋"), w)
    pic = ChatEvent(
        kind=ChatEventKind.BUYER_MESSAGE,
        shop_id="s1",
        conversation_id="c1",
        message_id="m2",
        sent_at_ms=2000,
        received_at_ms=2000,
        content=ChatContent(kind=ContentKind.IMAGE, url="https://x/y.png"),
    )
    add_buyer_message(st, pic, w)
    cover_by_seller(st, 500)
    data = encode_state(st)
    assert decode_state(data) == st
    assert state_header(data)[1:] == (st.due_at_ms, 5)
    assert len(data) < 200  # compact: a one-text-message conversation is well under 1 KB


def test_idle_state_expires_a_ttl_after_its_last_touch_and_a_pending_one_never() -> None:
    idle = ConversationState(partition=1, emailed_ids=["m1"], touched_at_ms=10_000)
    assert decode_state(encode_state(idle)).touched_at_ms == 10_000
    raw = encode_state(idle)
    assert not idle_expired(raw, now_ms=10_000 + 5_000 - 1, ttl_ms=5_000)
    assert idle_expired(raw, now_ms=10_000 + 5_000, ttl_ms=5_000)
    pending = ConversationState(partition=1, touched_at_ms=0)
    add_buyer_message(pending, buyer("m2", 1, 1000), Windows(MIN, 60 * MIN))
    assert not idle_expired(encode_state(pending), now_ms=10**15, ttl_ms=1)


def test_format_1_states_are_still_read_and_expire_when_idle() -> None:
    import struct

    import orjson

    body = orjson.dumps(["b1", "Ana", 0, 0, 700, 3, [], ["m1"], ["d1"]])
    v1 = struct.pack(">Bqh", 1, 0, 4) + body
    st = decode_state(v1)
    assert (st.partition, st.emailed_ids, st.digest_ids, st.read_until_ms, st.touched_at_ms) == (
        4,
        ["m1"],
        ["d1"],
        700,
        0,
    )
    assert state_header(v1) == (1, 0, 4)
    assert idle_expired(v1, now_ms=1, ttl_ms=10**9)
    with_pending = struct.pack(">Bqh", 1, 99, 4) + body
    assert not idle_expired(with_pending, now_ms=10**15, ttl_ms=1)
