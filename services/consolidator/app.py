"""Consolidator: per-conversation debounce on faust-streaming, state in a changelog-backed table.

Story of one batch: the agent takes up to ``consolidator_batch_max`` records of
``chat.events``; :class:`~consolidator.consolidation.Consolidation` applies them
in order (ticks, this worker's clock sent through ``chat.events`` itself, release
what is due); the digests are produced and ACKED first, then each touched
conversation's state is written once. A crash in between re-releases the same
messages under the same digest id (the mailer drops the copy); it can never mark
messages emailed that are not on ``mail.digests``.

Faust keeps what it is good at: the table's changelog topic, recovery,
partition assignment and the worker. The hot path stays off faust's per-key
machinery: records are decoded by a fast trusted decoder
(:mod:`consolidator.chat_event_decoder`), states are read from and written to
the table's store directly, and each batch's changelog records go to the
producer in one go and are acked before the batch's offsets can be committed
(``table[key] = v`` queues one record at a time through faust's producer
buffer, whose back-pressure stalled the consumer at ~2,500 events/s).

After every rebalance, before the first batch, the worker does not take faust's
word for two things (see :mod:`consolidator.partition_reader`): each active
partition's state is read again from its changelog up to a fence record this
worker writes (faust's recovery stops at the reported end offset, which a
broker may under-report, and can write older values over newer ones), and the
stream must hand over every offset from the group's committed one on (faust's
fetcher can skip records it then acks as a "gap"); skipped ones are read here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Iterator

import faust
from faust.stores.memory import Store as MemoryStore
from faust.streams import _current_event
from faust.types import TP, EventT
from faust.web import Request, Response, View

from consolidator.chat_event_decoder import decode_chat_event
from consolidator.consolidation import ChatRecord, Consolidation
from consolidator.consolidator_metrics import (
    BATCH_RECORDS,
    DIGEST_LAG_SECONDS,
    DIGESTS_EMITTED,
    DROPPED_ALERTS_OFF,
    INDEX_REBUILD_SECONDS,
    PENDING,
    SKIPPED_RECORDS_READ,
    STATE_CATCH_UP_RECORDS,
)
from consolidator.deadline_index import DeadlineIndex
from consolidator.digest_state import StateFormatError, WindowPolicy, state_header
from consolidator.offset_continuity import OffsetContinuity
from consolidator.partition_reader import PartitionReader
from shared.codec import DecodeError, encode
from shared.config import get_settings
from shared.events import ChatEvent, ChatEventKind, DeadLetter
from shared.logging import now_ms
from shared.metrics import (
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_HANDLED,
    HANDLE_SECONDS,
    UP,
    render_metrics,
)
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
    topic_replication_factor=cfg.consolidator_replication_factor,
    broker_session_timeout=cfg.kafka_session_timeout_ms / 1000,
    broker_heartbeat_interval=max(0.5, cfg.kafka_session_timeout_ms / 3000),
    producer_linger=cfg.consolidator_producer_linger_s,
    producer_acks=-1,
    producer_max_batch_size=512 * 1024,
    # Bigger fetches and stream buffers: the agent takes thousands of records a batch.
    broker_max_poll_records=cfg.consolidator_batch_max,
    stream_buffer_maxsize=4 * cfg.consolidator_batch_max,
    web_host=cfg.http_host,
    web_port=cfg.consolidator_port,
    web_in_thread=False,
    processing_guarantee="at_least_once",
    # The check compares a disk store's persisted offset with the changelog's reported end
    # offset, which a broker may under-report (our dev broker does): it then stops a correct
    # worker. The store is made good by reading up to a fence after every rebalance instead.
    recovery_consistency_check=False,
)

events_topic = app.topic(CHAT_EVENTS.name, key_type=bytes, value_type=bytes,
                         key_serializer="raw", value_serializer="raw")
states = app.Table("conversation-state", default=None, key_type=bytes, value_type=bytes,
                   partitions=CHAT_EVENTS.partitions)
# Raw bytes both ways, the changelog and its recovery included: the state has its own
# compact encoding, and faust would otherwise pick "json" for a bytes type.
states.key_serializer = states.value_serializer = "raw"
GROUP = app.conf.id  # the consumer group, as faust names it

shop_settings = ShopSettingsView(cfg)
deadlines = DeadlineIndex()
reader = PartitionReader(cfg.kafka_bootstrap,
                         timeout_s=max(30.0, cfg.kafka_request_timeout_ms / 1000))
offsets_seen = OffsetContinuity()
# Key of the fence record (a tombstone) written to a changelog partition before reading it
# up to the fence; no conversation key starts with a NUL byte.
FENCE_KEY = b"\x00consolidator-fence"
_rebalances = 0  # completed rebalances seen
_caught_up_for = -1  # the value of _rebalances the store and the index were made good for
_partition_event: dict[int, EventT] = {}  # one event per partition of the batch at hand
_partition_ref: dict[int, weakref.ref[EventT]] = {}


def _partition_bound() -> bool:
    """Does the store pick its partition from faust's current event? (disk stores do)"""
    return not isinstance(states.data, MemoryStore)


