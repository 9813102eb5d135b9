"""One batch of ``chat.events`` applied to conversation states: the consolidator's pure core.

The consolidator hands over a batch of decoded records; :class:`Consolidation`
loads each touched conversation once, applies the events in stream order
(ticks included, so a tick sees exactly the messages before it), and returns
what to produce and what to store: ONE state write per touched conversation
per batch, however many events it had. No I/O here: loading goes through the
injected ``load`` callable, so this is unit-tested without Kafka and the
crash/replay reasoning is about plain functions:

* every decision uses times carried by the events (receipt time, platform
  time, tick time), so replaying the records after a crash from the last
  committed offset, over a state that may be ahead of that offset, decides the
  same again; every step is idempotent against a state that already holds it;
* the digest id comes from the message ids, so a re-released digest has the
  same id and the mailer drops it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from consolidator.deadline_index import DeadlineIndex
from consolidator.debounce import (
    ConversationState,
    StateFormatError,
    add_buyer_message,
    cover_by_seller,
    decode_state,
    drop_pending,
    encode_state,
    idle_expired,
    release_digest,
)
from shared.events import ChatEvent, ChatEventKind, Digest, ShopSettings
from shared.notification_window import WindowPolicy, Windows

SELLER_SIDE = frozenset(
    {ChatEventKind.SELLER_MESSAGE, ChatEventKind.READ, ChatEventKind.EMAIL_REPLY}
)


@dataclass(frozen=True, slots=True)
class ChatRecord:
    """A decoded ``chat.events`` record with where it came from."""

    key: bytes
    partition: int
    event: ChatEvent


@dataclass(slots=True)
class BatchResult:
    """What one batch decided: digests to produce first, then states to store."""

    digests: list[tuple[bytes, int, Digest]] = field(default_factory=list)  # key, partition
    writes: dict[bytes, tuple[int, bytes | None]] = field(default_factory=dict)  # None: delete
    pending_delta: int = 0
    held: int = 0
    duplicates: int = 0
    covered: int = 0
    dropped_alerts_off: int = 0
    dropped_not_onboarded: int = 0  # shops with no settings record: alerts are opt-in
    ticks: int = 0
    last_tick_ms: int = 0  # this worker's clock, as the batch's latest tick carried it
    expired: int = 0  # idle states dropped by expire_idle


class Consolidation:
    """Applies batches to conversation states and keeps the deadline index in step."""

    def __init__(
        self,
        policy: WindowPolicy,
        settings_for: Callable[[str], ShopSettings | None],
        load: Callable[[bytes, int], bytes | None],
        index: DeadlineIndex,
    ) -> None:
        """``settings_for`` answers None for a shop never onboarded: nothing is emailed
        for it until a manager turns its alerts on."""
        self.policy = policy
        self.settings_for = settings_for
        self.load = load
        self.index = index
        # Windows by (destination kind, override): a handful of distinct values, looked
        # up once each instead of per event (for_shop's enum lookup shows in profiles).
        self._windows: dict[tuple[str, int | None], Windows] = {}

    def windows_for(self, shop: ShopSettings) -> Windows:
        key = (shop.destination_kind, shop.window_override_s)
        windows = self._windows.get(key)
        if windows is None:
            if len(self._windows) >= 1024:
                self._windows.clear()
            windows = self._windows[key] = self.policy.for_shop(shop)
        return windows

    def apply_batch(self, records: Iterable[ChatRecord]) -> BatchResult:
        result = BatchResult()
        cache: dict[bytes, ConversationState] = {}
        dirty: set[bytes] = set()

        def state_of(key: bytes, partition: int) -> ConversationState:
            st = cache.get(key)
            if st is None:
                raw = self.load(key, partition)
                st = decode_state(raw) if raw is not None else ConversationState(partition)
                cache[key] = st
            return st

        for rec in records:
            ev = rec.event
            kind = ev.kind
            if kind == ChatEventKind.BUYER_MESSAGE:
                self._buyer_message(rec, state_of, dirty, result)
            elif kind in SELLER_SIDE:
                st = state_of(rec.key, rec.partition)
                was_pending = bool(st.pending)
                st.touched_at_ms = max(st.touched_at_ms, ev.received_at_ms)
                result.covered += cover_by_seller(st, ev.sent_at_ms or ev.received_at_ms, ev.seq)
                if was_pending and not st.pending:
                    result.pending_delta -= 1
                dirty.add(rec.key)
            elif kind == ChatEventKind.TICK:
                result.ticks += 1
                result.last_tick_ms = max(result.last_tick_ms, ev.received_at_ms)
                partition = ev.partition_hint if ev.partition_hint >= 0 else rec.partition
                self._release_due(partition, ev.received_at_ms, state_of, dirty, result)

        for key in dirty:
            st = cache[key]
            result.writes[key] = (st.partition, None if st.is_idle else encode_state(st))
        return result

    @staticmethod
    def expire_idle(
        candidates: Iterable[tuple[bytes, int, bytes]],
        now_ms: int,
        ttl_ms: int,
        result: BatchResult,
    ) -> None:
        """Delete the stored states among ``candidates`` (key, partition, raw) that are idle
        and untouched for ``ttl_ms`` at ``now_ms`` (a tick's time, so a replay decides
        the same); states this batch writes are current in ``result`` and skipped."""
        for key, partition, raw in candidates:
            if key in result.writes:
                continue
            try:
                expired = idle_expired(raw, now_ms, ttl_ms)
            except StateFormatError:
                continue  # replaced when next touched (see the consolidator's load)
            if expired:
                result.writes[key] = (partition, None)
                result.expired += 1

    def _buyer_message(
        self,
        rec: ChatRecord,
        state_of: Callable[[bytes, int], ConversationState],
        dirty: set[bytes],
        result: BatchResult,
    ) -> None:
        ev = rec.event
        shop = self.settings_for(ev.shop_id)
        if shop is None:
            result.dropped_not_onboarded += 1
            return
        if not shop.alerts_enabled:
            result.dropped_alerts_off += 1
            return
        st = state_of(rec.key, rec.partition)
        was_pending = bool(st.pending)
        due_before = st.due_at_ms
        if not add_buyer_message(st, ev, self.windows_for(shop)):
            result.duplicates += 1
            return
        result.held += 1
        st.touched_at_ms = max(st.touched_at_ms, ev.received_at_ms)
        dirty.add(rec.key)
        if not was_pending:
            result.pending_delta += 1
        if due_before == 0 or st.due_at_ms < due_before:
            self.index.push(st.partition, st.due_at_ms, rec.key)

    def _release_due(
        self,
        partition: int,
        now_ms: int,
        state_of: Callable[[bytes, int], ConversationState],
        dirty: set[bytes],
        result: BatchResult,
    ) -> None:
        for key in self.index.pop_due(partition, now_ms):
            st = state_of(key, partition)
            if not st.pending:
                continue  # covered by the seller or released already: a stale entry
            if st.due_at_ms > now_ms:
                self.index.push(partition, st.due_at_ms, key)  # the buyer kept typing
                continue
            shop_id, _, conversation_id = key.decode().partition(":")
            shop = self.settings_for(shop_id)
            dirty.add(key)
            st.touched_at_ms = max(st.touched_at_ms, now_ms)
            result.pending_delta -= 1
            if shop is None:
                result.dropped_not_onboarded += drop_pending(st)
                continue
            if not shop.alerts_enabled:
                result.dropped_alerts_off += drop_pending(st)
                continue
            digest = release_digest(st, shop, conversation_id, now_ms)
            if digest is not None:
                result.digests.append((key, partition, digest))
