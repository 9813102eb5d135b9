"""The crash window is bounded by the mailer's concurrency, however slow the broker is.

Between the relay's 250 and the acknowledged ``sent`` outcome, a ``kill -9`` makes the next
owner send a digest again (same Message-ID; docs/exactly-once.md), so at most
``BRIDGE_MAILER_CONCURRENCY`` mails may sit in that window, however slow the broker is
to take their records. Here the real mailer sends to a real relay on the real broker, with
its outcome records held back: the relay must see no more mails than the concurrency until
the records get through, then every mail exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from mailer.app import Mailer
from mailer.outcome_ledger import ATTEMPTING
from shared.codec import decode, encode
from shared.events import ChatContent, Digest, DigestMessage
from shared.topics import MAIL_DIGESTS, MAIL_OUTCOMES
from tests.mailer_run import Relay, mailer_in_loop
from tests.polling import eventually

pytestmark = pytest.mark.integration

CONCURRENCY = 3
DIGESTS = 4 * CONCURRENCY


class HeldOutcomes(AIOKafkaProducer):  # type: ignore[misc]
    """The real producer, whose final outcome records wait until ``release`` is set (a
    broker slow to take them); ``attempting`` markers and everything else pass."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.release = asyncio.Event()

    async def send_and_wait(self, topic: str, value: Any = None, **kwargs: Any) -> Any:
        if topic == MAIL_OUTCOMES.name and f'"{ATTEMPTING}"'.encode() not in value:
            await self.release.wait()
        return await super().send_and_wait(topic, value, **kwargs)


def digest(run: str, n: int) -> Digest:
    return Digest(
        digest_id=f"dg-{run}-{n}",
        shop_id=f"shop-{run}",
        conversation_id=f"conv-{n}",
        buyer_id=f"buyer-{n}",
        buyer_name="Ana",
        messages=(DigestMessage(f"m-{run}-{n}", 1_764_070_000_000 + n, ChatContent(text="hi")),),
        destination_email="owner@sunnysocks.example",
    )


async def test_mails_waiting_for_their_outcome_never_exceed_the_concurrency(
    kafka_bootstrap: str,
) -> None:
    run = uuid.uuid4().hex[:6]
    relay = Relay()
    await relay.start()
    producer = HeldOutcomes(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    offsets = itertools.count()
    records = [
        SimpleNamespace(
            topic=MAIL_DIGESTS.name,
            partition=0,
            offset=next(offsets),
            key=f"shop-{run}:conv-{n}".encode(),
            value=encode(digest(run, n)),
        )
        for n in range(DIGESTS)
    ]
    try:
        async with mailer_in_loop(
            kafka_bootstrap, relay, producer, mailer_concurrency=CONCURRENCY
        ) as mailer:
            await _send_all(mailer, producer, relay, records)
    finally:
        producer.release.set()
        await producer.stop()
        await relay.stop()


async def _send_all(
    mailer: Mailer, producer: HeldOutcomes, relay: Relay, records: list[SimpleNamespace]
) -> None:
    handling = asyncio.gather(*(mailer.handle(r) for r in records))  # type: ignore[arg-type]
    try:

        def mails() -> int:
            return sum(relay.counts.values())

        await eventually(lambda: mails() >= CONCURRENCY, timeout_s=30, what="the first sends")
        # Give sends that should not start the time to start anyway.
        await asyncio.sleep(1.5)
        assert mails() == CONCURRENCY, (
            f"{mails()} mails accepted by the relay with no outcome recorded; "
            f"a kill now would double up to that many (concurrency {CONCURRENCY})"
        )
        producer.release.set()
        await asyncio.wait_for(handling, timeout=60)
        assert sorted(relay.counts) == sorted(decode(Digest, r.value).digest_id for r in records)
        assert set(relay.counts.values()) == {1}
    finally:
        producer.release.set()
        if not handling.done():
            handling.cancel()
        await asyncio.gather(handling, return_exceptions=True)
