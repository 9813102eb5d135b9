"""Faust's consumer, with one topic's records handed over as whole fetched batches.

Faust turns every fetched record into a ``Message`` and an ``Event``, routes it
through the conductor and a stream queue, and acks it one by one: about 40 us of
framework per record, most of what separated the consolidator from a plain
aiokafka loop. Here the records of ONE topic (``chat.events``) skip all of that:
:meth:`BatchingConsumer.getmany` passes each fetched ``{tp: [records]}`` of that
topic to the app's batch handler, inside faust's fetcher task, and yields the
other topics' records (the table's changelog during recovery) as faust does.

Faust keeps everything else: the group and its assignor (the changelog stays
co-partitioned with ``chat.events``), pausing and resuming partitions around a
rebalance and recovery, the table and its store, the producer, the worker. The
handler commits the batch's offsets itself (:meth:`commit_batch`) once its
effects are durable (possibly in the background: ``batch_flush`` waits for
that), and a rebalance waits for the batch in flight before partitions are given
up (:meth:`wait_empty`), as faust waits for its streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

import faust
from aiokafka.structs import ConsumerRecord
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

BatchHandler = Callable[[Mapping[TP, list[ConsumerRecord]]], Awaitable[None]]
BatchFlush = Callable[[], Awaitable[None]]


class BatchingConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer; the app's ``batch_topic`` goes to its ``batch_handler``."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._batch_idle = asyncio.Event()
        self._batch_idle.set()

    async def getmany(
        self, timeout: float,  # noqa: ASYNC109 - faust's signature
    ) -> AsyncIterator[tuple[TP, Message]]:
        app = self.app
        topic: str = app.batch_topic  # type: ignore[attr-defined]
        handler: BatchHandler | None = app.batch_handler  # type: ignore[attr-defined]
        fetched_in = app.consumer_generation_id
        records, active = await self._wait_next_records(timeout)
        if records is None or self.should_stop:
            return
        generation = app.consumer_generation_id  # as faust, for the other topics
        if not self.flow_active:
            # What faust does here: a rebalance stopped the flow after this fetch;
            # seek back so nothing fetched now is skipped once the flow resumes.
            await self.perform_seek()
            return
        batch: dict[TP, list[ConsumerRecord]] = {}
        others: dict[TP, list[ConsumerRecord]] = {}
        for tp, recs in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                continue
            (batch if tp.topic == topic else others)[tp] = recs
        if batch:
            if handler is None:
                raise RuntimeError(f"records of {topic} fetched but no batch handler is set")
            if app.consumer_generation_id != fetched_in:
                # A rebalance completed while this fetch was out: these partitions may
                # be another worker's now. Not handled, not committed: whoever holds
                # them reads them again from the committed offset. (A rebalance that
                # begins later waits for the handler: see wait_empty.)
                return
            for tp in batch:
                app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            self._batch_idle.clear()
            try:
                await handler(batch)
            except Exception as exc:
                # Nothing of this batch is committed, so a restart handles it again; a
                # fetcher left running without its handler would silently stop consuming.
                self.log.exception("chat batch handler failed: %r", exc)
                await app.crash(exc)
                return
            finally:
                self._batch_idle.set()
        for tp, message in self.scheduler.iterate(others):
            if not self.flow_active or app.consumer_generation_id != generation:
                break
            app.monitor.track_tp_end_offset(tp, self.highwater(tp))
            yield tp, self._to_message(tp, message)

    async def commit_batch(self, offsets: Mapping[TP, int]) -> bool:
        """Commit ``{tp: next offset}`` for handled batch records; False when the group
        has moved on (a rebalance): the new owner then handles them again."""
        done = bool(offsets) and await self._commit(offsets)
        if done:
            self._committed_offset.update(offsets)
            self.app.monitor.on_tp_commit(dict(offsets))
        return done

    async def wait_empty(self) -> None:
        """Before partitions are given up (rebalance, shutdown): finish the batch in flight,
        including what the handler left to complete in the background (``batch_flush``)."""
        await self._batch_idle.wait()
        flush: BatchFlush | None = self.app.batch_flush  # type: ignore[attr-defined]
        if flush is not None:
            await flush()
        await super().wait_empty()


class BatchingTransport(aiokafka_driver.Transport):
    Consumer = BatchingConsumer


class BatchingApp(faust.App):
    """A faust App whose consumer hands ``batch_topic`` to ``batch_handler`` in batches."""

    batch_topic: str = ""
    batch_handler: BatchHandler | None = None
    batch_flush: BatchFlush | None = None

    def _new_transport(self) -> BatchingTransport:
        return BatchingTransport(self.conf.broker_consumer, self)
