"""A chat.events record the consolidator cannot read is dead-lettered with the reason and
the offset, and the good records around it in the same partition are still consolidated."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from devstack.topic_reader import records_so_far
from shared.codec import decode
from shared.events import DeadLetter
from shared.topics import CHAT_EVENTS, DEAD_LETTER
from tests.integration.consolidator_harness import consolidator_rig, wait_for

pytestmark = pytest.mark.integration


async def _dead_letters(bootstrap: str) -> list[DeadLetter]:
    written = await records_so_far(bootstrap, DEAD_LETTER.name, DEAD_LETTER.partitions)
    return [decode(DeadLetter, r.value) for recs in written.values() for r in recs]


async def test_undecodable_chat_events_are_dead_lettered_and_the_rest_consolidated(
    tmp_path: Path,
) -> None:
    async with consolidator_rig(tmp_path) as rig:
        rig.start_consolidator()
        key = b"shop1:c1"  # every record below goes to this key's partition
        await rig.buyer("shop1", "c1", "m1", 1)
        await rig.producer.send(CHAT_EVENTS.name, b"{not json", key=key)
        await rig.producer.send(
            CHAT_EVENTS.name,
            orjson.dumps(
                {
                    "kind": "buyer_message",
                    "shop_id": "shop1",
                    "conversation_id": "c1",
                    "sent_at_ms": "yesterday",
                }
            ),
            key=key,
        )
        await rig.buyer("shop1", "c1", "m2", 2)
        await rig.producer.flush()
        assert await wait_for(lambda: {"m1", "m2"} <= set(rig.digests.message_ids()), 40), (
            rig.logs()
        )

        letters: list[DeadLetter] = []
        for _ in range(20):
            letters = [
                d for d in await _dead_letters(rig.broker.bootstrap) if d.service == "consolidator"
            ]
            if len(letters) >= 2:
                break
            await asyncio.sleep(0.25)
        reasons = sorted(d.reason for d in letters)
        assert len(letters) == 2, reasons
        assert reasons[0].startswith("undecodable chat event: not JSON")
        assert "sent_at_ms: expected an integer" in reasons[1]
        assert all(
            d.source_topic == CHAT_EVENTS.name and d.key == "shop1:c1" and d.offset >= 0
            for d in letters
        )
