"""Pure parts of the mailer's idempotency and envelope: what an outcome record means to
the ledger (the mechanics: tests/unit/test_idempotency_ledger.py) and the VERP return path."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from mailer.app import Mailer
from mailer.mailer_settings import MailerSettings
from mailer.outcome_ledger import ATTEMPTING, DEFAULT_RETENTION_MS, OutcomeLedger, Seen
from shared.events import ChatContent, Digest, DigestMessage

NOW_MS = 1_764_070_000_000
DAY = 24 * 3600 * 1000
HOUR = 3600 * 1000


def record(key: str, status: str | None, at_ms: int = NOW_MS) -> SimpleNamespace:
    """A mail.outcomes record as the tail sees it; ``status=None`` is a tombstone."""
    value = None if status is None else orjson.dumps({"status": status, "at_ms": at_ms})
    return SimpleNamespace(key=key.encode(), partition=0, value=value, timestamp=at_ms)


def ledger(
    retention_ms: int = DEFAULT_RETENTION_MS, now_ms: list[int] | None = None
) -> OutcomeLedger:
    clock = now_ms if now_ms is not None else [NOW_MS]
    held = OutcomeLedger(
        "127.0.0.1:1", "mail.outcomes", retention_ms=retention_ms, clock=lambda: clock[0] / 1000
    )
    held.books.hold(0)  # what assigning mail.digests partition 0 does
    return held


def test_an_id_never_recorded_is_unseen() -> None:
    assert ledger().seen("dg-1") is Seen.NOTHING


def test_attempting_alone_means_the_send_may_or_may_not_have_happened() -> None:
    book = ledger()
    book._apply(record("dg-1", ATTEMPTING))
    assert book.seen("dg-1") is Seen.ATTEMPTED


def test_a_pending_attempt_keeps_the_time_its_mark_was_written() -> None:
    book = ledger()
    book._apply(record("dg-1", ATTEMPTING, at_ms=NOW_MS - 5000))
    assert book.attempted_at_ms("dg-1") == NOW_MS - 5000
    book._apply(record("dg-1", ATTEMPTING, at_ms=NOW_MS))  # a later try of the same digest
    assert book.attempted_at_ms("dg-1") == NOW_MS


def test_an_attempt_mark_without_a_time_reads_as_long_past() -> None:
    book = ledger()
    book._apply(
        SimpleNamespace(
            key=b"dg-1", partition=0, value=b'{"status":"attempting"}', timestamp=NOW_MS
        )
    )
    assert book.seen("dg-1") is Seen.ATTEMPTED and book.attempted_at_ms("dg-1") == 0


def test_a_final_outcome_ends_the_pending_attempt() -> None:
    book = ledger()
    book._apply(record("dg-1", ATTEMPTING))
    book._apply(record("dg-1", "sent"))
    assert book.attempted_at_ms("dg-1") is None and book.attempted_at_ms("dg-2") is None


def test_a_final_outcome_after_attempting_marks_the_digest_done() -> None:
    book = ledger()
    book._apply(record("dg-1", ATTEMPTING))
    book._apply(record("dg-1", "sent"))
    assert book.seen("dg-1") is Seen.DONE


def test_a_later_attempting_record_never_reopens_a_done_digest() -> None:
    book = ledger()
    book._apply(record("dg-1", "failed"))
    book._apply(record("dg-1", ATTEMPTING))
    assert book.seen("dg-1") is Seen.DONE


def test_an_outcome_written_by_this_process_counts_at_once() -> None:
    book = ledger()
    book.record_done("dg-2", 0)
    assert book.seen("dg-2") is Seen.DONE and len(book) == 1


def test_an_attempted_id_expires_like_a_done_one() -> None:
    now = [NOW_MS]
    book = ledger(retention_ms=10 * DAY, now_ms=now)
    book._apply(record("tried", ATTEMPTING, at_ms=NOW_MS - 9 * DAY))
    book._apply(record("sent", "sent", at_ms=NOW_MS - 9 * DAY))
    now[0] = NOW_MS + DAY + HOUR
    assert sorted(book.expire()[0]) == ["sent", "tried"]
    assert book.seen("tried") is Seen.NOTHING and book.seen("sent") is Seen.NOTHING


def test_an_unreadable_outcome_counts_as_done() -> None:
    book = ledger()
    book._apply(SimpleNamespace(key=b"dg-1", partition=0, value=b"not json", timestamp=NOW_MS))
    assert book.seen("dg-1") is Seen.DONE


def test_a_tombstone_read_back_forgets_the_id() -> None:
    book = ledger()
    book._apply(record("dg-1", "sent"))
    book._apply(record("dg-2", ATTEMPTING))
    book._apply(record("dg-1", None))
    book._apply(record("dg-2", None))
    assert book.seen("dg-1") is Seen.NOTHING and book.seen("dg-2") is Seen.NOTHING
    assert len(book) == 0


def test_default_retention_covers_a_consolidator_replay_and_the_digest_topic() -> None:
    # chat.events and mail.digests each keep a record up to retention + one segment (7 d).
    assert DEFAULT_RETENTION_MS == (7 + 7 + 7 + 7) * DAY
    assert MailerSettings().mailer_outcome_retention_days * DAY == DEFAULT_RETENTION_MS


def make_mailer(**settings: object) -> Mailer:
    cfg = MailerSettings(**settings)  # type: ignore[arg-type]
    return Mailer(cfg, producer=None, pool=None, signer=None, ledger=ledger())  # type: ignore[arg-type]


DIGEST = Digest(
    "dg/42 x", "shop-1", "conv-1", "b", "Ana", (DigestMessage("m1", 1, ChatContent(text="hi")),)
)


def test_without_a_bounce_domain_the_envelope_sender_is_the_reply_address() -> None:
    assert make_mailer().envelope_sender(DIGEST, "tok@chat-seller-us.x") == "tok@chat-seller-us.x"


def test_with_a_bounce_domain_each_digest_gets_its_own_verp_return_path() -> None:
    mailer = make_mailer(bounce_domain="bounces.bridge.example")
    assert mailer.envelope_sender(DIGEST, "tok@x") == "bounce+dg_42_x@bounces.bridge.example"


def test_a_temporary_failure_is_final_only_after_enough_tries_and_enough_time() -> None:
    policy = make_mailer(smtp_max_attempts=8, smtp_retry_window_s=3600).relay_retries
    assert not policy.gives_up(attempts=50, elapsed_s=600)  # many tries, short outage
    assert not policy.gives_up(attempts=3, elapsed_s=7200)  # long, but few tries
    assert policy.gives_up(attempts=8, elapsed_s=3600)
