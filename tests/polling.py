"""Waiting for an effect in tests on real parts: poll, bounded in time, fail with the last value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T] | T],
    *,
    timeout_s: float = 30.0,
    interval_s: float = 0.1,
    what: str = "condition",
) -> T:
    """Poll ``probe`` (sync or async) until it returns something truthy; return that value.

    Fails the test with the last value seen once ``timeout_s`` has passed.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if asyncio.iscoroutine(value):
            value = await value
        if value or time.monotonic() > deadline:
            assert value, f"{what} not met within {timeout_s}s (last value {value!r})"
            return value  # type: ignore[return-value]
        await asyncio.sleep(interval_s)
