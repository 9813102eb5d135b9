"""Exactly-once digests through kill -9 and rebalances, on a real broker and real processes.

Every buyer message must end in exactly one distinct digest (distinct by digest id,
as the mailer dedups), none lost, none in two digests.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from tests.integration.consolidator_harness import ConsolidatorRig, consolidator_rig, wait_for

pytestmark = pytest.mark.integration


async def _produce_load(
    rig: ConsolidatorRig, prefix: str, *, seconds: float, rate: int, conversations: int
) -> list[str]:
    """Buyer messages at ``rate``/s over ``conversations`` conversations; returns their ids."""
    sent: list[str] = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    n = 0
    while loop.time() < end:
        for _ in range(rate // 10):
            mid = f"{prefix}-{n}"
            await rig.buyer("shop1", f"{prefix}-c{n % conversations}", mid, n)
            sent.append(mid)
            n += 1
        await asyncio.sleep(0.1)
    await rig.producer.flush()
    return sent


def _assert_exactly_once(rig: ConsolidatorRig, sent: list[str]) -> None:
    counts = Counter(rig.digests.message_ids())
    lost = [m for m in sent if counts[m] == 0]
    twice = [m for m, c in counts.items() if c > 1]
    assert not lost and not twice, (
        f"lost {len(lost)} (e.g. {lost[:3]}), in two digests {len(twice)} (e.g. {twice[:3]}); "
        f"{len(rig.digests.records)} records, {len(rig.digests.distinct)} distinct\n{rig.logs()}"
    )
    _assert_repeated_ids_are_resends(rig)


def _assert_repeated_ids_are_resends(rig: ConsolidatorRig) -> None:
    """A record repeating a digest id must be that digest released again after a replay.

    The mailer drops a repeated id, so a different digest under an id already used (other
    messages, other texts, other threading) would never be emailed. Only the release time
    may differ: a replayed decision is taken again, later.
    """
    first: dict[str, object] = {}
    for record in rig.digests.records:
        seen = replace(record, created_at_ms=0)
        assert first.setdefault(record.digest_id, seen) == seen, (
            f"digest id {record.digest_id} names two different digests:\n"
            f"{first[record.digest_id]}\n{seen}"
        )


async def test_kill_9_at_random_moments_loses_and_duplicates_no_buyer_message(
    tmp_path: Path,
) -> None:
    rnd = random.Random(6)
    async with consolidator_rig(tmp_path) as rig:
        procs = rig.start_consolidator()
        load = asyncio.create_task(_produce_load(rig, "k", seconds=16, rate=400, conversations=300))
        for _ in range(3):
            await asyncio.sleep(rnd.uniform(2.5, 4.5))
            procs.kill("consolidator", signal.SIGKILL)
            await asyncio.sleep(rnd.uniform(0.0, 0.5))
            procs.start("consolidator")
        sent = await load
        await wait_for(lambda: set(rig.digests.message_ids()) >= set(sent), 45)
        await asyncio.sleep(1.5)  # let any late duplicate show up
        _assert_exactly_once(rig, sent)


async def test_two_processes_with_a_rebalance_in_the_middle_lose_and_duplicate_nothing(
    tmp_path: Path,
) -> None:
    async with consolidator_rig(tmp_path) as rig:
        first = rig.start_consolidator()
        load = asyncio.create_task(_produce_load(rig, "r", seconds=14, rate=300, conversations=200))
        await asyncio.sleep(3)
        rig.start_consolidator()  # joins: partitions move to it
        await asyncio.sleep(6)
        first.kill("consolidator", signal.SIGKILL)  # leaves: its partitions move back
        sent = await load
        await wait_for(lambda: set(rig.digests.message_ids()) >= set(sent), 45)
        await asyncio.sleep(1.5)
        _assert_exactly_once(rig, sent)


async def test_a_worker_keeping_its_partitions_through_a_rebalance_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    """The first worker keeps half its partitions and holds the other half as standbys.

    On Tansu its recovery ends before the last changelog batch of each partition it
    keeps; faust buffers those records and applies them when the joiner's changelog
    writes (its standbys) fill the buffer, seconds later, over newer states.
    """
    async with consolidator_rig(tmp_path) as rig:
        rig.start_consolidator()
        load = asyncio.create_task(_produce_load(rig, "s", seconds=20, rate=300, conversations=300))
        # Joined and handling before the second starts: else both join one first generation.
        assert await wait_for(lambda: bool(rig.digests.records), 30)
        rig.start_consolidator()  # joins: half the partitions move to it, no one leaves
        sent = await load
        await wait_for(lambda: set(rig.digests.message_ids()) >= set(sent), 45)
        await asyncio.sleep(1.5)
        _assert_exactly_once(rig, sent)
