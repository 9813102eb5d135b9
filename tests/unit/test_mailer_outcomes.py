"""Pure parts of the mailer's idempotency and envelope: the outcome ledger's record
handling and the VERP return path."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from mailer.app import Mailer
from mailer.mailer_settings import MailerSettings
from mailer.outcome_ledger import ATTEMPTING, OutcomeLedger, Seen
from shared.events import ChatContent, Digest, DigestMessage


def record(key: str, status: str) -> SimpleNamespace:
    return SimpleNamespace(key=key.encode(), value=orjson.dumps({"status": status}))


def ledger() -> OutcomeLedger:
    return OutcomeLedger("127.0.0.1:1", "mail.outcomes")


def test_an_id_never_recorded_is_unseen() -> None:
    assert ledger().seen("dg-1") is Seen.NOTHING


def test_attempting_alone_means_the_send_may_or_may_not_have_happened() -> None:
    book = ledger()
    book._apply(record("dg-1", ATTEMPTING))
    assert book.seen("dg-1") is Seen.ATTEMPTED


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
    book.record_done("dg-2")
    assert book.seen("dg-2") is Seen.DONE and len(book) == 1


def make_mailer(**settings: object) -> Mailer:
    cfg = MailerSettings(**settings)  # type: ignore[arg-type]
    return Mailer(cfg, producer=None, pool=None, signer=None, ledger=ledger())  # type: ignore[arg-type]


DIGEST = Digest("dg/42 x", "shop-1", "conv-1", "b", "Ana",
                (DigestMessage("m1", 1, ChatContent(text="hi")),))


def test_without_a_bounce_domain_the_envelope_sender_is_the_reply_address() -> None:
    assert make_mailer().envelope_sender(DIGEST, "tok@chat-seller-us.x") == "tok@chat-seller-us.x"


def test_with_a_bounce_domain_each_digest_gets_its_own_verp_return_path() -> None:
    mailer = make_mailer(bounce_domain="bounces.bridge.example")
    assert mailer.envelope_sender(DIGEST, "tok@x") == "bounce+dg_42_x@bounces.bridge.example"


def test_a_temporary_failure_is_final_only_after_enough_tries_and_enough_time() -> None:
    mailer = make_mailer(smtp_max_attempts=8, smtp_retry_window_s=3600)
    assert not mailer._gives_up(attempts=50, elapsed_s=600)  # many tries, short outage
    assert not mailer._gives_up(attempts=3, elapsed_s=7200)  # long, but few tries
    assert mailer._gives_up(attempts=8, elapsed_s=3600)
