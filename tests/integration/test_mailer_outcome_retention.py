"""The outcome ledger on a real broker: an outcome past the retention is forgotten and
tombstoned on ``mail.outcomes``, so the next replica that replays the topic does not
load it; a recent outcome is kept.

Unique ids on the session broker's ``mail.outcomes``; the tombstones written here are
for keys only this test uses.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from mailer.outcome_ledger import OutcomeLedger, Seen
from shared.kafka import topic_partitions
from shared.topics import DAY_MS, MAIL_OUTCOMES
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def test_an_outcome_past_the_retention_is_tombstoned_and_not_loaded_again(
    kafka_bootstrap: str,
) -> None:
    run = uuid.uuid4().hex[:8]
    old_id, recent_id = f"dg-old-{run}", f"dg-recent-{run}"
    now_ms = int(time.time() * 1000)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    ledger = OutcomeLedger(
        kafka_bootstrap, MAIL_OUTCOMES.name, poll_ms=50, retention_ms=DAY_MS, tombstones=producer
    )
    later = OutcomeLedger(kafka_bootstrap, MAIL_OUTCOMES.name, poll_ms=50)  # default: 28 d
    try:
        sent = orjson.dumps({"status": "sent"})
        await producer.send_and_wait(
            MAIL_OUTCOMES.name, sent, key=old_id.encode(), timestamp_ms=now_ms - 2 * DAY_MS
        )
        await producer.send_and_wait(
            MAIL_OUTCOMES.name, sent, key=recent_id.encode(), timestamp_ms=now_ms
        )
        await ledger.start()

        # Read the topic ourselves, without trusting end offsets (the dev broker reports
        # the first record of the last batch as the end).
        history = await records_of(
            kafka_bootstrap, {old_id, recent_id}, until=lambda h: (old_id, None) in h
        )
        assert history.index((old_id, sent)) < history.index((old_id, None))
        assert (recent_id, None) not in history
        assert ledger.seen(old_id) is Seen.NOTHING
        assert ledger.seen(recent_id) is Seen.DONE
        # A replica with the default (long) retention forgets it only through the tombstone.
        await later.start()
        await eventually(
            lambda: later.seen(recent_id) is Seen.DONE and later.seen(old_id) is Seen.NOTHING,
            timeout_s=10,
            what="the replaying ledger honours the tombstone",
        )
    finally:
        await later.stop()
        await ledger.stop()
        await producer.stop()


async def records_of(
    bootstrap: str,
    keys: set[str],
    until: Callable[[list[tuple[str, bytes | None]]], bool],
    timeout_s: float = 20.0,
    topic: str = MAIL_OUTCOMES.name,
) -> list[tuple[str, bytes | None]]:
    """(key, value) of every ``topic`` record with one of ``keys``, in offset order per
    partition, read from the beginning until ``until`` holds."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: list[tuple[str, bytes | None]] = []
    try:
        tps = await topic_partitions(bootstrap, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while not until(found) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [
                    ((r.key or b"").decode(), r.value)
                    for r in records
                    if (r.key or b"").decode() in keys
                ]
    finally:
        await consumer.stop()
    assert until(found), f"never saw the expected records; saw {found!r}"
    return found
