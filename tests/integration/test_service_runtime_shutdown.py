"""A service process stops its parts in reverse order on SIGTERM (what Kubernetes sends)
and exits 0; /healthz answers while it runs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

from devstack.broker import free_port

SERVICE = textwrap.dedent("""
    import asyncio, sys
    from shared.config import BridgeSettings
    from shared.service_runtime import run_service

    port, log = int(sys.argv[1]), sys.argv[2]

    def note(line):
        with open(log, "a") as out:
            out.write(line + "\\n")

    async def body(runtime):
        for part in ("producer", "ledger", "consumer"):
            async def stop(part=part):
                note("stop " + part)
            runtime.on_stop(stop)
        runtime.serve_ops("127.0.0.1", port)
        note("running")
        await asyncio.Event().wait()

    run_service("runtime-test", BridgeSettings(dev_mode=True), (), body)
""")


def test_sigterm_stops_every_part_in_reverse_order_and_exits_cleanly(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "parts.log"
    proc = subprocess.Popen([sys.executable, "-c", SERVICE, str(port), str(log)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the service never became ready"
            assert proc.poll() is None, "the service exited before it was ready"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert log.read_text().split("\n")[:-1] == [
        "running",
        "stop consumer",
        "stop ledger",
        "stop producer",
    ]
