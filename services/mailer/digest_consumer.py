"""The mailer's consume loop: per-key order, cross-key concurrency, rebalance-safe.

Differences from :func:`shared.kafka.consume_keyed_batches`, each closing a way a
digest could be sent twice or lost, or keeping the relay busy:

* before a batch is handled, the :class:`~mailer.outcome_ledger.OutcomeLedger`
  holds the ``mail.outcomes`` partitions of the partitions assigned now (a newly
  assigned one read from its start, one no longer assigned dropped) and catches up
  with them as of now, so outcomes written by another replica (e.g. the previous owner
  of a partition) are seen; a catch-up that fails is retried with backoff while the
  batch waits;
* two batches overlap (:mod:`mailer.batch_pipeline`): batch N+1 is fetched, caught
  up and started while batch N's last sends finish, with each key's records in order
  across batches and offsets committed in batch order, never past an unsent record;
* when partitions are revoked, the listener stops new batches from starting, no new
  SMTP try begins on a revoked partition (its records not yet tried are left to the next
  owner), and it waits for the tries on the wire to finish and be recorded before the
  group moves the partition, so the next owner's catch-up sees those outcomes; waiting
  for the tries alone, not whole batches, keeps that wait short of the revoke timeout.
  A batch fetched before the rebalance completed is dropped unhandled (positions
  restart from the committed offsets, which it does not go past);
* a failed commit (the group already moved on) is logged, not fatal: outcomes are
  what makes a replay harmless, the offset only saves re-reading;
* on ``stopping`` (SIGTERM) no batch starts and no new SMTP try begins; each try
  already on the wire runs to its reply, its outcome is recorded and committed, and
  the records not tried are left uncommitted for the next owner. A process cut while
  it waits for a relay's reply to the end of DATA would resend that mail after restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from mailer.batch_pipeline import BatchPipeline, PartitionLost
from mailer.outcome_ledger import OutcomeLedger
from shared.backoff import RetryPolicy, retry

__all__ = [
    "FinishBatchesBeforeRevoke",
    "PartitionLost",
    "consume_digests",
    "rebalance_timeout_ms",
]

log = logging.getLogger(__name__)

# What the group waits beyond the revoke drain before dropping a member: the drain's
# commit and the rejoin itself.
REBALANCE_MARGIN_S = 15.0


def rebalance_timeout_ms(revoke_timeout_s: float) -> int:
    """The consumer's rebalance timeout for a revoke drain of ``revoke_timeout_s``: the
    group must not hand the partitions to the next owner while the drain still runs."""
    return int((revoke_timeout_s + REBALANCE_MARGIN_S) * 1000)


# Batch N+1 runs while batch N finishes; more would only hold more records in memory
# and make a rebalance wait longer.
BATCHES_IN_FLIGHT = 2


class FinishBatchesBeforeRevoke(ConsumerRebalanceListener):
    """Holds a rebalance until every batch in flight is recorded and committed (bounded
    by ``timeout_s``); no new batch starts from the revoke until the next assignment."""

    def __init__(self, pipeline: BatchPipeline, timeout_s: float) -> None:
        self._pipeline = pipeline
        self._timeout_s = timeout_s
        self.generation = 0  # assignments seen: a batch is fetched under one
        self.open = asyncio.Event()  # set while batches may start
        self.open.set()
        # Partitions being handed over: still assigned until the callback returns, but
        # no new try may begin on them (see ``still_owned`` in consume_digests).
        self.revoking: set[TopicPartition] = set()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.open.clear()
        self.revoking = set(revoked)
        if not await self._pipeline.drained(self._timeout_s):
            # Past this the group moves on anyway; a still-running send can then be
            # repeated by the next owner (same Message-ID; see docs in app.py).
            log.warning(
                "batches still running at revoke; handing partitions over",
                extra={"partitions": len(revoked)},
            )

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.generation += 1
        self.revoking = set()
        self.open.set()
        log.info("partitions assigned", extra={"partitions": len(assigned)})


async def consume_digests(
    consumer: AIOKafkaConsumer,
    topics: list[str],
    ledger: OutcomeLedger,
    handle: Callable[[ConsumerRecord, Callable[[], bool]], Awaitable[None]],
    *,
    max_records: int = 200,
    revoke_timeout_s: float,
    stopping: asyncio.Event | None = None,
) -> None:
    """Consume ``topics`` until ``stopping`` is set (then drain and return); offsets
    commit only after every record's outcome.

    ``handle(record, still_owned)`` may raise :class:`PartitionLost`; that partition's
    offsets are then not committed (in this batch nor the overlapping next one) and its
    records are left to whoever owns it after the rebalance. Any other exception
    propagates (after the batches in flight are cancelled).
    """

    stopping = stopping or asyncio.Event()

    def owned(rec: ConsumerRecord) -> Callable[[], bool]:
        tp = TopicPartition(rec.topic, rec.partition)
        return lambda: (
            not stopping.is_set() and tp not in listener.revoking and tp in consumer.assignment()
        )

    async def handle_owned(rec: ConsumerRecord) -> None:
        await handle(rec, owned(rec))

    async def commit(offsets: dict[TopicPartition, int]) -> None:
        # Partitions handed over after a revoke timeout are not ours to commit.
        assigned = consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning(
                "offset commit refused after a rebalance; outcomes make the replay harmless",
                extra={"error": str(exc)},
            )

    pipeline = BatchPipeline(handle_owned, commit, max_in_flight=BATCHES_IN_FLIGHT)
    listener = FinishBatchesBeforeRevoke(pipeline, revoke_timeout_s)
    consumer.subscribe(topics, listener=listener)
    held = 0  # the generation whose partitions the ledger holds

    async def hold_assigned() -> None:
        await caught_up(ledger, {tp.partition for tp in consumer.assignment()})

    try:
        while not stopping.is_set():
            await pipeline.room()
            batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
            # aiokafka returns only records of the assignment current on return, and
            # the listener counts an assignment only once it is current.
            generation = listener.generation
            if stopping.is_set():
                continue
            if not batches:
                if generation != held:  # idle: read a new assignment's outcomes now
                    await hold_assigned()
                    held = generation
                continue
            # Before each batch, as of now: a previous owner's outcomes for these
            # partitions were written before it let them go (it drained its batches).
            await hold_assigned()
            held = generation
            await listener.open.wait()
            if listener.generation != generation:
                await _unfetch(consumer, batches)
                continue
            pipeline.start(batches, generation)
        # Stopping: the tries on the wire finish and are recorded (the caller bounds
        # how long this may take by cancelling it).
        await pipeline.drained(math.inf)
        log.info("drained: every send in flight finished and recorded")
    finally:
        await pipeline.cancel()


# A catch-up that fails (a loaded broker answering slowly) is tried again, never skipped:
# a batch handled without it could resend what another replica sent, and a crash would
# cut every send in flight.
CATCH_UP_RETRY = RetryPolicy(base_s=0.5, max_s=10.0)


async def caught_up(ledger: OutcomeLedger, assigned: set[int]) -> None:
    """Return once ``ledger`` holds the outcome partitions of the ``assigned`` partition
    numbers (of every input topic) and has caught up with them as of now."""

    async def catch_up(_attempt: int) -> None:
        await ledger.hold(assigned)

    def retrying(exc: BaseException, attempt: int, delay_s: float) -> None:
        log.warning(
            "outcome ledger not caught up; the batch waits for it",
            extra={"attempt": attempt, "error": repr(exc), "delay_s": round(delay_s, 2)},
        )

    await retry(catch_up, CATCH_UP_RETRY, on=(KafkaError, OSError, TimeoutError), on_retry=retrying)


async def _unfetch(
    consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]
) -> None:
    """Leave a batch fetched before a rebalance completed unhandled: its partitions may
    be another member's now. Partitions we still hold are read again from the batch's
    first record, or from where the new assignment put them if that is earlier."""
    log.info(
        "batch fetched before a rebalance left unhandled",
        extra={"records": sum(len(r) for r in batches.values())},
    )
    for tp, recs in batches.items():
        if tp in consumer.assignment() and recs:
            # A further rebalance meanwhile resets the position anyway.
            with contextlib.suppress(IllegalStateError):
                consumer.seek(tp, min(await consumer.position(tp), recs[0].offset))
