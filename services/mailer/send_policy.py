"""What happens to a mail the relay did not take: tried again, or given up. Pure.

A temporary failure (4xx, relay down or slow) is retried with backoff until
``smtp_max_attempts`` tries *and* ``smtp_retry_window_s`` seconds have passed: a relay outage
longer than a handful of backoffs must not turn digests into dead letters (the bar is
"nothing acknowledged is lost"). A permanent failure (5xx) is given up at once. A mail given
up is dead-lettered with the reason and recorded ``failed`` with the relay's code.

An *ambiguous* failure (the relay never answered the end of DATA, so it may have the mail)
is retried too: a resend risks a duplicate, not resending risks a loss, and the bar is
"nothing lost". With the RFC's 10-minute wait for that answer it is no longer an ordinary
event; each one is counted, and the ``sent`` outcome says it may have gone twice
(:func:`ambiguous_note`; docs/exactly-once.md).
The mailer carries this out with :func:`shared.backoff.retry`.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailer.mailer_settings import MailerSettings
from mailer.smtp_pool import SendError
from shared.backoff import RetryPolicy


def relay_retry_policy(cfg: MailerSettings) -> RetryPolicy:
    """How long a temporary SMTP failure is retried."""
    return RetryPolicy(
        cfg.smtp_backoff_base_s,
        cfg.smtp_backoff_max_s,
        max_attempts=cfg.smtp_max_attempts,
        window_s=cfg.smtp_retry_window_s,
    )


def temporary(error: SendError) -> bool:
    """Trying again can help: anything but a permanent (5xx) answer (an ambiguous
    failure included; see the module doc)."""
    return not error.permanent


def ambiguous_note(tries: int) -> str:
    """The ``sent`` outcome's reason after ``tries`` sends got no end-of-DATA reply."""
    if tries == 0:
        return ""
    return (
        f"{tries} earlier attempt(s) got no reply to the end of DATA: "
        "the relay may have delivered this mail more than once"
    )


@dataclass(frozen=True, slots=True)
class SendGivenUp:
    """A mail not sent for good: the dead letter's reason and class, and what the outcome
    records (the relay's code and words, the tries made)."""

    dead_letter_reason: str
    reason_class: str
    smtp_code: int
    reason: str
    attempts: int


def given_up(error: SendError, attempts: int) -> SendGivenUp:
    """The fate of a mail whose last try failed with ``error`` and is not retried."""
    return SendGivenUp(
        dead_letter_reason=f"SMTP delivery failed after {attempts} attempts: {error.reason}",
        reason_class="smtp_permanent" if error.permanent else "smtp_exhausted",
        smtp_code=error.code,
        reason=error.reason,
        attempts=attempts,
    )
