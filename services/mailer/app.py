"""Mailer: digests from Kafka to the seller's inbox, once each.

For each ``Digest``: skip it if its id already has an outcome (replays after a
crash or rebalance), compose and sign the email, record ``attempting``, send it
through the pooled relay with backoff on temporary failures, record the outcome
on the compacted ``mail.outcomes``, and only then commit the offset. Permanent
5xx failures go to the dead-letter topic with the reason. Digests of one
conversation are sent in order; different conversations go in parallel.

What "once" means here, honestly:

* Replays (restart, rebalance, a second replica) never resend a digest whose
  outcome is recorded: an outcome goes to the ``mail.outcomes`` partition numbered like
  the digest's (or notice's) partition, and every replica holds the outcome partitions of
  the partitions it is assigned, caught up before each batch
  (:mod:`mailer.outcome_ledger`, :mod:`mailer.digest_consumer`).
* One window remains: a process killed after the relay's ``250`` and before the
  outcome write. Nothing can tell afterwards whether the relay has the mail (SMTP
  has no idempotency key), so the digest is sent again (at-least-once) rather than
  risk losing it. The ``attempting`` record makes such resends visible
  (``bridge_digest_resends_unknown_total``), and the resend carries the same content
  and the same ``Message-ID`` (derived from the digest id; only ``Date``, the reply
  token's timestamp, the DKIM signature and what a card lookup found this time
  differ), so mail stores and helpdesks
  that dedupe on Message-ID (Gmail does; others vary) show it once, and a mailbox
  that does not shows it twice, threaded with the original. At most the digests in flight at
  the moment of the kill (``BRIDGE_MAILER_CONCURRENCY``) can be affected. The ``sent``
  record's produce starts as soon as the relay's ``250`` is read; the time from there
  to the broker's ack is ``bridge_mailer_outcome_record_seconds``.
* A relay that never answers the end of DATA (``BRIDGE_SMTP_DATA_TIMEOUT_S``, 10 minutes
  by default, or a connection dropped while waiting) may have the mail. It is retried
  all the same (a loss is worse than a duplicate), counted in
  ``bridge_mailer_ambiguous_sends_total`` and noted in the ``sent`` outcome's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord

from mailer.card_lookup import CardLookup
from mailer.compose_process import (
    ComposeProcesses,
    ComposeProcessUnavailable,
)
from mailer.digest_composer import DigestComposer, load_signer
from mailer.digest_consumer import PartitionLost, consume_digests, rebalance_timeout_ms
from mailer.dkim_signing import DkimSigner
from mailer.mailer_metrics import (
    AMBIGUOUS_SENDS,
    ATTEMPT_WAITS,
    DIGESTS_SENT,
    NOTICES_DROPPED,
    OUTCOME_RECORD_SECONDS,
    RESENDS_UNKNOWN,
    SEND_RETRIES,
    SEND_SECONDS,
)
from mailer.mailer_settings import MailerSettings
from mailer.notice_email import compose_notice_bytes
from mailer.outcome_ledger import ATTEMPTING, OutcomeLedger, Seen
from mailer.send_policy import ambiguous_note, given_up, relay_retry_policy, temporary
from mailer.smtp_pool import RelayConfig, SendError, SmtpPool
from mailer.threading_headers import digest_message_id
from shared.backoff import GaveUp, retry
from shared.chat_platform.from_settings import chat_platform_from_settings
from shared.codec import DecodeError, decoder, encode
from shared.events import Digest, MailNotice, MailOutcome, MailStatus
from shared.kafka import (
    DeadLetterWriter,
    make_consumer,
    start_producer,
)
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS
from shared.send_limits import SendWindow, limits_from, send_of
from shared.sent_mail_log import SentMailLog, notice_send
from shared.service_runtime import ServiceRuntime
from shared.topics import DAY_MS, MAIL_DIGESTS, MAIL_NOTICES, MAIL_OUTCOMES

SERVICE = "mailer"
PRUNE_EVERY_ADMITTED = 1000  # notices admitted between forgetting those out of every window
GROUP = "bridge-mailer"
# How often a digest waiting out another process's attempt looks at the ledger (which the
# background tail keeps current).
ATTEMPT_POLL_S = 0.25
log = logging.getLogger(SERVICE)


class Mailer:
    def __init__(
        self,
        cfg: MailerSettings,
        producer: AIOKafkaProducer,
        pool: SmtpPool,
        signer: DkimSigner | None,
        ledger: OutcomeLedger,
        compose_processes: ComposeProcesses | None = None,
        sends: SendWindow | None = None,
        cards: CardLookup | None = None,
    ) -> None:
        self.cfg = cfg
        # Product and order cards filled in from the platform before composing (None: off).
        self.cards = cards
        # Notices admitted lately (seeded at start with every notice on the log in the
        # window, then fed by handle): the backstop behind the admin API's check of the
        # same limits (shared/send_limits.py), for replica races and producers that do
        # not check. Keyed by shop, a shop's notices are all decided here, in log order.
        self.sends = sends
        self.producer = producer
        self.pool = pool
        self.signer = signer
        self.ledger = ledger
        self.dead_letters = DeadLetterWriter(producer, SERVICE)
        self.relay_retries = relay_retry_policy(cfg)
        self.composer = DigestComposer(cfg, signer)
        # Where digests are composed and signed: in helper processes when configured
        # (mailer/compose_process.py), else (and while a helper that died restarts) here.
        self._compose_processes = compose_processes
        # More than the connections: the next mails are composed, signed and recorded
        # while others are on the wire; the pool caps the SMTP sessions themselves.
        self._concurrency = asyncio.Semaphore(max(1, cfg.smtp_pool_size, cfg.mailer_concurrency))

    def sign(self, raw: bytes) -> bytes:
        """``raw`` DKIM-signed (unchanged without a signer)."""
        return raw if self.signer is None else self.signer.sign(raw)

    def compose(self, digest: Digest) -> tuple[str, str, bytes]:
        """(envelope sender, recipient, unsigned message bytes) for a digest."""
        return self.composer.compose(digest)

    def envelope_sender(self, digest: Digest, reply_address: str) -> str:
        return self.composer.envelope_sender(digest, reply_address)

    async def compose_signed(self, digest: Digest, record_value: bytes) -> tuple[str, str, bytes]:
        """(envelope sender, recipient, signed message): in a compose process when one
        runs (``record_value`` is what it decodes), else here. Raises
        :class:`ComposeFailed` (or the loop's own exception) when it cannot be composed."""
        if self._compose_processes is not None:
            self._compose_processes.revive()  # any that died: restarted in the background
            if self._compose_processes.alive:
                with contextlib.suppress(ComposeProcessUnavailable):  # died: compose here
                    return await self._compose_processes.compose(record_value)
        sender, to, raw = self.compose(digest)
        return sender, to, self.sign(raw)

    def compose_notice(self, notice: MailNotice) -> tuple[str, str, bytes]:
        cfg = self.cfg
        raw = compose_notice_bytes(
            notice,
            marketplace_name=cfg.marketplace_name,
            from_address=cfg.notices_from,
            message_id_domain=cfg.message_id_domain,
            now=datetime.now(UTC),
        )
        # Null reverse-path (RFC 3834 s.3.3 spirit): bounces of a notice must not loop back.
        return "", notice.to_address, raw

    async def handle(
        self, record: ConsumerRecord, still_owned: Callable[[], bool] = lambda: True
    ) -> None:
        """Send one record's mail once. ``still_owned`` says whether this process still
        holds the record's partition; it is asked before every SMTP attempt, so a
        process that lost the partition (rebalance, stalled too long) stops retrying
        instead of racing the new owner. Raises :class:`PartitionLost` then."""
        started = time.perf_counter()
        event_type: type[Digest] | type[MailNotice] = (
            MailNotice if record.topic == MAIL_NOTICES.name else Digest
        )
        try:
            item = _DECODERS[event_type](record.value or b"")
        except DecodeError as exc:
            await self.dead_letters.write(
                source_topic=record.topic,
                reason=f"undecodable {event_type.__name__}: {exc}",
                reason_class="bad_record",
                key=(record.key or b"").decode("utf-8", "replace"),
                partition=record.partition,
                offset=record.offset,
                payload=record.value or b"",
            )
            EVENTS_HANDLED.labels(SERVICE, "bad_record").inc()
            return
        item_id = _item_id(item)
        placed = self.ledger.partition_for(record.partition)  # where its outcomes go
        seen = self.ledger.seen(item_id)
        if seen is Seen.DONE:
            EVENTS_HANDLED.labels(SERVICE, "duplicate").inc()
            return
        # Before the first await, so a shop's notices are decided in log order.
        refusal = self._refusal(item) if isinstance(item, MailNotice) else None
        if refusal is not None:
            reason, label = refusal
            NOTICES_DROPPED.labels(label).inc()
            log.warning(
                "notice not sent",
                extra={"item_id": item_id, "shop_id": item.shop_id, "reason": reason},
            )
            await self.producer.send_and_wait(
                MAIL_OUTCOMES.name,
                encode(self._outcome(item, MailStatus.FAILED, reason=f"not sent: {reason}")),
                key=item_id.encode(),
                partition=placed,
            )
            self.ledger.record_done(item_id, placed)
            EVENTS_HANDLED.labels(SERVICE, "dropped").inc()
            return
        if seen is Seen.ATTEMPTED:
            if await self._attempt_settled(item_id, still_owned):
                EVENTS_HANDLED.labels(SERVICE, "duplicate").inc()
                return
            # A previous owner died mid-send: the relay may have it. Sending again
            # (same Message-ID) is the lesser harm than losing it; see the module doc.
            RESENDS_UNKNOWN.inc()
            log.warning(
                "resending a digest whose earlier attempt has no outcome",
                extra={"item_id": item_id},
            )
        # The slot is held until the outcome is acknowledged: at most the concurrency's
        # worth of mails sit between a 250 and their record, so a kill can double no
        # more than that however slow the broker is (a slow broker slows sending instead).
        async with self._concurrency:
            outcome, accepted_at = await self._deliver(
                item, still_owned, record.value or b"", placed
            )
            # Nothing awaited between the relay's 250 and this produce: from here to the
            # ack is the window in which a kill makes the replay resend a mail the relay has.
            await self.producer.send_and_wait(
                MAIL_OUTCOMES.name, encode(outcome), key=item_id.encode(), partition=placed
            )
        if accepted_at is not None:
            OUTCOME_RECORD_SECONDS.observe(time.perf_counter() - accepted_at)
        self.ledger.record_done(item_id, placed)
        EVENTS_HANDLED.labels(SERVICE, outcome.status).inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def _attempt_settled(self, item_id: str, still_owned: Callable[[], bool]) -> bool:
        """Wait, up to the attempt lease from the pending attempt's mark, for its process
        to record the outcome; True when it did (nothing to send). The process that began
        it may still be sending after losing the partition, and a resend now would be a
        duplicate; past the lease it is taken for dead. Raises :class:`PartitionLost` if
        this process loses the partition meanwhile."""
        waited = False
        while (at_ms := self.ledger.attempted_at_ms(item_id)) is not None:
            left_s = (at_ms + self.cfg.mailer_attempt_lease_s * 1000 - now_ms()) / 1000
            if left_s <= 0:
                break
            if not still_owned():
                raise PartitionLost(item_id)
            waited = True
            await asyncio.sleep(min(ATTEMPT_POLL_S, left_s))
        settled = self.ledger.seen(item_id) is Seen.DONE
        if waited:
            ATTEMPT_WAITS.labels("settled" if settled else "lease_expired").inc()
        return settled

    def _refusal(self, notice: MailNotice) -> tuple[str, str] | None:
        """(reason, metric label) when this notice must not be sent; else it is counted."""
        if not notice.to_address.strip():
            return (
                "the notice has no recipient (the shop has no destination inbox)",
                "no_recipient",
            )
        if self.sends is None:
            return None
        over = self.sends.admit(send_of(notice))
        if over is None and len(self.sends) % PRUNE_EVERY_ADMITTED == 0:
            self.sends.prune(now_ms())
        return (over.reason, over.label) if over is not None else None

    async def _deliver(
        self,
        digest: Digest | MailNotice,
        still_owned: Callable[[], bool],
        record_value: bytes,
        placed: int | None,
    ) -> tuple[MailOutcome, float | None]:
        """The outcome to record, and when the relay's 250 arrived (``perf_counter``;
        None when it did not). ``placed``: the ledger partition of its records."""
        cfg = self.cfg
        source = MAIL_NOTICES.name if isinstance(digest, MailNotice) else MAIL_DIGESTS.name
        if not still_owned():  # stopping or revoked: left to the next owner, untried
            raise PartitionLost(_item_id(digest))
        if isinstance(digest, Digest) and self.cards is not None:
            # Bounded by the lookup budget, never failing: a card not known in time shows
            # its id. The compose process reads the record, so it gets the filled one.
            filled = await self.cards.fill(digest)
            if filled is not digest:
                digest, record_value = filled, encode(filled)
        try:
            if isinstance(digest, MailNotice):
                sender, to, raw = self.compose_notice(digest)
                raw = self.sign(raw)
            else:
                sender, to, raw = await self.compose_signed(digest, record_value)
        except Exception as exc:  # a digest we cannot render must not block the partition
            log.exception("compose failed", extra={"item_id": _item_id(digest)})
            await self.dead_letters.write(
                source_topic=source,
                key=_item_id(digest),
                reason=f"cannot compose: {exc}",
                reason_class="compose",
            )
            return self._outcome(digest, MailStatus.FAILED, reason=f"cannot compose: {exc}"), None
        if not still_owned():  # stopped while filling or composing: nothing tried yet, so
            raise PartitionLost(_item_id(digest))  # no mark that would read as a resend
        # Recorded before the first byte goes to the relay: a crash from here to the
        # outcome write leaves this mark, so a replay knows it may be a resend.
        await self.producer.send_and_wait(
            MAIL_OUTCOMES.name,
            encode(self._outcome(digest, ATTEMPTING)),
            key=_item_id(digest).encode(),
            partition=placed,
        )

        ambiguous = 0  # tries whose end-of-DATA reply never came

        async def send(attempt: int) -> tuple[int, float]:
            nonlocal ambiguous
            if not still_owned():  # checked before every try: never race the new owner
                raise PartitionLost(_item_id(digest))
            t0 = time.perf_counter()
            try:
                await self.pool.send(sender, [to], raw)
            except SendError as exc:
                if exc.ambiguous:
                    ambiguous += 1
                    AMBIGUOUS_SENDS.labels(exc.ambiguous).inc()
                    log.warning(
                        "no reply to the end of DATA: the relay may have the mail; "
                        "retrying may send it twice",
                        extra={
                            "item_id": _item_id(digest),
                            "attempt": attempt,
                            "reason": exc.ambiguous,
                        },
                    )
                raise
            accepted_at = time.perf_counter()
            SEND_SECONDS.observe(accepted_at - t0)
            return attempt, accepted_at

        def retrying(exc: SendError, attempt: int, delay: float) -> None:
            SEND_RETRIES.inc()
            log.info(
                "smtp temporary failure; retrying",
                extra={
                    "item_id": _item_id(digest),
                    "attempt": attempt,
                    "reason": exc.reason,
                    "delay_s": round(delay, 2),
                },
            )

        try:
            attempts, accepted_at = await retry(
                send, self.relay_retries, on=SendError, retryable=temporary, on_retry=retrying
            )
        except GaveUp as gave_up:
            fate = given_up(gave_up.error, gave_up.attempts)
            DIGESTS_SENT.labels("failed").inc()
            await self.dead_letters.write(
                source_topic=source,
                key=_item_id(digest),
                reason=fate.dead_letter_reason,
                reason_class=fate.reason_class,
            )
            return self._outcome(
                digest,
                MailStatus.FAILED,
                attempts=fate.attempts,
                code=fate.smtp_code,
                reason=fate.reason,
            ), None
        DIGESTS_SENT.labels("sent").inc() if isinstance(digest, Digest) else None
        message_id = (
            digest_message_id(digest.digest_id, cfg.message_id_domain)
            if isinstance(digest, Digest)
            else _header_value(raw, b"Message-ID")
        )
        return self._outcome(
            digest,
            MailStatus.SENT,
            attempts=attempts,
            code=250,
            message_id=message_id,
            reason=ambiguous_note(ambiguous),
        ), accepted_at

    @staticmethod
    def _outcome(
        digest: Digest | MailNotice,
        status: str,
        *,
        attempts: int = 0,
        code: int = 0,
        reason: str = "",
        message_id: str = "",
    ) -> MailOutcome:
        return MailOutcome(
            digest_id=_item_id(digest),
            shop_id=digest.shop_id,
            conversation_id=digest.conversation_id,
            status=status,
            message_id_header=message_id,
            smtp_code=code,
            reason=reason,
            attempts=attempts,
            at_ms=now_ms(),
        )


# Bound per record type once (decode would look the plan up per record).
_DECODERS: dict[type, Callable[[bytes], Digest | MailNotice]] = {
    Digest: decoder(Digest),
    MailNotice: decoder(MailNotice),
}


def _item_id(item: Digest | MailNotice) -> str:
    return item.notice_id if isinstance(item, MailNotice) else item.digest_id


async def start_compose_processes(cfg: MailerSettings) -> ComposeProcesses | None:
    """The compose helper processes, started, when ``mailer_compose_processes`` > 0."""
    if cfg.mailer_compose_processes <= 0:
        return None
    processes = ComposeProcesses(cfg, cfg.mailer_compose_processes)
    await processes.start()
    return processes


def _header_value(raw: bytes, name: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return ""


async def start_mailer_producer(cfg: MailerSettings) -> AIOKafkaProducer:
    """The producer for outcomes and dead letters, lingering ``mailer_producer_linger_ms``."""
    return await start_producer(cfg, linger_ms=cfg.mailer_producer_linger_ms)


def outcome_ledger(cfg: MailerSettings, producer: AIOKafkaProducer) -> OutcomeLedger:
    """The ledger as configured: retention, and tombstones written through ``producer``."""
    return OutcomeLedger(
        cfg.kafka_bootstrap,
        MAIL_OUTCOMES.name,
        retention_ms=int(cfg.mailer_outcome_retention_days * DAY_MS),
        tombstones=producer if cfg.mailer_outcome_tombstones else None,
        guarded=[MAIL_DIGESTS.name, MAIL_NOTICES.name],
        read_all=cfg.ledger_read_all,
    )


def card_lookup(cfg: MailerSettings) -> CardLookup | None:
    """The card lookups as configured, through the configured chat platform's client."""
    if not cfg.card_lookups:
        return None
    return CardLookup(
        chat_platform_from_settings(cfg),
        budget_s=cfg.card_lookup_budget_s,
        cache_entries=cfg.card_cache_entries,
        ttl_s=cfg.card_cache_ttl_s,
        failure_ttl_s=cfg.card_failure_ttl_s,
    )


def relay_config(cfg: MailerSettings) -> RelayConfig:
    return RelayConfig(
        cfg.smtp_host,
        cfg.smtp_port,
        cfg.smtp_starttls,
        cfg.smtp_username,
        cfg.smtp_password.get_secret_value(),
        cfg.smtp_timeout_s,
        cfg.smtp_pool_size,
        use_tls=cfg.smtp_use_tls,
        ca_file=cfg.smtp_tls_ca_file,
        validate_certs=cfg.smtp_validate_certs,
        data_timeout_s=cfg.smtp_data_timeout_s,
    )


async def main(runtime: ServiceRuntime, cfg: MailerSettings) -> None:
    """The mailer's parts, started in order on the runtime (stopped in reverse)."""
    signer = load_signer(cfg)  # a bad key fails here, before anything is consumed
    producer = await runtime.producer(start_mailer_producer(cfg))
    pool = SmtpPool(relay_config(cfg))
    runtime.on_stop(pool.close)
    ledger = outcome_ledger(cfg, producer)
    await runtime.started(ledger, ledger.start, ledger.stop)
    # Per partition, it holds nothing yet: the digest consumer's assignment decides what.
    log.info(
        "outcome ledger started",
        extra={"outcomes": len(ledger), "per_partition": ledger.per_partition},
    )
    compose_processes = await start_compose_processes(cfg)
    if compose_processes is not None:
        runtime.on_stop(compose_processes.close)
    sends = SendWindow(limits_from(cfg))
    # Seeded once with what is on the log (a restart must not reopen the window); erring
    # on the strict side, the notices not yet handled count too.
    sent_log = SentMailLog(
        cfg.kafka_bootstrap,
        sends,
        {MAIL_NOTICES.name: notice_send},
        client_id="mailer-sent-mail",
        follow=False,
    )
    await runtime.started(sent_log, sent_log.start, sent_log.stop)
    cards = card_lookup(cfg)
    if cards is not None:
        runtime.on_stop(cards.aclose)
    mailer = Mailer(cfg, producer, pool, signer, ledger, compose_processes, sends, cards)
    # Ready while both Kafka clients reach the cluster (a relay outage is retried, not unready).
    consumer = await runtime.consumer(
        make_consumer(
            cfg,
            group_id=cfg.mailer_group,
            rebalance_timeout_ms=rebalance_timeout_ms(cfg.mailer_revoke_drain_s),
        ),
        group=cfg.mailer_group,
    )
    runtime.serve_ops(cfg.http_host, cfg.mailer_port)
    await consume_digests(
        consumer,
        [MAIL_DIGESTS.name, MAIL_NOTICES.name],
        ledger,
        mailer.handle,
        max_records=cfg.mailer_batch_records,
        revoke_timeout_s=cfg.mailer_revoke_drain_s,
        stopping=runtime.drain_on_signal(cfg.mailer_shutdown_drain_s),
    )