@contextlib.contextmanager
def _in_partition(partition: int) -> Iterator[None]:
    """Make store reads/writes for ``partition`` go to that partition's database.

    A disk store picks the partition from the "current event"; inside a batch that
    is whichever record came last, so each access names the partition it means.
    The memory store keeps one dict for all partitions and needs none of this.
    """
    if not _partition_bound():
        yield
        return
    ref = _partition_ref.get(partition)
    if ref is None:
        ref = _partition_ref[partition] = weakref.ref(_partition_event[partition])
    token = _current_event.set(ref)
    try:
        yield
    finally:
        _current_event.reset(token)


def _load(key: bytes, partition: int) -> bytes | None:
    # The store itself, not the table: the table's get() adds sensors and key lookups
    # per call that buy nothing here.
    if _partition_bound():
        with _in_partition(partition):
            raw = states.data.get(key)
    else:
        raw = states.data.get(key)
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
    global _rebalances
    _rebalances += 1
    _last_handled.clear()  # offsets of partitions this worker may no longer hold


async def _catch_up() -> None:
    """Make the store, the deadline index and the offset check good for the new assignment.

    Runs in the agent before its first batch after a rebalance, so nothing of the new
    assignment is handled before its states are complete.
    """
    global _caught_up_for
    while _caught_up_for != _rebalances:
        generation = _rebalances
        started = time.perf_counter()
        active = sorted(_active_partitions())
        applied = await _read_changelogs_to_fences(active)
        committed = await reader.committed(GROUP, CHAT_EVENTS.name, active)
        for partition in active:
            if partition not in committed:  # nothing committed yet: the group starts at the
                committed[partition] = await reader.first_offset(CHAT_EVENTS.name, partition)
        offsets_seen.reset(committed)
        _rebuild_index(active)
        _caught_up_for = generation
        log.info("states caught up with the changelogs",
                 extra={"partitions": active, "records": applied,
                        "seconds": round(time.perf_counter() - started, 3)})


async def _read_changelogs_to_fences(partitions: list[int]) -> int:
    """Apply each partition's changelog to the store up to a fence written now; how many.

    The memory store is read from the start (it has no offset of its own, and faust's
    recovery may have left older values over newer ones); a disk store from the offset
    it has persisted, up to which its content is the changelog's.
    """
    if not partitions:
        return 0
    store = states.data
    changelog = states.changelog_topic.get_topic_name()
    send = app.producer.send
    acks = [await send(changelog, FENCE_KEY, None, p, None, None) for p in partitions]
    metas = await asyncio.gather(*acks)
    fences = {p: meta.offset for p, meta in zip(partitions, metas, strict=True)}
    memory = isinstance(store, MemoryStore)
    ranges: dict[int, tuple[int, int]] = {}
    for partition, fence in fences.items():
        if memory:
            start = 0
            _forget_memory_partition(store, partition)
        else:
            persisted = store.persisted_offset(TP(changelog, partition))
            start = persisted + 1 if persisted is not None else 0
        ranges[partition] = (start, fence + 1)
    applied = 0
    for partition, records in (await reader.read_many(changelog, ranges)).items():
        applied += len(records)
        if memory:
            data, key_partition = store.data, store._key_partition
            for rec in records:
                if rec.value is None:
                    data.pop(rec.key, None)
                    key_partition.pop(rec.key, None)
                else:
                    data[rec.key] = rec.value
                    key_partition[rec.key] = partition  # faust drops it when it goes
        else:
            db = store._db_for_partition(partition)
            for rec in records:
                if rec.value is None:
                    db.delete(rec.key)
                else:
                    db.put(rec.key, rec.value)
                store._key_index[rec.key] = partition
            store.set_persisted_offset(TP(changelog, partition), fences[partition])
    STATE_CATCH_UP_RECORDS.inc(applied)
    return applied


