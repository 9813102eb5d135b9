"""The mailer's send policy: temporary failures retried until tries AND time are used up,
permanent ones given up at once, each given-up mail with its reason. Pure (fake clock)."""

from __future__ import annotations

import asyncio

import pytest

from mailer.mailer_settings import MailerSettings
from mailer.send_policy import ambiguous_note, given_up, relay_retry_policy, temporary
from mailer.smtp_pool import AMBIGUOUS_REASONS, SendError
from shared.backoff import GaveUp, retry


def _send(failures: list[SendError], cfg: MailerSettings) -> tuple[int, float]:
    """Run the mailer's retry over a relay failing with ``failures`` then accepting, on a
    fake clock; (attempts, seconds waited)."""
    now = [0.0]

    async def sleep(s: float) -> None:
        now[0] += s

    async def send(attempt: int) -> int:
        if failures:
            raise failures.pop(0)
        return attempt

    attempts = asyncio.run(
        retry(
            send,
            relay_retry_policy(cfg),
            on=SendError,
            retryable=temporary,
            sleep=sleep,
            clock=lambda: now[0],
        )
    )
    return attempts, now[0]


CFG = MailerSettings(
    smtp_max_attempts=3, smtp_retry_window_s=60, smtp_backoff_base_s=1, smtp_backoff_max_s=10
)


def test_a_temporary_failure_is_retried_and_then_sent() -> None:
    attempts, _ = _send([SendError("451 try later", code=451)] * 2, CFG)
    assert attempts == 3


def test_a_permanent_failure_is_given_up_after_one_try() -> None:
    with pytest.raises(GaveUp) as info:
        _send([SendError("550 no such user", code=550, permanent=True)], CFG)
    fate = given_up(info.value.error, info.value.attempts)
    assert (fate.attempts, fate.reason_class, fate.smtp_code) == (1, "smtp_permanent", 550)
    assert fate.dead_letter_reason == "SMTP delivery failed after 1 attempts: 550 no such user"


def test_a_relay_outage_is_retried_for_the_whole_window_not_just_the_attempts() -> None:
    with pytest.raises(GaveUp) as info:
        _send([SendError("relay down") for _ in range(1000)], CFG)
    assert info.value.exhausted
    assert info.value.attempts > CFG.smtp_max_attempts  # kept trying past the count
    fate = given_up(info.value.error, info.value.attempts)
    assert fate.reason_class == "smtp_exhausted" and fate.reason == "relay down"


def test_only_a_permanent_answer_is_not_temporary() -> None:
    assert temporary(SendError("421 busy", code=421))
    assert temporary(SendError("connection refused"))
    assert not temporary(SendError("554 rejected", code=554, permanent=True))


@pytest.mark.parametrize("reason", AMBIGUOUS_REASONS)
def test_an_ambiguous_failure_is_retried_rather_than_risk_a_loss(reason: str) -> None:
    ambiguous = SendError("no reply to the end of DATA", ambiguous=reason)
    assert temporary(ambiguous)
    attempts, _ = _send([ambiguous], CFG)
    assert attempts == 2


def test_a_sent_outcome_says_it_may_be_a_duplicate_only_after_an_ambiguous_try() -> None:
    assert ambiguous_note(0) == ""
    note = ambiguous_note(2)
    assert note.startswith("2 earlier attempt(s) got no reply to the end of DATA")
    assert "more than once" in note
