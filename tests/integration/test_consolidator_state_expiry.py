"""Idle conversation states are forgotten a TTL after their last event: within it a
redelivered message is still dropped, after it the state is gone (counted) and the
conversation's next message starts a new digest thread."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from tests.integration.consolidator_harness import consolidator_rig, wait_for

pytestmark = pytest.mark.integration

TTL_S = 6.0


async def _expired(port: int) -> float:
    async with httpx.AsyncClient(timeout=2) as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    m = re.search(r"^bridge_consolidator_states_expired_total (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


async def test_idle_state_is_forgotten_after_the_ttl_and_kept_before(tmp_path: Path) -> None:
    async with consolidator_rig(tmp_path, BRIDGE_STATE_IDLE_TTL_DAYS=str(TTL_S / 86400)) as rig:
        procs = rig.start_consolidator()
        port = int(procs.env["BRIDGE_CONSOLIDATOR_PORT"])
        await rig.buyer("shop1", "c1", "m1", 1)
        await rig.producer.flush()
        assert await wait_for(lambda: "m1" in rig.digests.message_ids(), 40), rig.logs()
        first = next(d for d in rig.digests.distinct.values() if d.messages[0].message_id == "m1")

        await rig.buyer("shop1", "c1", "m1", 1)  # a redelivery, within the TTL
        await rig.producer.flush()
        await asyncio.sleep(2.0)  # past the 1 s window
        assert rig.digests.message_ids().count("m1") == 1
        assert await _expired(port) == 0  # the state is kept within the TTL

        # The state goes TTL_S after the release tick last touched it (a dropped
        # redelivery changes nothing, so it does not touch it).
        expired = False
        for _ in range(int(TTL_S * 4) + 40):
            if await _expired(port) >= 1:
                expired = True
                break
            await asyncio.sleep(0.25)
        assert expired, rig.logs()

        await rig.buyer("shop1", "c1", "m2", 2)
        await rig.producer.flush()
        assert await wait_for(lambda: "m2" in rig.digests.message_ids(), 10), rig.logs()
        second = next(d for d in rig.digests.distinct.values() if d.messages[0].message_id == "m2")
        assert first.previous_digest_ids == () and second.previous_digest_ids == ()
