"""Retry delays and the one retry loop: exponential backoff with jitter, honouring a
server's Retry-After. Everything but :func:`retry` itself is pure."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from shared.errors import BridgeError

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


def backoff_delay(
    attempt: int,
    *,
    base_s: float,
    max_s: float,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before retry ``attempt`` (1-based).

    A server-given Retry-After wins (capped at ``max_s``); otherwise a value in
    [ceiling/2, ceiling] with ceiling = min(max_s, base_s * 2**(attempt-1)), so
    many clients retrying at once spread out instead of stampeding.
    """
    if retry_after_s is not None:
        return min(max_s, max(0.0, retry_after_s))
    ceiling = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a temporary failure is retried. Pure.

    Gives up once every limit given is used up: ``max_attempts`` tries and ``window_s``
    seconds since the first. Both together keep a long outage from ending in a give-up after
    a handful of quick tries; neither given means retry until it works.
    """

    base_s: float
    max_s: float
    max_attempts: int | None = None
    window_s: float | None = None

    def gives_up(self, attempts: int, elapsed_s: float) -> bool:
        if self.max_attempts is None and self.window_s is None:
            return False
        return (self.max_attempts is None or attempts >= self.max_attempts) and (
            self.window_s is None or elapsed_s >= self.window_s
        )

    def delay(
        self, attempt: int, retry_after_s: float | None = None, rng: random.Random | None = None
    ) -> float:
        """The pause after failed try ``attempt`` (see :func:`backoff_delay`)."""
        return backoff_delay(
            attempt, base_s=self.base_s, max_s=self.max_s, retry_after_s=retry_after_s, rng=rng
        )


class GaveUp(BridgeError, Generic[E]):
    """:func:`retry` stopped: ``error`` is the last failure, ``attempts`` the tries made,
    ``exhausted`` True when it was retryable but the policy's limits were used up (False:
    the failure was permanent)."""

    def __init__(self, error: E, attempts: int, *, exhausted: bool) -> None:
        super().__init__(f"gave up after {attempts} attempt(s): {error}")
        self.error = error
        self.attempts = attempts
        self.exhausted = exhausted


def _always(_: BaseException) -> bool:
    return True


def _no_retry_after(_: BaseException) -> float | None:
    return None


async def retry(
    call: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on: type[E] | tuple[type[E], ...],
    retryable: Callable[[E], bool] = _always,
    retry_after: Callable[[E], float | None] = _no_retry_after,
    on_retry: Callable[[E, int, float], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``await call(attempt)`` (attempt 1, 2, ...) until it returns.

    A failure of type ``on`` that is ``retryable`` is retried after the policy's delay
    (a server's ``retry_after`` wins); ``on_retry(error, attempt, delay_s)`` is called before
    each pause (logging, metrics). A failure that is not retryable, or one after the policy's
    limits, raises :class:`GaveUp`; any other exception propagates unchanged.
    """
    first = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call(attempt)
        except on as exc:
            if not retryable(exc):
                raise GaveUp(exc, attempt, exhausted=False) from exc
            if policy.gives_up(attempt, clock() - first):
                raise GaveUp(exc, attempt, exhausted=True) from exc
            delay = policy.delay(attempt, retry_after(exc))
            if on_retry is not None:
                on_retry(exc, attempt, delay)
            await sleep(delay)
