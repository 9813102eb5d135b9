"""A ShopSettings published on shop.settings changes the window and the alerts of that shop;
a shop with no record (never onboarded) gets nothing emailed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from shared.events import ShopSettings
from tests.integration.consolidator_harness import consolidator_rig, wait_for

pytestmark = pytest.mark.integration


async def test_shop_settings_set_the_window_and_alerts_off_sends_nothing(tmp_path: Path) -> None:
    # Default window 4 s; "fast" overrides to 1 s (a helpdesk-like short window);
    # "muted" turns alerts off; "stranger" has no record at all.
    async with consolidator_rig(
        tmp_path, BRIDGE_WINDOW_MAILBOX_S="4", BRIDGE_WINDOW_HELPDESK_S="4", BRIDGE_MAX_WAIT_S="30"
    ) as rig:
        await rig.settings(ShopSettings("fast", window_override_s=1))
        await rig.settings(ShopSettings("muted", alerts_enabled=False))
        await rig.settings(ShopSettings("default", alerts_enabled=True))
        procs = rig.start_consolidator()
        port = int(procs.env["BRIDGE_CONSOLIDATOR_PORT"])
        # wait until the worker holds its partitions (a tick-released probe digest)
        await rig.buyer("fast", "warmup", "w0", 0)
        await rig.producer.flush()
        assert await wait_for(lambda: "w0" in rig.digests.message_ids(), 40), rig.logs()

        sent_at = time.monotonic()
        for shop in ("fast", "default", "muted", "stranger"):
            await rig.buyer(shop, "c1", f"{shop}-1", 1)
        await rig.producer.flush()
        assert await wait_for(lambda: "fast-1" in rig.digests.message_ids(), 10)
        fast_after = time.monotonic() - sent_at
        assert "default-1" not in rig.digests.message_ids()
        assert await wait_for(lambda: "default-1" in rig.digests.message_ids(), 10)
        default_after = time.monotonic() - sent_at
        assert fast_after < 2.5, fast_after  # the shop's 1 s override
        assert default_after >= 3.5, default_after  # the 4 s default window
        await asyncio.sleep(1.0)
        assert "muted-1" not in rig.digests.message_ids()
        assert "stranger-1" not in rig.digests.message_ids()

        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        for reason in ("alerts_off", "not_onboarded"):
            dropped = [
                line
                for line in metrics.splitlines()
                if line.startswith(f'bridge_buyer_messages_not_emailed_total{{reason="{reason}"}} ')
            ]
            assert dropped and float(dropped[0].split()[1]) >= 1, (reason, dropped)
