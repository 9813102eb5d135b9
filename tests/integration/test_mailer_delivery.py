"""The running mailer process against a relay that fails: every digest arrives once.

(Whether what it sends verifies with DKIM: tests/integration/test_dkim_sent_mail.py.)

Real parts only: a broker of its own (so the session stack's mailer
cannot take these digests), the mailer as a subprocess (``python -m mailer``), and
an aiosmtpd relay in the test loop that can answer 451 or stop listening. Mails are
counted by ``X-Bridge-Digest-Id``.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from shared.compacted_topic import replay_topic
from shared.events import ChatContent, Digest, DigestMessage
from shared.topics import DEAD_LETTER, MAIL_DIGESTS, MAIL_OUTCOMES
from tests.mailer_run import Mailers, Relay, produce
from tests.polling import eventually
from tests.private_broker import private_broker

pytestmark = pytest.mark.integration


def make_digest(run: str, n: int) -> Digest:
    return Digest(
        digest_id=f"dg-{run}-{n:04d}",
        shop_id=f"shop-{run}",
        conversation_id=f"conv-{n % 40}",
        buyer_id=f"buyer-{n}",
        buyer_name="Ana 🧦",
        shop_name="Sunny Socks",
        messages=(
            DigestMessage(
                f"m-{run}-{n}", 1_764_070_000_000 + n, ChatContent(text=f"Is order {n} shipped? 📦")
            ),
        ),
        destination_email="owner@sunnysocks.example",
    )


async def wait_until(probe: Callable[[], bool], timeout_s: float, what: str) -> None:
    await eventually(probe, timeout_s=timeout_s, what=what)


@pytest_asyncio.fixture(scope="module")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    # Its own broker: the session stack's mailer (group bridge-mailer) would otherwise
    # consume these digests and write their outcomes, and ours would rightly skip them.
    b = private_broker(tmp_path_factory.mktemp("mailer-broker"))
    await b.start_with_topics()
    try:
        yield b.bootstrap
    finally:
        b.stop()


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[Relay]:
    r = Relay()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def dead_letters(bootstrap: str) -> dict[str, str]:
    import orjson

    found: dict[str, str] = {}

    def apply(rec) -> None:  # type: ignore[no-untyped-def]
        letter = orjson.loads(rec.value)
        found[letter["key"]] = letter["reason"]

    await replay_topic(bootstrap, DEAD_LETTER.name, apply)
    return found


async def outcomes(bootstrap: str) -> dict[str, str]:
    import orjson

    found: dict[str, str] = {}

    def apply(rec) -> None:  # type: ignore[no-untyped-def]
        found[rec.key.decode()] = orjson.loads(rec.value)["status"]

    await replay_topic(bootstrap, MAIL_OUTCOMES.name, apply)
    return found


async def test_relay_outage_under_load_ends_with_every_digest_delivered_once(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    digests = [make_digest(run, n) for n in range(200)]
    mailers = Mailers(broker, relay, tmp_path, {})
    await mailers.start()
    try:
        await produce(broker, digests[:60])
        await wait_until(lambda: sum(relay.counts.values()) >= 30, 30, "first mails")
        # Outage part 1: the relay answers 451 to everything.
        relay.temp_fail = True
        await produce(broker, digests[60:130])
        await asyncio.sleep(2.0)
        # Outage part 2: the relay is gone (connection refused, open connections cut).
        relay.temp_fail = False
        await relay.stop()
        await produce(broker, digests[130:])
        await asyncio.sleep(2.5)
        assert sum(relay.counts.values()) < 200, "the outage did not hold anything back"
        await relay.start()
        expected = {d.digest_id for d in digests}
        await wait_until(lambda: expected <= set(relay.counts), 60, "every digest after the outage")
        await asyncio.sleep(1.5)  # anything doubled would arrive now
        assert relay.refused > 0
        lost = expected - set(relay.counts)
        doubled = {k: v for k, v in relay.counts.items() if k in expected and v > 1}
        assert not lost and not doubled, (lost, doubled, mailers.logs())
        recorded = await outcomes(broker)
        assert all(recorded.get(d) == "sent" for d in expected)
    finally:
        mailers.procs.stop_all()


async def test_kill_9_mid_load_then_restart_loses_nothing_and_repeats_only_in_flight_sends(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    digests = [make_digest(run, n) for n in range(200)]
    expected = {d.digest_id for d in digests}
    relay.delay_s = 0.01
    # One batch for the whole load, so the kill lands mid-batch (not between batches,
    # where everything in flight has its outcome and nothing can repeat).
    mailers = Mailers(
        broker,
        relay,
        tmp_path,
        {
            "BRIDGE_SMTP_POOL_SIZE": "4",
            "BRIDGE_MAILER_CONCURRENCY": "8",
            "BRIDGE_MAILER_BATCH_RECORDS": "500",
        },
    )
    await mailers.start()
    try:
        await produce(broker, digests)
        await wait_until(lambda: sum(relay.counts.values()) >= 60, 30, "mails before the kill")
        mailers.procs.kill("mailer", signal.SIGKILL)
        before_restart = sum(relay.counts.values())
        assert before_restart < 200, "the kill came too late to test anything"
        await mailers.start()
        await wait_until(lambda: expected <= set(relay.counts), 60, "every digest after restart")
        await asyncio.sleep(1.5)
        lost = expected - set(relay.counts)
        doubled = {k: v for k, v in relay.counts.items() if k in expected and v > 1}
        print(
            f"\nkill -9 at {before_restart}/200 delivered: lost={len(lost)} doubled={len(doubled)}"
        )
        assert not lost, (lost, mailers.logs())
        # Only sends in flight at the kill can repeat: at most the send concurrency
        # (BRIDGE_MAILER_CONCURRENCY=8), each exactly once more, with the same Message-ID.
        assert len(doubled) <= 8 and all(v == 2 for v in doubled.values()), doubled
        assert all(len(relay.message_ids[k]) == 1 for k in doubled)
    finally:
        mailers.procs.stop_all()


async def test_a_second_replica_joining_mid_load_sends_nothing_twice(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    """The join lands while the first replica's two connections wait seconds for their
    250 (longer than the session timeout): the group must wait for the first to let go,
    and the second must not resend what the first is still sending."""
    run = uuid.uuid4().hex[:8]
    digests = [make_digest(run, n) for n in range(200)]
    expected = {d.digest_id for d in digests}
    # A slow relay until the second replica has sent something: ~15 s of work for the first
    # alone, so the join (process start, group rebalance) happens mid-load even on a loaded
    # machine; then fast, to finish.
    relay.delay_s = 0.15
    small = {"BRIDGE_SMTP_POOL_SIZE": "2", "BRIDGE_MAILER_BATCH_RECORDS": "16"}
    first = Mailers(broker, relay, tmp_path / "a", small)
    second = Mailers(broker, relay, tmp_path / "b", small)
    await first.start()
    try:
        await produce(broker, digests)
        await wait_until(lambda: sum(relay.counts.values()) >= 20, 30, "mails before the join")
        relay.reply_stall_s, relay.stall_replies = 8.0, 2  # both of the first's sessions
        await second.start()  # the group rebalances while the first is mid-batch
        for _ in range(150):
            if await sent_count(second.ports.mailer) > 0 or expected <= set(relay.counts):
                break
            await asyncio.sleep(0.2)
        relay.delay_s = 0.01
        await wait_until(lambda: expected <= set(relay.counts), 60, "every digest")
        await asyncio.sleep(1.5)
        doubled = {k: v for k, v in relay.counts.items() if k in expected and v > 1}
        assert not doubled, (doubled, first.logs(), second.logs())
        sent_by_second = await sent_count(second.ports.mailer)
        print(f"\nreplica join: second replica sent {sent_by_second}/200, doubled={len(doubled)}")
        assert sent_by_second > 0, "the rebalance never gave the second replica any work"
    finally:
        first.procs.stop_all()
        second.procs.stop_all()


async def live_outcomes_by_partition(bootstrap: str) -> dict[int, int]:
    """How many ids each ``mail.outcomes`` partition holds (newest record not a tombstone)."""
    newest: dict[tuple[int, str], bool] = {}

    def apply(rec) -> None:  # type: ignore[no-untyped-def]
        newest[(rec.partition, rec.key.decode())] = rec.value is not None

    await replay_topic(bootstrap, MAIL_OUTCOMES.name, apply)
    counts: dict[int, int] = {}
    for (partition, _key), live in newest.items():
        counts[partition] = counts.get(partition, 0) + live
    return counts


async def ledger_keys(port: int) -> dict[int, float]:
    """The outcome ledger's keys in memory, by partition held (its metric)."""
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    held: dict[int, float] = {}
    for line in text.splitlines():
        if line.startswith("bridge_idempotency_ledger_keys{") and MAIL_OUTCOMES.name in line:
            labels, value = line.rsplit(" ", 1)
            partition = int(labels.split('partition="', 1)[1].split('"', 1)[0])
            held[partition] = float(value)
    return held


