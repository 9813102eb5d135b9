"""retry(): the one retry loop over backoff_delay, on a fake clock (no real sleeping)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.backoff import GaveUp, RetryPolicy, backoff_delay, retry


class Flaky(Exception):
    def __init__(self, retryable: bool = True, retry_after_s: float | None = None) -> None:
        super().__init__("flaky")
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def _run(failures: list[BaseException], policy: RetryPolicy, clock: FakeClock, **kw: object):
    calls: list[int] = []

    async def call(attempt: int) -> str:
        calls.append(attempt)
        if failures:
            raise failures.pop(0)
        return "ok"

    async def go() -> str:
        return await retry(
            call,
            policy,
            on=Flaky,
            sleep=clock.sleep,
            clock=clock,
            retryable=lambda e: e.retryable,
            retry_after=lambda e: e.retry_after_s,
            **kw,
        )  # type: ignore[arg-type]

    return asyncio.run(go()), calls


def test_a_temporary_failure_is_retried_until_the_call_works() -> None:
    clock = FakeClock()
    result, calls = _run([Flaky(), Flaky()], RetryPolicy(1, 10, max_attempts=5), clock)
    assert result == "ok" and calls == [1, 2, 3] and len(clock.sleeps) == 2


def test_a_permanent_failure_gives_up_at_once_without_sleeping() -> None:
    clock = FakeClock()
    with pytest.raises(GaveUp) as info:
        _run([Flaky(retryable=False)], RetryPolicy(1, 10, max_attempts=5), clock)
    assert info.value.attempts == 1 and not info.value.exhausted and clock.sleeps == []


def test_gives_up_after_max_attempts_with_the_last_error() -> None:
    clock = FakeClock()
    last = Flaky()
    with pytest.raises(GaveUp) as info:
        _run([Flaky(), Flaky(), last], RetryPolicy(1, 10, max_attempts=3), clock)
    assert info.value.attempts == 3 and info.value.exhausted and info.value.error is last


def test_attempts_alone_do_not_give_up_before_the_window_has_passed() -> None:
    clock = FakeClock()
    policy = RetryPolicy(1, 30, max_attempts=2, window_s=10)
    with pytest.raises(GaveUp) as info:
        _run([Flaky(retry_after_s=1.0) for _ in range(50)], policy, clock)
    # 1 s per pause: tries at t=0..10, the one at t=10 is the last.
    assert info.value.attempts == 11 and clock.now >= 10


def test_the_servers_retry_after_wins_over_backoff() -> None:
    clock = FakeClock()
    _run([Flaky(retry_after_s=7.0)], RetryPolicy(0.1, 30, max_attempts=3), clock)
    assert clock.sleeps == [7.0]


def test_on_retry_sees_each_failure_attempt_and_delay() -> None:
    clock = FakeClock()
    seen: list[tuple[int, float]] = []
    _run(
        [Flaky(retry_after_s=2.0), Flaky(retry_after_s=3.0)],
        RetryPolicy(1, 10),
        clock,
        on_retry=lambda exc, attempt, delay: seen.append((attempt, delay)),
    )
    assert seen == [(1, 2.0), (2, 3.0)]


def test_other_exceptions_propagate_unchanged() -> None:
    clock = FakeClock()
    with pytest.raises(KeyError):
        _run([KeyError("x")], RetryPolicy(1, 10, max_attempts=5), clock)


def test_no_limits_means_retry_until_it_works() -> None:
    assert not RetryPolicy(1, 10).gives_up(10_000, 1e9)


@given(
    attempts=st.integers(1, 100),
    elapsed=st.floats(0, 1e6),
    max_attempts=st.integers(1, 50),
    window=st.floats(0, 1e5),
)
def test_gives_up_only_when_both_limits_are_used_up(
    attempts: int, elapsed: float, max_attempts: int, window: float
) -> None:
    policy = RetryPolicy(1, 10, max_attempts=max_attempts, window_s=window)
    assert policy.gives_up(attempts, elapsed) == (attempts >= max_attempts and elapsed >= window)


@given(attempt=st.integers(1, 60), base=st.floats(0.01, 5), cap=st.floats(0.01, 120))
def test_policy_delay_is_backoff_delay_within_its_bounds(
    attempt: int, base: float, cap: float
) -> None:
    delay = RetryPolicy(base, cap).delay(attempt)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(attempt, base_s=base, max_s=cap, retry_after_s=500) == min(cap, 500)


@given(failures=st.integers(0, 30), max_attempts=st.integers(1, 10), cap=st.floats(0.01, 60))
def test_never_more_tries_than_allowed_and_no_pause_above_the_cap(
    failures: int, max_attempts: int, cap: float
) -> None:
    clock = FakeClock()
    policy = RetryPolicy(0.5, cap, max_attempts=max_attempts)
    try:
        _, calls = _run([Flaky() for _ in range(failures)], policy, clock)
        assert failures < max_attempts and len(calls) == failures + 1
    except GaveUp as gave_up:
        assert failures >= max_attempts and gave_up.attempts == max_attempts
    assert all(0 <= s <= cap for s in clock.sleeps)
    assert len(clock.sleeps) <= max_attempts - 1
