"""Consolidator: per-conversation debounce on faust-streaming, state in a changelog-backed table.

Story of one batch: faust's fetcher hands each fetched batch of ``chat.events``
(up to ``consolidator_batch_max`` records) to :meth:`Consolidator.handle_records`
whole (:mod:`consolidator.faust_adapter`);
:class:`~consolidator.consolidation.Consolidation` applies the records in order
(ticks, this worker's clock sent through ``chat.events`` itself, release what is
due); the digests are produced and ACKED first, then each touched conversation's
state is written once, and only when those are acked are the offsets committed.
A crash in between re-releases the same messages under the same digest id (the
mailer drops the copy); it can never mark messages emailed that are not on
``mail.digests``.

Faust keeps what it is good at: the group and its partition assignment, the
table with its changelog topic and store, recovery, the producer and the
worker. The hot path stays off faust's per-event machinery (message and event
objects, stream queues, per-record acks) and off its per-key table API: records
are decoded by a fast trusted decoder (:mod:`consolidator.chat_event_decoder`),
states are read from and written to the table's store directly, and each
batch's changelog records go to the producer in one go (``table[key] = v``
queues one record at a time through faust's producer buffer, whose
back-pressure stalls the consumer). docs/performance.md has the figures.

After every rebalance, before the first batch, the worker does not take faust's
word for two things (see :mod:`consolidator.partition_reader`): each active
partition's state is read again from its changelog up to a fence record this
worker writes (faust's recovery stops at the reported end offset, which a
broker may under-report, and can write older values over newer ones), and the
fetched batches must hold every offset from the group's committed one on (a seek
during hand-over can skip records); skipped ones are read here. Faust's own
changelog writes to the store are kept off the active partitions altogether
(:func:`~consolidator.faust_adapter.keep_changelog_off`): it applies buffered
records long after a rebalance, over states this worker wrote since.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Mapping

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP
from faust.web import Request, Response, View

from consolidator.batched_send import send_batched
from consolidator.chat_event_decoder import decode_chat_event
from consolidator.consolidation import BatchResult, ChatRecord, Consolidation
from consolidator.consolidator_metrics import (
    BATCH_RECORDS,
    DIGEST_LAG_SECONDS,
    DIGESTS_EMITTED,
    INDEX_REBUILD_SECONDS,
    NOT_EMAILED_ALERTS_OFF,
    NOT_EMAILED_NOT_ONBOARDED,
    PENDING,
    SKIPPED_RECORDS_READ,
    STATE_CATCH_UP_RECORDS,
    STATES_EXPIRED,
)
from consolidator.consolidator_settings import ConsolidatorSettings
from consolidator.deadline_index import DeadlineIndex
from consolidator.debounce import StateFormatError, state_header
from consolidator.faust_adapter import (
    BatchingApp,
    BatchingConsumer,
    PartitionedStates,
    aiokafka_producer,
    keep_changelog_off,
    raw_bytes_table,
)
from consolidator.offset_continuity import OffsetContinuity
from consolidator.partition_reader import PartitionReader
from consolidator.state_store import StateSweeper
from shared.codec import DecodeError, encode
from shared.events import ChatEvent, ChatEventKind
from shared.kafka import DeadLetterWriter
from shared.logging import now_ms
from shared.metrics import (
    CONSUMER_LAG,
    EVENTS_HANDLED,
    HANDLE_SECONDS,
    UP,
    render_metrics,
)
from shared.notification_window import WindowPolicy
from shared.service_runtime import health_answer
from shared.settings_view import ShopSettingsView
from shared.topics import CHAT_EVENTS, DAY_MS, MAIL_DIGESTS

SERVICE = "consolidator"
GROUP = "bridge-consolidator"  # faust's app id: the consumer group and the topics' prefix
log = logging.getLogger(SERVICE)

# Key of the fence record (a tombstone) written to a changelog partition before reading it
# up to the fence; no conversation key starts with a NUL byte. Tansu: its end offsets stop
# inside the last batch, so the fence's own offset (from the ack) marks the end instead;
# the fence also keeps a standby's newer values from being overwritten on real Kafka.
FENCE_KEY = b"\x00consolidator-fence"

# Metric children resolved once: .labels() costs a dict lookup and a lock per call.
_HELD = EVENTS_HANDLED.labels(SERVICE, "held")
_DUPLICATE = EVENTS_HANDLED.labels(SERVICE, "duplicate")
_COVERED = EVENTS_HANDLED.labels(SERVICE, "covered")
_HANDLE = HANDLE_SECONDS.labels(SERVICE)


# How stale the consumer's view of the topics may get (see build_faust_app).
METADATA_MAX_AGE_MS = 15_000


def build_faust_app(cfg: ConsolidatorSettings) -> BatchingApp:
    """The faust app: group, broker, store and web settings of one consolidator worker."""
    return BatchingApp(
        GROUP,
        broker=[f"kafka://{h}" for h in cfg.kafka_bootstrap.split(",")],
        store=cfg.consolidator_store,
        datadir=cfg.consolidator_data_dir,
        topic_partitions=CHAT_EVENTS.partitions,
        topic_replication_factor=cfg.consolidator_replication_factor,
        broker_session_timeout=cfg.kafka_session_timeout_ms / 1000,
        broker_heartbeat_interval=max(0.5, cfg.kafka_session_timeout_ms / 3000),
        # After a whole-cluster restart the group can be assigned while the brokers' metadata
        # has no topics yet, which leaves every partition unassigned; aiokafka rejoins when
        # it sees the partitions again, at its next metadata refresh (5 minutes by default).
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,
        producer_linger=cfg.consolidator_producer_linger_s,
        producer_acks=-1,
        producer_max_batch_size=512 * 1024,
        # One fetched batch is one handled batch: thousands of records.
        broker_max_poll_records=cfg.consolidator_batch_max,
        web_host=cfg.http_host,
        web_port=cfg.consolidator_port,
        web_in_thread=False,
        processing_guarantee="at_least_once",
        # Tansu: the check compares a disk store's persisted offset with the changelog's
        # reported end offset, which Tansu under-reports: it then stops a correct worker. The
        # store is made good by reading up to a fence after every rebalance instead, on
        # either broker.
        recovery_consistency_check=False,
    )


class Consolidator:
    """One consolidator worker: the faust app, its table, topic, agent, timers and pages,
    and the batch handler with the state it carries between batches."""

    def __init__(self, cfg: ConsolidatorSettings) -> None:
        self.cfg = cfg
        self.app = app = build_faust_app(cfg)
        self.events_topic = app.topic(
            CHAT_EVENTS.name,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.states = raw_bytes_table(app, "conversation-state", CHAT_EVENTS.partitions)
        # This worker's active partitions are read to a fence after every rebalance and
        # written by it alone: faust's late changelog writes would put older values back.
        keep_changelog_off(self.states, lambda: self._active_partitions())
        self.store = PartitionedStates(self.states)
        self.sweeper = StateSweeper(self.store)
        self.idle_ttl_ms = int(cfg.state_idle_ttl_days * DAY_MS)
        self.shop_settings = ShopSettingsView(cfg)
        self.deadlines = DeadlineIndex()
        self.reader = PartitionReader(
            cfg.kafka_bootstrap, timeout_s=max(30.0, cfg.kafka_request_timeout_ms / 1000)
        )
        self.offsets_seen = OffsetContinuity()
        self.engine = Consolidation(
            WindowPolicy.from_settings(cfg), self.shop_settings.find, self._load, self.deadlines
        )
        self._rebalances = 0  # completed rebalances seen
        self._caught_up_for = -1  # the value of _rebalances the store and index are good for
        self._last_handled: dict[int, int] = {}  # partition -> offset of the last handled
        self._in_flight: asyncio.Future[None] | None = None  # last batch's acks and commit
        self._next_sweep_ms = 0  # tick time from which the next slice is looked at for expiry
        self._lag_exported: set[TP] = set()
        self._wire()

    def _wire(self) -> None:
        """Register the agent, timers, task, pages and hooks with the faust app."""
        app = self.app
        app.batch_topic = CHAT_EVENTS.name
        app.batch_handler = self.handle_records
        app.batch_flush = self._finish_in_flight
        # mode's SignalHandlerT names its "signal" argument with a string mypy cannot resolve,
        # so no handler signature satisfies it, not even one written exactly as it reads.
        app.on_rebalance_complete.connect(self._on_rebalance)  # type: ignore[arg-type]
        app.agent(self.events_topic, name=f"{GROUP}.consolidate")(self._consolidate)
        app.timer(interval=self.cfg.tick_interval_s)(self.tick)
        app.timer(interval=self.cfg.consolidator_lag_interval_s)(self.report_consumer_lag)
        app.task(self._start_settings_view)
        is_healthy = self.shop_settings.ready.is_set

        class Metrics(View):
            async def get(self, request: Request) -> Response:
                body, content_type = render_metrics()
                return self.bytes(body, content_type=content_type.split(";")[0])

        class Health(View):
            async def get(self, request: Request) -> Response:
                body, status = health_answer(is_healthy())
                return self.bytes(body, content_type="application/json", status=status)

        app.page("/metrics")(Metrics)
        app.page("/healthz")(Health)

    def run(self) -> None:
        """Run the faust worker until it is stopped (it owns the loop and the signals)."""
        self.app.main()

    async def _consolidate(self, stream: faust.StreamT[bytes]) -> None:
        """Subscribes the group to chat.events; its records never reach this stream.

        The batching consumer hands them to :meth:`handle_records`. Were one to arrive
        here, the consumer was not installed: stop rather than ack it unhandled.
        """
        async for _ in stream:
            raise RuntimeError(
                "a chat.events record reached the faust stream: the batching "
                "consumer is not installed"
            )

    async def _start_settings_view(self) -> None:
        await self.shop_settings.start()
        UP.labels(SERVICE).set(1)

    def _load(self, key: bytes, partition: int) -> bytes | None:
        # The store itself, not the table: the table's get() adds sensors and key lookups
        # per call that buy nothing here.
        raw = self.store.get(key, partition)
        if raw is not None:
            try:
                state_header(raw)
            except StateFormatError as exc:
                log.error("unreadable conversation state replaced", extra={"reason": str(exc)})
                return None
        return raw

    def _active_partitions(self) -> set[int]:
        return {
            tp.partition
            for tp in self.app.assignor.assigned_actives()
            if tp.topic == CHAT_EVENTS.name
        }

    def _on_rebalance(self, app: faust.App, **kwargs: object) -> None:
        self._rebalances += 1
        self._last_handled.clear()  # offsets of partitions this worker may no longer hold

    async def _catch_up(self) -> None:
        """Make the store, the deadline index and the offset check good for the new assignment.

        Runs in the batch handler before its first batch after a rebalance, so nothing of
        the new assignment is handled before its states are complete.
        """
        while self._caught_up_for != self._rebalances:
            generation = self._rebalances
            started = time.perf_counter()
            active = sorted(self._active_partitions())
            applied = await self._read_changelogs_to_fences(active)
            committed = await self.reader.committed(GROUP, CHAT_EVENTS.name, active)
            for partition in active:
                if partition not in committed:  # nothing committed yet: the group starts at
                    committed[partition] = await self.reader.first_offset(
                        CHAT_EVENTS.name, partition
                    )
            self.offsets_seen.reset(committed)
            self._rebuild_index(active)
            self._caught_up_for = generation
            log.info(
                "states caught up with the changelogs",
                extra={
                    "partitions": active,
                    "records": applied,
                    "seconds": round(time.perf_counter() - started, 3),
                },
            )

    async def _read_changelogs_to_fences(self, partitions: list[int]) -> int:
        """Apply each partition's changelog to the store up to a fence written now; how many.

        The memory store is read from the start (it has no offset of its own, and faust's
        recovery may have left older values over newer ones); a disk store from the offset
        it has persisted, up to which its content is the changelog's.
        """
        if not partitions:
            return 0
        store = self.store
        changelog = self.states.changelog_topic.get_topic_name()
        send = self.app.producer.send
        acks = [await send(changelog, FENCE_KEY, None, p, None, None) for p in partitions]
        metas = await asyncio.gather(*acks)
        fences = {p: meta.offset for p, meta in zip(partitions, metas, strict=True)}
        ranges: dict[int, tuple[int, int]] = {}
        for partition, fence in fences.items():
            if store.in_memory:
                start = 0
                store.forget_partition(partition, _header_partition)
            else:
                persisted = store.persisted_offset(TP(changelog, partition))
                start = persisted + 1 if persisted is not None else 0
            ranges[partition] = (start, fence + 1)
        applied = 0
        for partition, records in (await self.reader.read_many(changelog, ranges)).items():
            applied += store.apply_changelog(partition, records)
            if not store.in_memory:
                store.set_persisted_offset(TP(changelog, partition), fences[partition])
        STATE_CATCH_UP_RECORDS.inc(applied)
        return applied

    def _rebuild_index(self, active_list: list[int]) -> None:
        """Rebuild the deadline heaps from the store (each value's header holds the deadline)."""
        started = time.perf_counter()
        active = set(active_list)

        def entries() -> Iterator[tuple[int, int, bytes]]:
            for key, raw in self.store.items(active):
                if raw is None:
                    continue
                try:
                    _, due, partition = state_header(raw)
                except StateFormatError:
                    continue
                yield partition, due, key

        count = self.deadlines.rebuild(entries(), active)
        PENDING.set(count)
        INDEX_REBUILD_SECONDS.observe(time.perf_counter() - started)
        log.info("deadline index rebuilt", extra={"pending": count, "partitions": sorted(active)})

    async def handle_records(self, batch: Mapping[TP, list[ConsumerRecord]]) -> None:
        """Handle one fetched batch of chat.events; its offsets are committed when done."""
        started = time.perf_counter()
        if not self.shop_settings.ready.is_set():
            # faust starts app tasks (the view's loader) only once table recovery is done,
            # when batches already flow: handled before the view is loaded, every shop looks
            # not onboarded and its messages are dropped for good (offsets committed).
            await self.shop_settings.ready.wait()
        if self._caught_up_for != self._rebalances:
            await self._catch_up()
        records: list[ChatRecord] = []
        append = records.append
        commit: dict[TP, int] = {}
        bad: list[tuple[int, ConsumerRecord, str]] = []
        count = 0
        for tp, recs in batch.items():
            if not recs:
                continue
            partition = tp.partition
            missing_before = self.offsets_seen.missing_before
            for rec in recs:
                skipped = missing_before(partition, rec.offset)
                if skipped is not None:
                    await self._read_skipped(partition, *skipped, records, bad)
                chat_record = _chat_record(partition, rec, bad)
                if chat_record is not None:
                    append(chat_record)
            last = recs[-1].offset
            self._last_handled[partition] = last
            commit[tp] = last + 1
            count += len(recs)

        for partition, rec, reason in bad:
            await self._dead_letter(partition, rec.offset, rec.key, rec.value, reason)
        result = self.engine.apply_batch(records)
        self._expire_idle(result)

        # Digests first, and acked, before the states that say they went out.
        if result.digests:
            await send_batched(
                aiokafka_producer(self.app),
                MAIL_DIGESTS.name,
                ((partition, key, encode(digest)) for key, partition, digest in result.digests),
            )
            released_at = now_ms()
            for _, _, digest in result.digests:
                DIGEST_LAG_SECONDS.observe(max(0, released_at - digest.due_at_ms) / 1000)
        # The states go to the store now (the next batch reads them) and to the changelog
        # in the background: acks, then the commit, overlap with the next batch's decoding
        # and applying. One batch at a time in flight, so changelog writes and commits
        # stay in batch order.
        await self._finish_in_flight()
        changelog_records = self._store_states(result.writes)
        self._in_flight = asyncio.ensure_future(self._persist_and_commit(changelog_records, commit))

        if result.pending_delta:
            PENDING.inc(result.pending_delta)
        if result.dropped_alerts_off:
            NOT_EMAILED_ALERTS_OFF.inc(result.dropped_alerts_off)
        if result.dropped_not_onboarded:
            NOT_EMAILED_NOT_ONBOARDED.inc(result.dropped_not_onboarded)
        DIGESTS_EMITTED.inc(len(result.digests))
        BATCH_RECORDS.observe(count)
        _HELD.inc(result.held)
        _DUPLICATE.inc(result.duplicates)
        _COVERED.inc(result.covered)
        _HANDLE.observe(time.perf_counter() - started)

    async def _read_skipped(
        self,
        partition: int,
        start: int,
        end: int,
        records: list[ChatRecord],
        bad: list[tuple[int, ConsumerRecord, str]],
    ) -> None:
        """Read the records the stream skipped (``[start, end)``) and handle them first."""
        skipped = await self.reader.read(CHAT_EVENTS.name, partition, start, end)
        log.warning(
            "chat.events[%d] offsets %d..%d skipped by the consumer: %d records read directly",
            partition,
            start,
            end - 1,
            len(skipped),
            extra={
                "partition": partition,
                "from_offset": start,
                "to_offset": end - 1,
                "records": len(skipped),
            },
        )
        SKIPPED_RECORDS_READ.inc(len(skipped))
        for rec in skipped:
            chat_record = _chat_record(partition, rec, bad)
            if chat_record is not None:
                records.append(chat_record)

    def _store_states(
        self,
        writes: dict[bytes, tuple[int, bytes | None]],
    ) -> list[tuple[int, bytes, bytes | None]]:
        """Write the batch's states to the store; the changelog records that make them
        durable."""
        records = []
        for key, (partition, value) in writes.items():
            if value is None:
                self.store.delete(key, partition)
            else:
                self.store.put(key, partition, value)
            records.append((partition, key, value))
        return records

    async def _persist_and_commit(
        self, changelog_records: list[tuple[int, bytes, bytes | None]], offsets: dict[TP, int]
    ) -> None:
        """Send a batch's changelog records, wait for their acks, then commit its offsets.

        A restart therefore never resumes after records whose state is not durable. A
        commit refused because the group moved on is fine: the new owner handles the
        records again, to the same effect.
        """
        if changelog_records:
            changelog = self.states.changelog_topic.get_topic_name()
            persisted = await send_batched(
                aiokafka_producer(self.app), changelog, changelog_records
            )
            for partition, offset in persisted.items():
                # What faust's own changelog callback records: a disk store then knows at
                # start how far the changelog it already holds goes.
                self.store.set_persisted_offset(TP(changelog, partition), offset)
        consumer = self.app.consumer
        assert isinstance(consumer, BatchingConsumer)
        await consumer.commit_batch(offsets)

    async def _finish_in_flight(self) -> None:
        """Wait until the batch in flight is durable and committed (errors surface here)."""
        task, self._in_flight = self._in_flight, None
        if task is not None:
            await task

    def _expire_idle(self, result: BatchResult) -> None:
        """Look at the next slice of stored states (once per tick interval) and drop the
        idle, expired ones in this batch's writes: the store never grows with every
        conversation ever seen. Decided by the batch's tick time, so a replay decides the
        same."""
        now = result.last_tick_ms
        if self.idle_ttl_ms <= 0 or not now or now < self._next_sweep_ms:
            return
        self._next_sweep_ms = now + int(self.cfg.tick_interval_s * 1000)
        self.engine.expire_idle(
            self.sweeper.next_slice(self._active_partitions(), self.cfg.state_sweep_slice),
            now,
            self.idle_ttl_ms,
            result,
        )
        if result.expired:
            STATES_EXPIRED.inc(result.expired)

    async def _dead_letter(
        self, partition: int, offset: int, key: bytes | None, raw: object, reason: str
    ) -> None:
        EVENTS_HANDLED.labels(SERVICE, "bad_record").inc()
        await DeadLetterWriter(aiokafka_producer(self.app), SERVICE).write(
            source_topic=CHAT_EVENTS.name,
            reason=reason,
            reason_class="bad_record",
            key=(key or b"").decode("utf-8", "replace"),
            partition=partition,
            offset=offset,
            payload=raw if isinstance(raw, bytes) else b"",
        )

    async def tick(self) -> None:
        """Feed this worker's clock into each of its partitions of chat.events."""
        now = now_ms()
        for p in sorted(self._active_partitions()):
            tick_event = ChatEvent(
                kind=ChatEventKind.TICK,
                shop_id="",
                conversation_id="",
                partition_hint=p,
                received_at_ms=now,
            )
            await self.app.producer.send(
                CHAT_EVENTS.name, b"tick", encode(tick_event), p, None, None
            )

    async def report_consumer_lag(self) -> None:
        """bridge_consumer_lag per assigned chat.events partition: end offset minus handled."""
        consumer = self.app.consumer
        assigned = {tp for tp in consumer.assignment() if tp.topic == CHAT_EVENTS.name}
        for gone in self._lag_exported - assigned:
            with contextlib.suppress(KeyError):
                CONSUMER_LAG.remove(GROUP, gone.topic, str(gone.partition))
        self._lag_exported.intersection_update(assigned)
        for tp in assigned:
            try:
                end = consumer.highwater(tp)
                done = self._last_handled.get(tp.partition)
                position = done + 1 if done is not None else await consumer.position(tp)
            except Exception:  # telemetry only; never stop the worker for it
                log.debug("lag report failed", exc_info=True)
                continue
            if end is not None and position is not None:
                CONSUMER_LAG.labels(GROUP, tp.topic, str(tp.partition)).set(max(0, end - position))
                self._lag_exported.add(tp)


def _header_partition(raw: bytes) -> int | None:
    try:
        return state_header(raw)[2]
    except StateFormatError:
        return None


def _chat_record(
    partition: int, rec: ConsumerRecord, bad: list[tuple[int, ConsumerRecord, str]]
) -> ChatRecord | None:
    """The decoded record, or None with the reason added to ``bad`` (to dead-letter)."""
    try:
        chat_event = decode_chat_event(rec.value)
    except (DecodeError, TypeError) as exc:
        bad.append((partition, rec, f"undecodable chat event: {exc}"))
        return None
    return ChatRecord(rec.key or chat_event.conversation_key.encode(), partition, chat_event)
