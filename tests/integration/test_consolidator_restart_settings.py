"""A consolidator restarted after kill -9 must not drop buyer messages of onboarded shops
as "not onboarded" while its shop settings view is still reading ``shop.settings``.

Found by ``bench/chaos.py`` (seed 14, ``--short``, Tansu): after the consolidator's restart
its ``bridge_buyer_messages_not_emailed_total{reason="not_onboarded"}`` counted 39 and five
buyer messages of onboarded shops, all on ``chat.events`` and pending at the kill, never
reached any digest. The restarted worker handles records and releases recovered pending
conversations before its settings view has loaded, and a shop it does not know yet is
treated as never onboarded (its pending messages dropped).
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from shared.codec import encode
from shared.events import ShopSettings
from shared.topics import SHOP_SETTINGS
from tests.integration.consolidator_harness import consolidator_rig, wait_for

pytestmark = pytest.mark.integration

# Settings records ahead of the onboarded shops' own: the restarted view needs a moment to
# reach them, as with a real marketplace's many shops.
FILLER_SHOPS = 20_000
SHOPS = [f"shop-r{n}" for n in range(10)]


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def test_pending_messages_survive_a_restart_while_the_settings_view_loads(
    tmp_path: Path,
) -> None:
    async with consolidator_rig(tmp_path) as rig:
        for n in range(FILLER_SHOPS):
            shop = f"filler-{n}"
            await rig.producer.send(
                SHOP_SETTINGS.name, encode(ShopSettings(shop)), key=shop.encode()
            )
        for shop in SHOPS:
            await rig.producer.send(
                SHOP_SETTINGS.name,
                encode(ShopSettings(shop, alerts_enabled=True)),
                key=shop.encode(),
            )
        await rig.producer.flush()
        procs = rig.start_consolidator()
        port = int(procs.env["BRIDGE_CONSOLIDATOR_PORT"])
        assert await wait_for(lambda: _healthy(port), 90), rig.logs()
        sent = []
        for n in range(200):
            mid = f"pending-{n}"
            await rig.buyer(SHOPS[n % len(SHOPS)], f"c-{n}", mid, n)
            sent.append(mid)
        await rig.producer.flush()
        await asyncio.sleep(0.5)  # held (the window is 1 s), on the changelog, not released
        procs.kill("consolidator", signal.SIGKILL)
        procs.start("consolidator")
        await wait_for(lambda: set(rig.digests.message_ids()) >= set(sent), 30)
        counts = Counter(rig.digests.message_ids())
        lost = [m for m in sent if counts[m] == 0]
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        dropped = [
            line
            for line in metrics.splitlines()
            if line.startswith("bridge_buyer_messages_not_emailed_total")
        ]
        assert not lost, f"{len(lost)} of {len(sent)} lost (e.g. {lost[:3]}); {dropped}"
