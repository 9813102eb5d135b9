"""Consolidator: per-conversation debounce on faust-streaming, state in a changelog-backed table.

Story of one batch: the agent takes up to ``consolidator_batch_max`` records of
``chat.events``; :class:`~consolidator.consolidation.Consolidation` applies them
in order (ticks, this worker's clock sent through ``chat.events`` itself, release
what is due); the digests are produced and ACKED first, then each touched
conversation's state is written once. A crash in between re-releases the same
messages under the same digest id (the mailer drops the copy); it can never mark
messages emailed that are not on ``mail.digests``.

Faust keeps what it is good at: the table's changelog, recovery, partition
assignment and the worker; the per-event work is one orjson decode and a dict
lookup, and the table sees one write per conversation per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterator

import faust
import orjson
from faust.streams import _current_event
from faust.types import EventT
from faust.web import Request, Response, View

from consolidator.consolidation import ChatRecord, Consolidation
from consolidator.consolidator_metrics import (
    BATCH_RECORDS,
    DIGESTS_EMITTED,
    DROPPED_ALERTS_OFF,
    INDEX_REBUILD_SECONDS,
    PENDING,
)
from consolidator.deadline_index import DeadlineIndex
from consolidator.digest_state import StateFormatError, WindowPolicy, state_header
from shared.codec import DecodeError, encode, from_dict
from shared.config import get_settings
from shared.events import ChatEvent, ChatEventKind, DeadLetter
from shared.logging import now_ms
from shared.metrics import DEAD_LETTERS, EVENTS_HANDLED, HANDLE_SECONDS, UP, render_metrics
from shared.settings_view import ShopSettingsView
from shared.topics import CHAT_EVENTS, DEAD_LETTER, MAIL_DIGESTS

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
states = app.Table("conversation-state", default=None, key_type=bytes, value_type=bytes,
                   partitions=CHAT_EVENTS.partitions)
# Raw bytes both ways, the changelog and its recovery included: the state has its own
# compact encoding, and faust would otherwise pick "json" for a bytes type.
states.key_serializer = states.value_serializer = "raw"

shop_settings = ShopSettingsView(cfg)
deadlines = DeadlineIndex()
_index_built = False
_partition_event: dict[int, EventT] = {}  # one event per partition of the batch at hand


@contextlib.contextmanager
def _in_partition(partition: int) -> Iterator[None]:
    """Make table reads/writes for ``partition`` go to that partition's store and changelog.

    Faust picks the table partition from the "current event"; inside a batch that
    is whichever record came last, so each access names the partition it means.
    """
    token = _current_event.set(weakref.ref(_partition_event[partition]))
    try:
        yield
    finally:
        _current_event.reset(token)


def _load(key: bytes, partition: int) -> bytes | None:
    with _in_partition(partition):
        raw = states.get(key)
    if raw is not None:
        try:
            state_header(raw)
        except StateFormatError as exc:
            log.error("unreadable conversation state replaced", extra={"reason": str(exc)})
            return None
    return raw


engine = Consolidation(
    WindowPolicy(cfg.window_mailbox_s, cfg.window_helpdesk_s, cfg.max_wait_s,
                 cfg.window_override_min_s, cfg.window_override_max_s),
    shop_settings.get, _load, deadlines)


def _active_partitions() -> set[int]:
    return {tp.partition for tp in app.assignor.assigned_actives()
            if tp.topic == CHAT_EVENTS.name}


@app.on_rebalance_complete.connect
def _on_rebalance(app: faust.App, **kwargs: object) -> None:
    global _index_built
    _index_built = False


def _rebuild_index() -> None:
    """Rebuild the deadline heaps from the store (each value's header holds the deadline)."""
    global _index_built
    started = time.perf_counter()
    active = _active_partitions()

    def entries() -> Iterator[tuple[int, int, bytes]]:
        for key, raw in states.items():
            if raw is None:
                continue
            try:
                _, due, partition = state_header(raw)
            except StateFormatError:
                continue
            yield partition, due, key

    count = deadlines.rebuild(entries(), active)
    PENDING.set(count)
    INDEX_REBUILD_SECONDS.observe(time.perf_counter() - started)
    _index_built = True
    log.info("deadline index rebuilt", extra={"pending": count, "partitions": sorted(active)})


def _decode_record(event: EventT) -> ChatEvent:
    raw = orjson.loads(event.value)
    return from_dict(ChatEvent, raw)


@app.agent(events_topic)
async def consolidate(stream: faust.StreamT[bytes]) -> None:
    async for batch in stream.take_events(cfg.consolidator_batch_max,
                                          within=cfg.consolidator_batch_within_s):
        await _handle_batch(batch)


async def _handle_batch(batch: list[EventT]) -> None:
    started = time.perf_counter()
    if not _index_built:
        _rebuild_index()
    records: list[ChatRecord] = []
    _partition_event.clear()
    for event in batch:
        msg = event.message
        _partition_event[msg.partition] = event
        try:
            chat_event = _decode_record(event)
        except (DecodeError, orjson.JSONDecodeError, TypeError) as exc:
            await _dead_letter(event, f"undecodable chat event: {exc}")
            continue
        key = event.key or chat_event.conversation_key.encode()
        records.append(ChatRecord(key, msg.partition, chat_event))

    result = engine.apply_batch(records)

    # Digests first, and acked, before the states that say they went out.
    acks = [await app.producer.send(MAIL_DIGESTS.name, key, encode(digest), partition, None, None)
            for key, partition, digest in result.digests]
    if acks:
        await asyncio.gather(*acks)
    for key, (partition, value) in result.writes.items():
        with _in_partition(partition):
            if value is None:
                states.pop(key, None)
            else:
                states[key] = value

    if result.pending_delta:
        PENDING.inc(result.pending_delta)
    if result.dropped_alerts_off:
        DROPPED_ALERTS_OFF.inc(result.dropped_alerts_off)
    DIGESTS_EMITTED.inc(len(result.digests))
    BATCH_RECORDS.observe(len(batch))
    EVENTS_HANDLED.labels(SERVICE, "held").inc(result.held)
    EVENTS_HANDLED.labels(SERVICE, "duplicate").inc(result.duplicates)
    EVENTS_HANDLED.labels(SERVICE, "covered").inc(result.covered)
    HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)


async def _dead_letter(event: EventT, reason: str) -> None:
    msg = event.message
    log.warning("undecodable chat event dead-lettered",
                extra={"reason": reason, "partition": msg.partition, "offset": msg.offset})
    EVENTS_HANDLED.labels(SERVICE, "bad_record").inc()
    DEAD_LETTERS.labels(SERVICE, "undecodable").inc()
    value = event.value if isinstance(event.value, bytes) else b""
    letter = DeadLetter(service=SERVICE, source_topic=CHAT_EVENTS.name, reason=reason,
                        key=(event.key or b"").decode("utf-8", "replace"),
                        partition=msg.partition, offset=msg.offset,
                        payload_excerpt=value[:2000].decode("utf-8", "replace"), at_ms=now_ms())
    await app.producer.send(DEAD_LETTER.name, None, encode(letter), None, None, None)


@app.timer(interval=cfg.tick_interval_s)
async def tick() -> None:
    """Feed this worker's clock into each of its partitions of chat.events."""
    now = now_ms()
    for p in sorted(_active_partitions()):
        tick_event = ChatEvent(kind=ChatEventKind.TICK, shop_id="", conversation_id="",
                               partition_hint=p, received_at_ms=now)
        await app.producer.send(CHAT_EVENTS.name, b"tick", encode(tick_event), p, None, None)


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