def _forget_memory_partition(store: MemoryStore, partition: int) -> None:
    """Drop a partition's states before reading its changelog whole (stale ones may linger)."""
    gone = [key for key, raw in store.data.items()
            if raw is None or _header_partition(raw) in (partition, None)]
    for key in gone:
        del store.data[key]
        store._key_partition.pop(key, None)


def _header_partition(raw: bytes) -> int | None:
    try:
        return state_header(raw)[2]
    except StateFormatError:
        return None


def _rebuild_index(active_list: list[int]) -> None:
    """Rebuild the deadline heaps from the store (each value's header holds the deadline)."""
    started = time.perf_counter()
    active = set(active_list)

    def stored() -> Iterator[tuple[bytes, bytes]]:
        store = states.data
        if not _partition_bound():
            yield from store.data.items()
            return
        # A disk store keeps one database per partition and iterates only those it has
        # opened so far: right after a restart that can be none. Open each active one.
        for partition in sorted(active):
            yield from store._visible_items(store._db_for_partition(partition))

    def entries() -> Iterator[tuple[int, int, bytes]]:
        for key, raw in stored():
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
    log.info("deadline index rebuilt", extra={"pending": count, "partitions": sorted(active)})


@app.agent(events_topic)
async def consolidate(stream: faust.StreamT[bytes]) -> None:
    async for batch in stream.take_events(cfg.consolidator_batch_max,
                                          within=cfg.consolidator_batch_within_s):
        await _handle_batch(batch)


# Metric children resolved once: .labels() costs a dict lookup and a lock per call.
_HELD = EVENTS_HANDLED.labels(SERVICE, "held")
_DUPLICATE = EVENTS_HANDLED.labels(SERVICE, "duplicate")
_COVERED = EVENTS_HANDLED.labels(SERVICE, "covered")
_HANDLE = HANDLE_SECONDS.labels(SERVICE)
_last_handled: dict[int, int] = {}  # partition -> offset of the last record handled
_lag_exported: set[TP] = set()


async def _handle_batch(batch: list[EventT]) -> None:
    started = time.perf_counter()
    if _caught_up_for != _rebalances:
        await _catch_up()
    records: list[ChatRecord] = []
    append = records.append
    missing_before = offsets_seen.missing_before
    _partition_event.clear()
    _partition_ref.clear()
    for event in batch:
        msg = event.message
        _partition_event[msg.partition] = event
        skipped = missing_before(msg.partition, msg.offset)
        if skipped is not None:
            await _read_skipped(msg.partition, *skipped, records)
        try:
            chat_event = decode_chat_event(event.value)
        except (DecodeError, TypeError) as exc:
            await _dead_letter(msg.partition, msg.offset, event.key, event.value,
                               f"undecodable chat event: {exc}")
            continue
        append(ChatRecord(event.key or chat_event.conversation_key.encode(), msg.partition,
                          chat_event))
    for partition, event in _partition_event.items():
        _last_handled[partition] = event.message.offset

    result = engine.apply_batch(records)

    # Digests first, and acked, before the states that say they went out.
    if result.digests:
        send = app.producer.send
        acks = [await send(MAIL_DIGESTS.name, key, encode(digest), partition, None, None)
                for key, partition, digest in result.digests]
        await asyncio.gather(*acks)
        released_at = now_ms()
        for _, _, digest in result.digests:
            DIGEST_LAG_SECONDS.observe(max(0, released_at - digest.due_at_ms) / 1000)
    if result.writes:
        await _store_states(result.writes)

    if result.pending_delta:
        PENDING.inc(result.pending_delta)
    if result.dropped_alerts_off:
        DROPPED_ALERTS_OFF.inc(result.dropped_alerts_off)
    DIGESTS_EMITTED.inc(len(result.digests))
    BATCH_RECORDS.observe(len(batch))
    _HELD.inc(result.held)
    _DUPLICATE.inc(result.duplicates)
    _COVERED.inc(result.covered)
    _HANDLE.observe(time.perf_counter() - started)


