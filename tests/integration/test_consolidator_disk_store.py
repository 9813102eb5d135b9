"""The disk store (rocksdb:// through rocksdict) survives kill -9: pending messages held
before the kill, whose offsets were committed, come back from the store and are emailed
exactly once, together with the messages that arrive after the restart."""

from __future__ import annotations

import asyncio
import re
import signal
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.consolidator_harness import consolidator_rig, wait_for

pytestmark = pytest.mark.integration


async def _gauge(port: int, name: str) -> float | None:
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    except httpx.HTTPError:
        return None
    m = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else None


async def test_rocksdb_store_recovers_pending_state_after_kill_9_without_loss_or_duplicate(
    tmp_path: Path,
) -> None:
    # A 20 s window: what is sent before the kill is still pending when the process dies
    # AND once the restarted one has recovered (a restart under load can take ~10 s).
    async with consolidator_rig(
        tmp_path,
        BRIDGE_CONSOLIDATOR_STORE="rocksdb://",
        BRIDGE_WINDOW_MAILBOX_S="20",
        BRIDGE_WINDOW_HELPDESK_S="20",
        BRIDGE_MAX_WAIT_S="60",
    ) as rig:
        procs = rig.start_consolidator()
        port = int(procs.env["BRIDGE_CONSOLIDATOR_PORT"])
        await rig.buyer("shop1", "warmup", "w0", 0)  # held once the worker consumes
        await rig.producer.flush()
        assert await _wait_gauge(port, "bridge_pending_conversations", 1, 40), rig.logs()
        before = [f"b{i}" for i in range(60)]
        for i, mid in enumerate(before):
            await rig.buyer("shop1", f"c{i % 20}", mid, i)
        await rig.producer.flush()
        assert await _wait_gauge(port, "bridge_pending_conversations", 21, 20), rig.logs()
        await asyncio.sleep(3.5)  # past faust's commit interval: these offsets are committed
        assert not set(before) & set(rig.digests.message_ids()), "digests before the kill"
        procs.kill("consolidator", signal.SIGKILL)
        procs.start("consolidator")

        # The held conversations are pending again in the restarted worker: from its store
        # (the warm-up one may have fallen due meanwhile).
        assert await _wait_gauge(port, "bridge_pending_conversations", (20, 21), 40), rig.logs()
        after = [f"a{i}" for i in range(30)]
        for i, mid in enumerate(after):
            await rig.buyer("shop1", f"c{i % 20}", mid, 100 + i)
        await rig.producer.flush()
        sent = ["w0", *before, *after]
        await wait_for(lambda: set(rig.digests.message_ids()) >= set(sent), 60)
        await asyncio.sleep(1.5)  # let any late duplicate show up
        counts = Counter(rig.digests.message_ids())
        lost = [m for m in sent if counts[m] == 0]
        twice = [m for m, c in counts.items() if c > 1]
        assert not lost and not twice, f"lost {lost[:5]}, twice {twice[:5]}\n{rig.logs()}"
        data_dir = Path(procs.env["BRIDGE_CONSOLIDATOR_DATA_DIR"])
        assert _rocksdb_dirs(data_dir), f"no rocksdb files under {data_dir}"


def _rocksdb_dirs(data_dir: Path) -> list[Path]:
    return [p for p in data_dir.rglob("*.db") if p.is_dir()]


async def _wait_gauge(
    port: int, name: str, expect: float | tuple[float, ...], timeout_s: float
) -> bool:
    wanted = expect if isinstance(expect, tuple) else (expect,)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while loop.time() < end:
        if await _gauge(port, name) in wanted:
            return True
        await asyncio.sleep(0.2)
    return False