async def test_two_replicas_hold_only_their_partitions_outcomes_and_a_survivor_sends_nothing_twice(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    digests = [make_digest(run, n) for n in range(80)]  # 40 conversations: every partition
    first = Mailers(broker, relay, tmp_path / "a", {})
    second = Mailers(broker, relay, tmp_path / "b", {})
    every = set(range(MAIL_DIGESTS.partitions))
    await first.start()
    await second.start()
    try:

        async def split_between_both() -> tuple[dict[int, float], dict[int, float]] | None:
            a, b = await ledger_keys(first.ports.mailer), await ledger_keys(second.ports.mailer)
            return (a, b) if a and b and set(a) | set(b) == every and set(a) != every else None

        await eventually(split_between_both, timeout_s=60, what="both replicas assigned")
        await produce(broker, digests)
        expected = {d.digest_id for d in digests}
        await wait_until(lambda: expected <= set(relay.counts), 60, "every digest")

        async def views_match_the_topic() -> tuple[dict[int, float], dict[int, float]] | None:
            on_topic = await live_outcomes_by_partition(broker)
            a, b = await ledger_keys(first.ports.mailer), await ledger_keys(second.ports.mailer)
            each_exact = all(n == on_topic.get(p, 0) for view in (a, b) for p, n in view.items())
            return (a, b) if each_exact and set(a) | set(b) == every else None

        a, b = await eventually(views_match_the_topic, timeout_s=30, what="ledger = topic")
        # Each holds its partitions' ids only (mail.notices' 4 partitions are assigned on
        # their own, so the two may share a number or two): never the whole ledger.
        assert set(a) != every and set(b) != every, (a, b)
        total = sum((await live_outcomes_by_partition(broker)).values())
        print(
            f"\nledger split: first {sum(a.values()):.0f} + second {sum(b.values()):.0f} of {total}"
        )
        assert sum(a.values()) < total and sum(b.values()) < total

        second.procs.kill("mailer", signal.SIGKILL)  # idle: nothing in flight to repeat

        async def survivor_holds_everything() -> bool:
            return set(await ledger_keys(first.ports.mailer)) == every

        await eventually(survivor_holds_everything, timeout_s=60, what="partitions moved")
        # A replay of every digest (all now the survivor's) and some new ones.
        fresh = [make_digest(run, n) for n in range(80, 100)]
        await produce(broker, digests + fresh)
        expected |= {d.digest_id for d in fresh}
        await wait_until(lambda: expected <= set(relay.counts), 60, "the new digests")
        await asyncio.sleep(1.5)  # a replayed digest sent again would arrive now
        doubled = {k: v for k, v in relay.counts.items() if k in expected and v > 1}
        assert not doubled, (doubled, first.logs())
    finally:
        first.procs.stop_all()
        second.procs.stop_all()


async def sent_count(port: int) -> float:
    async with httpx.AsyncClient(timeout=5) as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("bridge_events_handled_total") and 'outcome="sent"' in line
    )


async def test_a_permanent_5xx_is_dead_lettered_with_the_reason_and_recorded_as_failed(
    broker: str, relay: Relay, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    digests = [make_digest(run, n) for n in range(5)]
    refused = digests[2].digest_id
    relay.refuse.add(refused)
    mailers = Mailers(broker, relay, tmp_path, {})
    await mailers.start()
    try:
        await produce(broker, digests)
        others = {d.digest_id for d in digests} - {refused}
        await wait_until(lambda: others <= set(relay.counts), 30, "the deliverable digests")
        deadline = time.monotonic() + 15
        while refused not in (letters := await dead_letters(broker)):
            assert time.monotonic() < deadline, "no dead letter for the refused digest"
            await asyncio.sleep(0.3)
        assert "550" in letters[refused] and "does not exist" in letters[refused]
        recorded = await outcomes(broker)
        assert recorded[refused] == "failed"
        assert relay.refused == 1, "a permanent failure was retried"
        assert all(recorded[d] == "sent" for d in others)
    finally:
        mailers.procs.stop_all()
