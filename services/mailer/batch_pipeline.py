"""Overlapping consume batches: per-key order across batches, commits in batch order.

The consume loop (:mod:`mailer.digest_consumer`) fetches batch N+1 while batch N's
last sends finish, so the SMTP connections are not left idle through a commit, a
fetch and an outcome catch-up at every batch boundary. What stays true:

* a key's records in batch N+1 start only after that key's records in batch N are
  done (each key is a chain; a batch's chain for a key waits for the previous one);
* a batch's offsets are committed only after all of its records are handled AND the
  previous batch's commit step is done, so commits go out in batch order;
* a record that was not handled (:class:`PartitionLost`, or its key's earlier record
  was not) makes its partition *unsafe*: that partition's offsets are not committed,
  in this batch nor in any later batch of the same generation, whose fetch position
  is past the unhandled record. A rebalance (new generation) resets positions to the
  committed offsets, so a batch fetched after it starts at or before that record and
  commits normally;
* any other exception is fatal: it propagates from :meth:`BatchPipeline.reap`, and no
  later batch commits anything (crash, restart, replay).

No Kafka client here: records in, ``handle`` and ``commit`` injected, so the rules
are unit-tested without a broker.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition

from shared.errors import BridgeError


class PartitionLost(BridgeError):
    """Raised by a handler that finds its record's partition is no longer ours."""


class KeyBlocked(BridgeError):
    """A key's records were left unhandled because its earlier records were not handled."""


# Outcomes of a chain that leave records for a replay instead of failing the process.
_UNHANDLED = (PartitionLost, KeyBlocked)


@dataclass(eq=False)
class _Batch:
    generation: int
    offsets: dict[TopicPartition, int]  # next offset to commit per partition
    task: asyncio.Task[None] | None = None
    # Partitions whose offsets must not be committed (see module docstring).
    unsafe: set[TopicPartition] = field(default_factory=set)


@dataclass(eq=False)
class _Chain:
    generation: int
    task: asyncio.Task[None]


class BatchPipeline:
    """Runs batches of records with per-key chains, at most ``max_in_flight`` at once.

    ``handle(record)`` handles one record (may raise :class:`PartitionLost`);
    ``commit(offsets)`` commits ``{partition: next offset}``. ``generation`` of a batch
    is the consumer group assignment it was fetched under.
    """

    def __init__(
        self,
        handle: Callable[[ConsumerRecord], Awaitable[None]],
        commit: Callable[[dict[TopicPartition, int]], Awaitable[None]],
        *,
        max_in_flight: int = 2,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._handle = handle
        self._commit = commit
        self._max_in_flight = max_in_flight
        self._batches: deque[_Batch] = deque()
        self._tails: dict[bytes, _Chain] = {}  # each key's latest chain

    @property
    def in_flight(self) -> int:
        """Batches started whose commit step has not been reaped."""
        return len(self._batches)

    def start(
        self, records: Mapping[TopicPartition, Sequence[ConsumerRecord]], generation: int
    ) -> None:
        """Start handling one fetched batch. The caller first waits for :meth:`room`."""
        if len(self._batches) >= self._max_in_flight:
            raise RuntimeError("no room for another batch; await room() first")
        by_key: dict[bytes, list[ConsumerRecord]] = {}
        for recs in records.values():
            for rec in recs:
                by_key.setdefault(rec.key or b"", []).append(rec)
        batch = _Batch(
            generation, {tp: recs[-1].offset + 1 for tp, recs in records.items() if recs}
        )
        chains: list[tuple[list[ConsumerRecord], asyncio.Task[None]]] = []
        for key, recs in by_key.items():
            chain = _Chain(
                generation,
                asyncio.create_task(self._run_chain(recs, generation, self._tails.get(key))),
            )
            self._tails[key] = chain
            chain.task.add_done_callback(functools.partial(self._forget, key, chain))
            chains.append((recs, chain.task))
        previous = self._batches[-1] if self._batches else None
        batch.task = asyncio.create_task(self._run_batch(batch, chains, previous))
        self._batches.append(batch)

    async def room(self) -> None:
        """Wait until another batch may start; raises the first fatal batch failure."""
        self._raise_failures()
        while len(self._batches) >= self._max_in_flight:
            running = [b.task for b in self._batches if b.task is not None and not b.task.done()]
            if running:
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            self._raise_failures()

    async def drained(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until every batch in flight has finished its
        commit step; True when they all have. Failures stay for :meth:`room` to raise."""
        tasks = [b.task for b in self._batches if b.task is not None and not b.task.done()]
        if not tasks:
            return True
        _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        return not pending

    async def cancel(self) -> None:
        """Cancel every batch and chain still running (the process is stopping)."""
        tasks = [b.task for b in self._batches if b.task is not None]
        tasks += [c.task for c in self._tails.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._batches.clear()
        self._tails.clear()

    def _raise_failures(self) -> None:
        # A fatal failure in any batch is raised at once (a later batch can fail while
        # an earlier one still waits out a relay outage); otherwise finished batches
        # are reaped in batch order, so in_flight counts every batch not yet reaped.
        for batch in self._batches:
            task = batch.task
            if task is not None and task.done() and not task.cancelled() and task.exception():
                raise task.exception()  # type: ignore[misc]
        while self._batches and self._batches[0].task is not None and self._batches[0].task.done():
            task = self._batches.popleft().task
            assert task is not None
            if task.cancelled():
                raise asyncio.CancelledError
            exc = task.exception()
            if exc is not None:
                raise exc

    def _forget(self, key: bytes, chain: _Chain, _done: asyncio.Task[None]) -> None:
        if self._tails.get(key) is chain:
            del self._tails[key]

    async def _run_chain(
        self, records: list[ConsumerRecord], generation: int, previous: _Chain | None
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous.task])
            failed = previous.task.cancelled() or previous.task.exception() is not None
            # Same generation: our records come after its unhandled ones, so they wait
            # for a replay too. A newer generation was fetched from the committed
            # offsets (at or before the unhandled record) and goes ahead, in order.
            if failed and (
                previous.generation == generation
                or previous.task.cancelled()
                or not isinstance(previous.task.exception(), _UNHANDLED)
            ):
                raise KeyBlocked(records[0].key)
        for rec in records:
            await self._handle(rec)

    async def _run_batch(
        self,
        batch: _Batch,
        chains: list[tuple[list[ConsumerRecord], asyncio.Task[None]]],
        previous: _Batch | None,
    ) -> None:
        results = await asyncio.gather(*(task for _recs, task in chains), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, _UNHANDLED):
                raise result
        for (recs, _task), result in zip(chains, results, strict=True):
            if isinstance(result, BaseException):
                batch.unsafe.update(TopicPartition(r.topic, r.partition) for r in recs)
        if previous is not None and previous.task is not None:
            await asyncio.wait([previous.task])
            if previous.task.cancelled() or previous.task.exception() is not None:
                return  # never commit after a failed batch: it propagates from room()
            if previous.generation == batch.generation:
                batch.unsafe |= previous.unsafe
        offsets = {tp: offset for tp, offset in batch.offsets.items() if tp not in batch.unsafe}
        if offsets:
            await self._commit(offsets)
