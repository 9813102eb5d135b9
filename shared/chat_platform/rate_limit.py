"""Per-shop, per-API request pacing at the platform's documented rate.

TikTok Shop: "a default rate limit of 50 QPS (Queries Per Second) for each API
... based on the combination of the app and shop" (Partner Center guide
tiktok-shop-api-concepts/rate-limits.md; docs/tiktok-shop-contract.md s.3).
One token bucket per (shop, API) keeps us under it, so 429s stay the
exception, not the pacing mechanism.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Pure apart from the clock."""

    __slots__ = ("rate", "burst", "_tokens", "_stamp", "_clock")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._clock = clock
        self._stamp = clock()

    def reserve(self) -> float:
        """Take one token; returns how long to wait before using it (0 when available)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class ShopApiLimiter:
    """Token buckets keyed by (shop, API), bounded in number (least recently used dropped)."""

    def __init__(self, qps: float, *, burst: float | None = None, capacity: int = 50_000) -> None:
        self.qps = qps
        self.burst = burst if burst is not None else max(1.0, qps / 5)
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._capacity = capacity

    def delay(self, shop_id: str, api: str) -> float:
        key = (shop_id, api)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.qps, self.burst)
            if len(self._buckets) > self._capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.reserve()

    async def acquire(self, shop_id: str, api: str) -> None:
        if self.qps <= 0:
            return
        wait = self.delay(shop_id, api)
        if wait > 0:
            await asyncio.sleep(wait)
