"""Consolidator: per-conversation debounce on faust-streaming, state in a changelog-backed table.

Story of one partition: buyer messages are held in the conversation's state;
ticks (this worker's clock, sent through ``chat.events`` itself so the table can
be changed from inside the stream) release every conversation whose deadline
passed as one ``Digest``. Deadlines sit in an in-memory heap per partition,
rebuilt from the table after a rebalance, so a tick never scans all
conversations.
"""

from __future__ import annotations

import heapq
import logging
import time

import faust
from faust.web import Request, Response, View

from shared.codec import DecodeError, decode, encode
from shared.config import get_settings
from shared.events import ChatEvent, ChatEventKind
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS, UP, render_metrics
from shared.settings_view import ShopSettingsView
from shared.topics import CHAT_EVENTS, MAIL_DIGESTS
from consolidator.consolidator_metrics import DIGESTS_EMITTED, DROPPED_ALERTS_OFF, PENDING
from consolidator.digest_state import (
    ConversationState,
    add_buyer_message,
    cover_by_seller,
    drop_pending,
    release_digest,
    windows_for,
)

SERVICE = "consolidator"
log = logging.getLogger(SERVICE)
cfg = get_settings()

app = faust.App(
    "bridge-consolidator",
    broker=[f"kafka://{h}" for h in cfg.kafka_bootstrap.split(",")],
    store=cfg.consolidator_store,
    datadir=cfg.consolidator_data_dir,
    topic_partitions=CHAT_EVENTS.partitions,
    topic_replication_factor=1,
    broker_session_timeout=cfg.kafka_session_timeout_ms / 1000,
    broker_heartbeat_interval=max(0.5, cfg.kafka_session_timeout_ms / 3000),
    producer_linger=0.005,
    producer_acks=-1,
    web_host=cfg.http_host,
    web_port=cfg.consolidator_port,
    web_in_thread=False,
    processing_guarantee="at_least_once",
)

events_topic = app.topic(CHAT_EVENTS.name, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")
digests_topic = app.topic(MAIL_DIGESTS.name, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw")
_raw = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw",
                    value_serializer="raw")
states = app.Table("conversation-state", default=None, schema=_raw,
                   partitions=CHAT_EVENTS.partitions)

shop_settings = ShopSettingsView(cfg)


class DeadlineIndex:
    """Per-partition min-heaps of (deadline, key); stale entries are skipped lazily."""

    def __init__(self) -> None:
        self.heaps: dict[int, list[tuple[int, bytes]]] = {}
        self.built = False

    def push(self, partition: int, due_ms: int, key: bytes) -> None:
        heapq.heappush(self.heaps.setdefault(partition, []), (due_ms, key))

    def due(self, partition: int, now_ms: int) -> list[bytes]:
        heap = self.heaps.get(partition, [])
        keys = []
        while heap and heap[0][0] <= now_ms:
            keys.append(heapq.heappop(heap)[1])
        return keys

    def rebuild(self) -> None:
        self.heaps.clear()
        count = 0
        for key, raw in states.items():
            if raw is None:
                continue
            st = ConversationState.from_bytes(raw)
            if st.due_at_ms:
                self.push(st.partition, st.due_at_ms, key)
                count += 1
        PENDING.set(count)
        self.built = True
        log.info("deadline index rebuilt", extra={"pending": count})


deadlines = DeadlineIndex()


@app.on_rebalance_complete.connect
def _on_rebalance(app: faust.App, **kwargs: object) -> None:
    deadlines.built = False


def _load(key: bytes, partition: int) -> ConversationState:
    raw = states.get(key)
    if raw is None:
        return ConversationState(partition=partition)
    return ConversationState.from_bytes(raw)


def _store(key: bytes, st: ConversationState) -> None:
    if st.is_idle:
        states.pop(key, None)
    else:
        states[key] = st.to_bytes()


@app.agent(events_topic)
async def consolidate(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        started = time.perf_counter()
        if not deadlines.built:
            deadlines.rebuild()
        partition = event.message.partition
        try:
            chat_event = decode(ChatEvent, event.value)
        except DecodeError as exc:
            log.warning("undecodable chat event skipped", extra={"reason": str(exc),
                                                                 "offset": event.message.offset})
            EVENTS_HANDLED.labels(SERVICE, "bad_record").inc()
            continue
        if chat_event.kind == ChatEventKind.TICK:
            await _release_due(partition)
        else:
            _apply(event.key or chat_event.conversation_key.encode(), partition, chat_event)
        EVENTS_HANDLED.labels(SERVICE, chat_event.kind).inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)


def _apply(key: bytes, partition: int, ev: ChatEvent) -> None:
    st = _load(key, partition)
    shop = shop_settings.get(ev.shop_id)
    if ev.kind == ChatEventKind.BUYER_MESSAGE:
        if not shop.alerts_enabled:
            DROPPED_ALERTS_OFF.inc()
            return
        windows = windows_for(shop, mailbox_s=cfg.window_mailbox_s,
                              helpdesk_s=cfg.window_helpdesk_s, max_wait_s=cfg.max_wait_s)
        was_pending = bool(st.pending)
        if add_buyer_message(st, ev, windows):
            deadlines.push(partition, st.due_at_ms, key)
            if not was_pending:
                PENDING.inc()
    elif ev.kind in (ChatEventKind.SELLER_MESSAGE, ChatEventKind.READ, ChatEventKind.EMAIL_REPLY):
        was_pending = bool(st.pending)
        cover_by_seller(st, ev.sent_at_ms or ev.received_at_ms)
        if was_pending and not st.pending:
            PENDING.dec()
    _store(key, st)


async def _release_due(partition: int) -> None:
    now = now_ms()
    for key in deadlines.due(partition, now):
        raw = states.get(key)
        if raw is None:
            continue
        st = ConversationState.from_bytes(raw)
        if not st.due_at_ms or st.due_at_ms > now:
            continue  # stale heap entry: the deadline moved or the digest went already
        shop_id, _, conversation_id = key.decode().partition(":")
        shop = shop_settings.get(shop_id)
        if not shop.alerts_enabled:
            DROPPED_ALERTS_OFF.inc(drop_pending(st))
            PENDING.dec()
            _store(key, st)
            continue
        digest = release_digest(st, shop, conversation_id, now)
        if digest is None:
            continue
        await digests_topic.send(key=key, value=encode(digest))
        _store(key, st)
        PENDING.dec()
        DIGESTS_EMITTED.inc()


@app.timer(interval=cfg.tick_interval_s)
async def tick() -> None:
    """Feed this worker's clock into each of its partitions of chat.events."""
    parts = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == CHAT_EVENTS.name}
    for p in sorted(parts):
        tick_event = ChatEvent(kind=ChatEventKind.TICK, shop_id="", conversation_id="",
                               partition_hint=p, received_at_ms=now_ms())
        await events_topic.send(key=b"tick", value=encode(tick_event), partition=p)


@app.task
async def start_settings_view() -> None:
    await shop_settings.start()
    UP.labels(SERVICE).set(1)


@app.page("/metrics")
class Metrics(View):
    async def get(self, request: Request) -> Response:
        body, content_type = render_metrics()
        return self.bytes(body, content_type=content_type.split(";")[0])


@app.page("/healthz")
class Health(View):
    async def get(self, request: Request) -> Response:
        ok = shop_settings.ready.is_set()
        return self.json({"ok": ok}, status=200 if ok else 503)
