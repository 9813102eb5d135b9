"""Retry delays: exponential backoff with jitter, honouring a server's Retry-After. Pure."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base_s: float, max_s: float,
                  retry_after_s: float | None = None, rng: random.Random | None = None) -> float:
    """Delay before retry ``attempt`` (1-based).

    A server-given Retry-After wins (capped at ``max_s``); otherwise a value in
    [ceiling/2, ceiling] with ceiling = min(max_s, base_s * 2**(attempt-1)), so
    many clients retrying at once spread out instead of stampeding.
    """
    if retry_after_s is not None:
        return min(max_s, max(0.0, retry_after_s))
    ceiling = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)
