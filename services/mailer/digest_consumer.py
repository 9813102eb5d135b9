"""The mailer's consume loop: per-key order, cross-key concurrency, rebalance-safe.

Differences from :func:`shared.kafka.consume_keyed_batches`, each closing a way a
digest could be sent twice or lost:

* before a batch is handled, the :class:`~mailer.outcome_ledger.OutcomeLedger`
  catches up with ``mail.outcomes`` as of now, so outcomes written by another
  replica (e.g. the previous owner of a partition) are seen;
* when partitions are revoked, the listener waits for the batch in flight to
  finish (its outcomes recorded, its offsets committed) before the group moves the
  partition, so the next owner's catch-up sees those outcomes;
* a failed commit (the group already moved on) is logged, not fatal: outcomes are
  what makes a replay harmless, the offset only saves re-reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from mailer.outcome_ledger import OutcomeLedger


class PartitionLost(Exception):
    """Raised by a handler that finds its record's partition is no longer ours."""

log = logging.getLogger(__name__)


class FinishBatchBeforeRevoke(ConsumerRebalanceListener):
    """Holds a rebalance until the batch in flight is recorded (bounded by ``timeout_s``)."""

    def __init__(self, idle: asyncio.Event, timeout_s: float) -> None:
        self._idle = idle
        self._timeout_s = timeout_s

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), self._timeout_s)
        except TimeoutError:
            # Past this the group moves on anyway; a still-running send can then be
            # repeated by the next owner (same Message-ID; see docs in app.py).
            log.warning("batch still running at revoke; handing partitions over",
                        extra={"partitions": len(revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": len(assigned)})


async def consume_digests(consumer: AIOKafkaConsumer, topics: list[str], ledger: OutcomeLedger,
                          handle: Callable[[ConsumerRecord, Callable[[], bool]], Awaitable[None]],
                          *,
                          max_records: int = 200, revoke_timeout_s: float = 60.0) -> None:
    """Consume ``topics`` forever; offsets commit only after every record's outcome.

    ``handle(record, still_owned)`` may raise :class:`PartitionLost`; the batch is then
    not committed and fetching resumes from the current assignment.
    """
    idle = asyncio.Event()
    idle.set()
    consumer.subscribe(topics, listener=FinishBatchBeforeRevoke(idle, revoke_timeout_s))
    while True:
        batches = await consumer.getmany(timeout_ms=500, max_records=max_records)
        if not batches:
            continue
        idle.clear()
        try:
            await ledger.catch_up()
            by_key: dict[bytes, list[ConsumerRecord]] = defaultdict(list)
            for records in batches.values():
                for rec in records:
                    by_key[rec.key or b""].append(rec)

            def owner_check(rec: ConsumerRecord) -> Callable[[], bool]:
                tp = TopicPartition(rec.topic, rec.partition)
                return lambda: tp in consumer.assignment()

            async def in_order(records: list[ConsumerRecord]) -> None:
                for rec in records:
                    await handle(rec, owner_check(rec))

            results = await asyncio.gather(*(in_order(recs) for recs in by_key.values()),
                                           return_exceptions=True)
            lost = [r for r in results if isinstance(r, PartitionLost)]
            failures = [r for r in results if isinstance(r, BaseException)
                        and not isinstance(r, PartitionLost)]
            if failures:
                raise failures[0]
            if lost:
                # Another member owns some of these now; it will replay them, and the
                # ledger tells it what was already sent. Fetch afresh from what we own.
                log.warning("partition lost mid-batch; leaving the rest to its new owner",
                            extra={"records": len(lost)})
                continue
            try:
                await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})
            except (CommitFailedError, IllegalStateError) as exc:
                log.warning("offset commit refused after a rebalance; outcomes make the "
                            "replay harmless", extra={"error": str(exc)})
        finally:
            idle.set()
