"""The service runtime: parts stop in reverse order of their start, also when start-up
fails half-way; /healthz is 200 only while every readiness check passes."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from shared.metrics import UP
from shared.service_runtime import build_ops_app, health_answer, service_runtime


async def test_parts_stop_in_reverse_order_of_their_start() -> None:
    events: list[str] = []

    def part(name: str):  # noqa: ANN202 - a pair of coroutine functions
        async def start() -> None:
            events.append(f"start {name}")

        async def stop() -> None:
            events.append(f"stop {name}")

        return start, stop

    async with service_runtime("runtime-test") as runtime:
        for name in ("producer", "ledger", "consumer"):
            start, stop = part(name)
            await runtime.started(name, start, stop)
    assert events == [
        "start producer",
        "start ledger",
        "start consumer",
        "stop consumer",
        "stop ledger",
        "stop producer",
    ]


async def test_a_failed_start_stops_only_what_had_started_and_marks_the_service_down() -> None:
    stopped: list[str] = []

    async def ok() -> None:
        pass

    async def broken() -> None:
        raise RuntimeError("relay key unreadable")

    async def stop_producer() -> None:
        stopped.append("producer")

    async def stop_never_started() -> None:
        stopped.append("never started")

    UP.labels("runtime-test").set(1)
    with pytest.raises(RuntimeError, match="relay key unreadable"):
        async with service_runtime("runtime-test") as runtime:
            await runtime.started("producer", ok, stop_producer)
            await runtime.started("ledger", broken, stop_never_started)
    assert stopped == ["producer"]
    assert UP.labels("runtime-test")._value.get() == 0


async def test_background_work_is_cancelled_at_shutdown() -> None:
    async with service_runtime("runtime-test") as runtime:
        task = runtime.background(asyncio.sleep(3600))
    assert task.cancelled()


def test_healthz_is_503_until_every_readiness_check_passes() -> None:
    checks = {"kafka": False, "settings": True}
    client = TestClient(build_ops_app("runtime-test", lambda: all(checks.values())))
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (503, {"ok": False})
    checks["kafka"] = True
    answer = client.get("/healthz")
    assert (answer.status_code, answer.json()) == (200, {"ok": True})
    assert client.get("/metrics").status_code == 200
    assert health_answer(False) == (b'{"ok":false}', 503)