async def _read_skipped(partition: int, start: int, end: int,
                        records: list[ChatRecord]) -> None:
    """Read the records the stream skipped (``[start, end)``) and handle them first."""
    skipped = await reader.read(CHAT_EVENTS.name, partition, start, end)
    log.warning("chat.events[%d] offsets %d..%d skipped by the consumer: %d records read "
                "directly", partition, start, end - 1, len(skipped),
                extra={"partition": partition, "from_offset": start, "to_offset": end - 1,
                       "records": len(skipped)})
    SKIPPED_RECORDS_READ.inc(len(skipped))
    for rec in skipped:
        try:
            chat_event = decode_chat_event(rec.value)
        except (DecodeError, TypeError) as exc:
            await _dead_letter(partition, rec.offset, rec.key, rec.value,
                               f"undecodable chat event: {exc}")
            continue
        records.append(ChatRecord(rec.key or chat_event.conversation_key.encode(), partition,
                                  chat_event))


async def _store_states(writes: dict[bytes, tuple[int, bytes | None]]) -> None:
    """Write the batch's states to the store and their changelog records in one go.

    Awaited before the agent takes the next batch, i.e. before this batch's offsets can
    be committed: a restart never resumes after records whose state is not durable.
    """
    store = states.data
    changelog = states.changelog_topic.get_topic_name()
    send = app.producer.send
    futures = []
    bound = _partition_bound()
    # The memory store deletes a revoked partition's keys by this map; keep it complete.
    key_partition = None if bound else store._key_partition
    for key, (partition, value) in writes.items():
        with _in_partition(partition) if bound else contextlib.nullcontext():
            if value is None:
                with contextlib.suppress(KeyError):
                    del store[key]
                if key_partition is not None:
                    key_partition.pop(key, None)
            else:
                store[key] = value
                if key_partition is not None:
                    key_partition[key] = partition
        futures.append(await send(changelog, key, value, partition, None, None))
    persisted: dict[int, int] = {}
    for meta in await asyncio.gather(*futures):
        if meta.offset > persisted.get(meta.partition, -1):
            persisted[meta.partition] = meta.offset
    for partition, offset in persisted.items():
        # What faust's own changelog callback records: a disk store then knows at start
        # how far the changelog it already holds goes.
        store.set_persisted_offset(TP(changelog, partition), offset)


async def _dead_letter(partition: int, offset: int, key: bytes | None, raw: object,
                       reason: str) -> None:
    log.warning("undecodable chat event dead-lettered",
                extra={"reason": reason, "partition": partition, "offset": offset})
    EVENTS_HANDLED.labels(SERVICE, "bad_record").inc()
    DEAD_LETTERS.labels(SERVICE, "undecodable").inc()
    value = raw if isinstance(raw, bytes) else b""
    letter = DeadLetter(service=SERVICE, source_topic=CHAT_EVENTS.name, reason=reason,
                        key=(key or b"").decode("utf-8", "replace"),
                        partition=partition, offset=offset,
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


@app.timer(interval=cfg.consolidator_lag_interval_s)
async def report_consumer_lag() -> None:
    """bridge_consumer_lag per assigned chat.events partition: end offset minus handled."""
    consumer = app.consumer
    assigned = {tp for tp in consumer.assignment() if tp.topic == CHAT_EVENTS.name}
    for gone in _lag_exported - assigned:
        with contextlib.suppress(KeyError):
            CONSUMER_LAG.remove(GROUP, gone.topic, str(gone.partition))
    _lag_exported.intersection_update(assigned)
    for tp in assigned:
        try:
            end = consumer.highwater(tp)
            done = _last_handled.get(tp.partition)
            position = done + 1 if done is not None else await consumer.position(tp)
        except Exception:  # telemetry only; never stop the worker for it
            log.debug("lag report failed", exc_info=True)
            continue
        if end is not None and position is not None:
            CONSUMER_LAG.labels(GROUP, tp.topic, str(tp.partition)).set(max(0, end - position))
            _lag_exported.add(tp)


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

