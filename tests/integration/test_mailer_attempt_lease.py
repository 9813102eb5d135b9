"""A digest found with another process's recent ``attempting`` mark and no outcome is left
to that process for the attempt lease: the relay gets it once, from whoever was sending it.
Past the lease, the process is taken for dead and the mail is sent again (same Message-ID).

The real mailer handles the digest against a real relay on the real broker; the other
process is played by writing its ``attempting`` mark (and, later, its ``sent`` outcome) to
``mail.outcomes``, as a mailer does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer

from mailer.app import Mailer
from mailer.outcome_ledger import ATTEMPTING
from shared.codec import encode
from shared.events import ChatContent, Digest, DigestMessage, MailOutcome
from shared.logging import now_ms
from shared.topics import MAIL_DIGESTS, MAIL_OUTCOMES
from tests.mailer_run import Relay, mailer_in_loop

pytestmark = pytest.mark.integration

LEASE_S = 4.0
PARTITION = 0  # the digests' mail.digests partition, so their outcomes' too


@dataclass
class Run:
    mailer: Mailer
    producer: AIOKafkaProducer
    relay: Relay


@pytest.fixture
async def run(kafka_bootstrap: str) -> AsyncIterator[Run]:
    relay = Relay()
    await relay.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with mailer_in_loop(
            kafka_bootstrap, relay, producer, {PARTITION}, mailer_attempt_lease_s=LEASE_S
        ) as mailer:
            yield Run(mailer, producer, relay)
    finally:
        await producer.stop()
        await relay.stop()


def digest() -> Digest:
    run = uuid.uuid4().hex[:8]
    return Digest(
        digest_id=f"dg-{run}",
        shop_id=f"shop-{run}",
        conversation_id="conv-1",
        buyer_id="buyer-1",
        buyer_name="Ana",
        messages=(DigestMessage(f"m-{run}", 1_764_070_000_000, ChatContent(text="hi")),),
        destination_email="owner@sunnysocks.example",
    )


async def record_outcome(run: Run, d: Digest, status: str, at_ms: int) -> None:
    """Write what another mailer process writes for ``d``."""
    outcome = MailOutcome(d.digest_id, d.shop_id, d.conversation_id, status, at_ms=at_ms)
    await run.producer.send_and_wait(
        MAIL_OUTCOMES.name,
        encode(outcome),
        key=d.digest_id.encode(),
        partition=run.mailer.ledger.partition_for(PARTITION),
    )
    await run.mailer.ledger.catch_up()


def as_record(d: Digest) -> SimpleNamespace:
    return SimpleNamespace(
        topic=MAIL_DIGESTS.name,
        partition=PARTITION,
        offset=0,
        key=d.digest_id.encode(),
        value=encode(d),
    )


async def test_a_send_another_process_is_finishing_is_not_repeated_when_its_outcome_comes(
    run: Run,
) -> None:
    d = digest()
    await record_outcome(run, d, ATTEMPTING, now_ms())
    handling = asyncio.create_task(run.mailer.handle(as_record(d)))  # type: ignore[arg-type]
    await asyncio.sleep(LEASE_S / 4)
    assert not run.relay.counts, "sent again while the other process's attempt was fresh"
    await record_outcome(run, d, "sent", now_ms())  # the other process's 250 came
    await asyncio.wait_for(handling, timeout=LEASE_S * 2)
    assert not run.relay.counts, "sent again although the other process recorded it sent"


async def test_an_attempt_with_no_outcome_within_the_lease_is_sent_again_once_it_ends(
    run: Run,
) -> None:
    d = digest()
    marked_ms = now_ms()
    await record_outcome(run, d, ATTEMPTING, marked_ms)
    await asyncio.wait_for(run.mailer.handle(as_record(d)), timeout=LEASE_S * 4)  # type: ignore[arg-type]
    assert run.relay.counts[d.digest_id] == 1
    assert time.time() * 1000 - marked_ms >= LEASE_S * 1000, "resent before the lease ended"


async def test_an_attempt_older_than_the_lease_is_sent_again_at_once(run: Run) -> None:
    d = digest()
    await record_outcome(run, d, ATTEMPTING, now_ms() - int(LEASE_S * 1000) - 1)
    started = time.monotonic()
    await asyncio.wait_for(run.mailer.handle(as_record(d)), timeout=LEASE_S * 4)  # type: ignore[arg-type]
    assert run.relay.counts[d.digest_id] == 1
    assert time.monotonic() - started < LEASE_S, "waited out a lease that had already ended"
