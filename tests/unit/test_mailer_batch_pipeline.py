"""The mailer's overlapping batches (mailer/batch_pipeline.py): per-key order across
batches, commits in batch order, never a commit past a record that was not handled;
and the revoke listener that holds a rebalance for every batch in flight."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from mailer.batch_pipeline import BatchPipeline, PartitionLost
from mailer.digest_consumer import FinishBatchesBeforeRevoke

P0 = TopicPartition("mail.digests", 0)
P1 = TopicPartition("mail.digests", 1)


def rec(tp: TopicPartition, offset: int, key: str) -> ConsumerRecord:
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, key.encode(), b"", None, len(key), 0, ()
    )


def batch(*records: ConsumerRecord) -> dict[TopicPartition, list[ConsumerRecord]]:
    out: dict[TopicPartition, list[ConsumerRecord]] = defaultdict(list)
    for r in records:
        out[TopicPartition(r.topic, r.partition)].append(r)
    return dict(out)


class Handler:
    """Records which records started and finished; a held record waits for release()."""

    def __init__(self) -> None:
        self.started: list[tuple[int, int]] = []
        self.finished: list[tuple[int, int]] = []
        self.gates: dict[tuple[int, int], asyncio.Event] = {}
        self.failures: dict[tuple[int, int], BaseException] = {}

    def hold(self, partition: int, offset: int, fail: BaseException | None = None) -> None:
        self.gates[(partition, offset)] = asyncio.Event()
        if fail is not None:
            self.failures[(partition, offset)] = fail

    def release(self, partition: int, offset: int) -> None:
        self.gates[(partition, offset)].set()

    async def __call__(self, record: ConsumerRecord) -> None:
        at = (record.partition, record.offset)
        self.started.append(at)
        if at in self.gates:
            await self.gates[at].wait()
        if at in self.failures:
            raise self.failures[at]
        self.finished.append(at)


class Commits:
    def __init__(self) -> None:
        self.made: list[dict[TopicPartition, int]] = []

    async def __call__(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.sleep(0)
        self.made.append(offsets)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def pipeline() -> tuple[BatchPipeline, Handler, Commits]:
    handler, commits = Handler(), Commits()
    return BatchPipeline(handler, commits, max_in_flight=2), handler, commits


async def test_the_next_batch_starts_other_keys_while_the_previous_batch_still_sends() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0)
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P1, 0, "b")), generation=1)
    await settle()
    assert (1, 0) in handler.finished and (0, 0) not in handler.finished
    handler.release(0, 0)
    assert await pipe.drained(1.0)
    assert commits.made == [{P0: 1}, {P1: 1}]


async def test_a_keys_records_in_the_next_batch_wait_for_that_key_in_the_previous_one() -> None:
    pipe, handler, _ = pipeline()
    handler.hold(0, 0)
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P0, 1, "a"), rec(P1, 0, "b")), generation=1)
    await settle()
    assert (0, 1) not in handler.started, "a's second record started before its first ended"
    handler.release(0, 0)
    assert await pipe.drained(1.0)
    assert handler.finished.index((0, 0)) < handler.finished.index((0, 1))


async def test_offsets_commit_in_batch_order_when_the_later_batch_finishes_first() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0)
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P1, 0, "b"), rec(P1, 1, "c")), generation=1)
    await settle()
    assert handler.finished == [(1, 0), (1, 1)] and commits.made == []
    handler.release(0, 0)
    assert await pipe.drained(1.0)
    assert commits.made == [{P0: 1}, {P1: 2}]


async def test_a_lost_partition_is_committed_neither_in_its_batch_nor_the_overlapping_one() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0, fail=PartitionLost("dg-a"))
    pipe.start(batch(rec(P0, 0, "a"), rec(P1, 0, "b")), generation=1)
    pipe.start(batch(rec(P0, 1, "c"), rec(P1, 1, "d")), generation=1)
    await settle()
    handler.release(0, 0)
    assert await pipe.drained(1.0)
    await pipe.room()  # a lost partition is not a failure of the process
    # c (another key of P0) was handled, but committing P0 past a would skip a.
    assert (0, 1) in handler.finished
    assert commits.made == [{P1: 1}, {P1: 2}]


async def test_a_key_after_a_lost_record_waits_for_the_replay_in_the_same_generation() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0, fail=PartitionLost("dg-a"))
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P0, 1, "a"), rec(P1, 0, "b")), generation=1)
    handler.release(0, 0)
    assert await pipe.drained(1.0)
    assert (0, 1) not in handler.started, "a's later record was sent before its earlier one"
    assert commits.made == [{P1: 1}]


async def test_a_later_batch_of_the_same_generation_still_does_not_commit_a_lost_partition() -> (
    None
):
    pipe, handler, commits = pipeline()
    handler.hold(0, 0, fail=PartitionLost("dg-a"))
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P1, 0, "b")), generation=1)
    handler.release(0, 0)
    await pipe.room()
    pipe.start(batch(rec(P0, 1, "c"), rec(P1, 1, "d")), generation=1)
    assert await pipe.drained(1.0)
    assert commits.made == [{P1: 1}, {P1: 2}]


async def test_after_a_rebalance_the_refetched_records_of_a_lost_partition_are_handled() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0, fail=PartitionLost("dg-a"))
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    # Generation 2 fetched P0 again from its committed offset while batch 1 still ran.
    handler.hold(0, 10)
    pipe.start(batch(rec(P0, 10, "a")), generation=2)
    handler.release(0, 0)
    await settle()
    assert (0, 10) in handler.started
    handler.release(0, 10)
    assert await pipe.drained(1.0)
    assert commits.made == [{P0: 11}]


async def test_a_handler_failure_propagates_and_no_later_batch_commits() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0, fail=RuntimeError("ledger write failed"))
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P1, 0, "b")), generation=1)
    await settle()
    assert handler.finished == [(1, 0)]
    handler.release(0, 0)
    with pytest.raises(RuntimeError, match="ledger write failed"):
        await asyncio.wait_for(pipe.room(), 1.0)
    await pipe.drained(1.0)
    assert commits.made == []
    await pipe.cancel()


async def test_a_failure_in_the_later_batch_is_raised_while_the_earlier_one_still_runs() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0)
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    handler.hold(1, 0, fail=RuntimeError("compose crashed"))
    pipe.start(batch(rec(P1, 0, "b")), generation=1)
    handler.release(1, 0)
    with pytest.raises(RuntimeError, match="compose crashed"):
        await asyncio.wait_for(pipe.room(), 1.0)
    await pipe.cancel()
    assert commits.made == []


async def test_no_more_than_two_batches_are_in_flight() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0)
    handler.hold(1, 0)
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P1, 0, "b")), generation=1)
    with pytest.raises(RuntimeError):
        pipe.start(batch(rec(P1, 1, "c")), generation=1)
    room = asyncio.create_task(pipe.room())
    await settle()
    assert not room.done()
    handler.release(1, 0)  # the later batch alone cannot commit before the earlier one
    await settle()
    assert not room.done()
    handler.release(0, 0)
    await asyncio.wait_for(room, 1.0)
    assert pipe.in_flight <= 1
    assert await pipe.drained(1.0)
    assert commits.made == [{P0: 1}, {P1: 1}]


async def test_drained_waits_for_every_batch_in_flight() -> None:
    pipe, handler, commits = pipeline()
    handler.hold(0, 0)
    handler.hold(1, 0)
    pipe.start(batch(rec(P0, 0, "a")), generation=1)
    pipe.start(batch(rec(P1, 0, "b")), generation=1)
    handler.release(0, 0)
    assert not await pipe.drained(0.05), "drained with the second batch still sending"
    assert commits.made == [{P0: 1}]
    handler.release(1, 0)
    assert await pipe.drained(1.0)
    assert commits.made == [{P0: 1}, {P1: 1}]


async def test_a_revoke_stops_new_batches_and_waits_for_every_batch_in_flight() -> None:
    pipe, handler, commits = pipeline()
    listener = FinishBatchesBeforeRevoke(pipe, timeout_s=5.0)
    handler.hold(0, 0)
    handler.hold(1, 0)
    pipe.start(batch(rec(P0, 0, "a")), generation=listener.generation)
    pipe.start(batch(rec(P1, 0, "b")), generation=listener.generation)
    revoke = asyncio.create_task(listener.on_partitions_revoked({P0, P1}))
    await settle()
    assert not listener.open.is_set(), "batches may still start during a revoke"
    handler.release(0, 0)
    await settle()
    assert not revoke.done(), "the revoke returned with the second batch still sending"
    handler.release(1, 0)
    await asyncio.wait_for(revoke, 1.0)
    assert commits.made == [{P0: 1}, {P1: 1}]
    generation = listener.generation
    await listener.on_partitions_assigned({P0})
    assert listener.open.is_set() and listener.generation == generation + 1
