"""The batch engine: ticks release what is due, one write per conversation per batch,
and replays after simulated crashes never lose or duplicate a buyer message."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from consolidator.consolidation import ChatRecord, Consolidation
from consolidator.deadline_index import DeadlineIndex
from consolidator.debounce import state_header
from shared.events import ChatContent, ChatEvent, ChatEventKind, ShopSettings
from shared.notification_window import WindowPolicy

POLICY = WindowPolicy(mailbox_s=10, helpdesk_s=5, max_wait_s=30, min_override_s=1)


class Harness:
    """The engine over a dict store, with a changelog-like history for crash simulation."""

    def __init__(self, shops: dict[str, ShopSettings] | None = None) -> None:
        self.shops = shops or {}
        self.store: dict[bytes, bytes] = {}
        self.index = DeadlineIndex()
        self.engine = self._engine()
        self.digests: list = []
        self.dropped = 0

    def _engine(self) -> Consolidation:
        return Consolidation(
            POLICY,
            lambda s: self.shops.get(s, ShopSettings(s)),
            lambda key, partition: self.store.get(key),
            self.index,
        )

    def run(self, records: list[ChatRecord]) -> dict[bytes, bytes | None]:
        result = self.engine.apply_batch(records)
        self.digests.extend(d for _, _, d in result.digests)
        self.dropped += result.dropped_alerts_off
        writes = {k: v for k, (_, v) in result.writes.items()}
        for key, value in writes.items():
            if value is None:
                self.store.pop(key, None)
            else:
                self.store[key] = value
        return writes

    def restart(self) -> None:
        self.index = DeadlineIndex()
        self.index.rebuild(
            (state_header(v)[2], state_header(v)[1], k) for k, v in self.store.items()
        )
        self.engine = self._engine()


def key(conv: str) -> bytes:
    return f"s1:{conv}".encode()


def buyer(conv: str, mid: str, sent_ms: int, received_ms: int, seq: int = 0) -> ChatRecord:
    ev = ChatEvent(
        kind=ChatEventKind.BUYER_MESSAGE,
        shop_id="s1",
        conversation_id=conv,
        message_id=mid,
        sent_at_ms=sent_ms,
        seq=seq,
        buyer_name="Ana",
        content=ChatContent(text=mid),
        received_at_ms=received_ms,
    )
    return ChatRecord(key(conv), 0, ev)


def seller(conv: str, sent_ms: int, kind: str = ChatEventKind.SELLER_MESSAGE) -> ChatRecord:
    ev = ChatEvent(
        kind=kind,
        shop_id="s1",
        conversation_id=conv,
        message_id=f"x{sent_ms}",
        sent_at_ms=sent_ms,
        received_at_ms=sent_ms,
    )
    return ChatRecord(key(conv), 0, ev)


def tick(at_ms: int, partition: int = 0) -> ChatRecord:
    ev = ChatEvent(
        kind=ChatEventKind.TICK,
        shop_id="",
        conversation_id="",
        partition_hint=partition,
        received_at_ms=at_ms,
    )
    return ChatRecord(b"tick", partition, ev)


def test_tick_releases_only_due_conversations_as_one_digest_each() -> None:
    h = Harness()
    h.run(
        [
            buyer("a", "a1", 1000, 1000),
            buyer("a", "a2", 2000, 2000),
            buyer("b", "b1", 5000, 5000),
            tick(11_999),
        ]
    )
    assert h.digests == []
    h.run([tick(12_000)])
    assert [[m.message_id for m in d.messages] for d in h.digests] == [["a1", "a2"]]
    h.run([tick(15_000)])
    assert [d.conversation_id for d in h.digests] == ["a", "b"]
    assert h.store[key("a")] and state_header(h.store[key("a")])[1] == 0


def test_one_state_write_per_conversation_per_batch() -> None:
    h = Harness()
    writes = h.run([buyer("a", f"a{i}", i, i) for i in range(50)] + [buyer("b", "b1", 1, 1)])
    assert set(writes) == {key("a"), key("b")}


def test_helpdesk_shop_gets_the_shorter_window_and_alerts_off_drops_at_the_deadline() -> None:
    h = Harness({"s1": ShopSettings("s1", destination_kind="zendesk")})
    h.run([buyer("a", "a1", 0, 0), tick(5_000)])
    assert len(h.digests) == 1
    h.run([buyer("a", "a2", 6_000, 6_000)])
    h.shops["s1"] = ShopSettings("s1", alerts_enabled=False)  # turned off before the deadline
    h.run([tick(60_000)])
    assert len(h.digests) == 1 and h.dropped == 1
    h.run([buyer("a", "a3", 61_000, 61_000), tick(120_000)])
    assert len(h.digests) == 1 and h.dropped == 2


def test_window_change_applies_from_the_next_deadline() -> None:
    h = Harness()
    h.run([buyer("a", "a1", 0, 0)])  # mailbox: due at 10 s
    h.shops["s1"] = ShopSettings("s1", window_override_s=2)
    h.run([tick(5_000)])
    assert h.digests == []  # the deadline already set stays
    h.run([tick(10_000), buyer("a", "a2", 20_000, 20_000), tick(22_000)])
    assert [len(d.messages) for d in h.digests] == [1, 1]


def test_destination_kind_change_applies_to_the_next_message_of_the_same_engine() -> None:
    h = Harness()
    h.run([buyer("a", "a1", 0, 0), tick(10_000)])  # mailbox: 10 s
    h.shops["s1"] = ShopSettings("s1", destination_kind="gorgias")
    h.run([buyer("b", "b1", 20_000, 20_000), tick(25_000)])  # helpdesk now: 5 s
    assert [[m.message_id for m in d.messages] for d in h.digests] == [["a1"], ["b1"]]


def test_seller_read_before_deadline_means_no_email() -> None:
    h = Harness()
    h.run([buyer("a", "a1", 1000, 1000), seller("a", 1500, ChatEventKind.READ), tick(60_000)])
    assert h.digests == []
    assert state_header(h.store[key("a")])[1] == 0


def test_buyer_who_keeps_typing_still_reaches_the_seller_at_max_wait() -> None:
    h = Harness()
    for t in range(0, 40_000, 2_000):
        h.run([buyer("a", f"a{t}", t, t), tick(t)])
    assert [len(d.messages) for d in h.digests] == [16]  # everything up to 30 s
    assert h.digests[0].due_at_ms == 30_000


# -- property: crashes at random points never lose or duplicate a buyer message ---------------

events_strategy = st.lists(
    st.tuples(
        st.sampled_from(["buyer", "buyer", "buyer", "dup", "seller", "tick"]),
        st.integers(0, 3),
        st.integers(0, 4_000),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=250, deadline=None)
@given(events_strategy, st.randoms(use_true_random=False), st.integers(0, 4))
def test_every_buyer_message_ends_in_exactly_one_digest_or_is_covered_by_the_seller(
    steps: list[tuple[str, int, int]], rnd: random.Random, crashes: int
) -> None:
    # Build one stream (what sits on chat.events), in order, with clocks moving forward.
    stream: list[ChatRecord] = []
    clock = 10_000  # platform times are positive
    sent: dict[str, tuple[str, int, int]] = {}
    seller_marks: dict[str, list[int]] = {}
    for n, (kind, conv_n, advance) in enumerate(steps):
        clock += advance
        conv = f"c{conv_n}"
        if kind == "buyer" or (kind == "dup" and not sent):
            mid = f"m{n}"
            sent_ms = clock - rnd.randint(0, 3_000)  # platform time, possibly out of order
            sent[mid] = (conv, sent_ms, n)
            stream.append(buyer(conv, mid, sent_ms, clock, seq=n))
        elif kind == "dup":
            mid = rnd.choice(sorted(sent))
            c, sent_ms, seq = sent[mid]
            stream.append(buyer(c, mid, sent_ms, clock, seq=seq))
        elif kind == "seller":
            stream.append(seller(conv, clock))
            seller_marks.setdefault(conv, []).append(clock)
        else:
            stream.append(tick(clock))
    stream.append(tick(clock + 10**7))

    # Cut it into batches; crash at random batch boundaries: the store keeps, per key,
    # some state between the last commit and the crash; consumption resumes at the commit.
    h = Harness()
    history: list[tuple[int, dict[bytes, bytes | None]]] = []  # (end offset, writes)
    committed = 0
    position = 0
    crashes_left = crashes
    while position < len(stream):
        size = rnd.randint(1, 8)
        batch = stream[position : position + size]
        history.append((position + len(batch), h.run(batch)))
        position += len(batch)
        if rnd.random() < 0.3:
            committed = position
        if crashes_left and rnd.random() < 0.25:
            crashes_left -= 1
            rebuilt: dict[bytes, bytes] = {}
            for k in {k for _, w in history for k in w}:
                # this key's changelog survived up to some batch at or after the commit
                cut = rnd.randint(committed, position)
                value = None
                for end, writes in history:
                    if end <= cut and k in writes:
                        value = writes[k]
                if value is not None:
                    rebuilt[k] = value
            h.store = rebuilt
            h.restart()
            history = [(committed, {k: v for k, v in rebuilt.items()})]
            position = committed

    distinct = {d.digest_id: d for d in h.digests}
    in_digest: dict[str, str] = {}
    for d in distinct.values():
        ids = [m.message_id for m in d.messages]
        assert ids == [
            m.message_id
            for m in sorted(d.messages, key=lambda m: (m.sent_at_ms, m.seq, m.message_id))
        ]
        for mid in ids:
            assert mid not in in_digest, f"{mid} in two digests"
            in_digest[mid] = d.digest_id
    for mid, (conv, sent_ms, _) in sent.items():
        if mid not in in_digest:
            assert any(mark >= sent_ms for mark in seller_marks.get(conv, [])), f"{mid} lost"


def test_idle_states_expire_a_ttl_after_their_last_event_and_pending_ones_stay() -> None:
    h = Harness()
    h.run([buyer("a", "a1", 0, 0), tick(10_000)])  # a: emailed, idle, touched at 10 s
    h.run([buyer("b", "b1", 50_000, 50_000)])  # b: pending (due at 60 s)
    result = h.engine.apply_batch([tick(40_000)])
    h.engine.expire_idle([(k, 0, v) for k, v in h.store.items()], 40_000, 30_000, result)
    assert result.expired == 1 and result.writes[key("a")] == (0, None)
    assert key("b") not in result.writes


def test_expiry_skips_states_the_same_batch_writes() -> None:
    h = Harness()
    h.run([buyer("a", "a1", 0, 0), tick(10_000)])
    stale = dict(h.store)
    result = h.engine.apply_batch([seller("a", 99_000)])  # a touched again in this batch
    h.engine.expire_idle([(k, 0, v) for k, v in stale.items()], 99_000, 30_000, result)
    assert result.expired == 0 and result.writes[key("a")][1] is not None


def test_a_redelivery_within_the_ttl_is_still_dropped_and_after_it_starts_afresh() -> None:
    h = Harness()
    h.run([buyer("a", "a1", 0, 0), tick(10_000)])
    h.run([buyer("a", "a1", 0, 20_000), tick(40_000)])  # redelivered within the TTL
    assert len(h.digests) == 1
    result = h.engine.apply_batch([tick(41_000)])
    h.engine.expire_idle([(k, 0, v) for k, v in h.store.items()], 41_000, 30_000, result)
    h.store.pop(key("a"))  # what the tombstone does
    h.run([buyer("a", "a2", 50_000, 50_000), tick(60_000)])
    assert [d.previous_digest_ids for d in h.digests] == [(), ()]  # a new thread


def test_a_shop_never_onboarded_gets_no_digest_until_its_settings_turn_alerts_on() -> None:
    h = Harness()
    h.engine = Consolidation(
        POLICY, h.shops.get, lambda key, partition: h.store.get(key), h.index
    )  # no record: None, as ShopSettingsView.find answers
    result = h.engine.apply_batch([buyer("a", "a1", 0, 0), tick(60_000)])
    assert result.digests == [] and result.dropped_not_onboarded == 1
    h.shops["s1"] = ShopSettings("s1", alerts_enabled=True)
    h.run([buyer("a", "a2", 61_000, 61_000), tick(120_000)])
    assert [[m.message_id for m in d.messages] for d in h.digests] == [["a2"]]
