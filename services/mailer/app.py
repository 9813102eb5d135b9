"""Mailer: digests from Kafka to the seller's inbox, once each.

For each ``Digest``: skip it if its id already has an outcome (replays after a
crash or rebalance), compose and sign the email, send it through the pooled
relay with backoff on temporary failures, record the outcome on the compacted
``mail.outcomes``, and only then commit the offset. Permanent 5xx failures go
to the dead-letter topic with the reason. Digests of one conversation are
sent in order; different conversations go in parallel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError

from shared.backoff import backoff_delay
from shared.codec import DecodeError, decode, encode
from shared.compacted import replay_topic
from shared.config import Settings, get_settings
from shared.events import Digest, MailNotice, MailOutcome, MailStatus
from shared.kafka import (
    DeadLetterWriter,
    consume_keyed_batches,
    make_consumer,
    make_producer,
    report_lag,
)
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS, UP
from shared.ops_http import build_ops_app, serve_ops
from shared.tokens import mint_token, parse_keys, reply_address
from shared.topics import MAIL_DIGESTS, MAIL_NOTICES, MAIL_OUTCOMES
from mailer.compose import ComposeContext, compose_digest_email
from mailer.dkim_signing import DkimSigner, load_dkim_signer
from mailer.notice_email import compose_notice_email
from mailer.mailer_metrics import DIGESTS_SENT, SEND_RETRIES, SEND_SECONDS
from mailer.render import DigestLinks
from mailer.smtp_pool import RelayConfig, SendError, SmtpPool

SERVICE = "mailer"
GROUP = "bridge-mailer"
log = logging.getLogger(SERVICE)


class SentDigests:
    """Digest ids that already have an outcome, loaded from the compacted outcomes topic."""

    def __init__(self) -> None:
        self._ids: set[str] = set()

    def __contains__(self, digest_id: str) -> bool:
        return digest_id in self._ids

    def add(self, digest_id: str) -> None:
        self._ids.add(digest_id)

    async def load(self, bootstrap: str) -> int:
        """Read every recorded outcome (compacted topic keyed by digest id)."""

        def apply(rec: ConsumerRecord) -> None:
            if rec.key:
                self._ids.add(rec.key.decode())

        return await replay_topic(bootstrap, MAIL_OUTCOMES.name, apply)


class Mailer:
    def __init__(self, cfg: Settings, producer: AIOKafkaProducer, pool: SmtpPool,
                 signer: DkimSigner | None) -> None:
        self.cfg = cfg
        self.producer = producer
        self.pool = pool
        self.signer = signer
        self.sent = SentDigests()
        self.dead_letters = DeadLetterWriter(producer, SERVICE)
        self._keys = parse_keys(cfg.token_keys.get_secret_value())
        self._concurrency = asyncio.Semaphore(max(1, cfg.smtp_pool_size * 2))

    def compose(self, digest: Digest) -> tuple[str, str, bytes]:
        """(envelope sender, recipient, signed message bytes) for a digest."""
        cfg = self.cfg
        token = mint_token(digest.shop_id, digest.conversation_id, self._keys,
                           now_s=time.time(), ttl_s=cfg.token_ttl_days * 86400)
        address = reply_address(token, digest.region, cfg.reply_domain_base)
        to = digest.destination_email or cfg.default_destination_email
        links = DigestLinks(
            chat_url=f"{cfg.chat_deep_link_base}/{digest.shop_id}/{digest.conversation_id}",
            settings_url=f"{cfg.settings_link_base}/{digest.shop_id}",
            marketplace_name=cfg.marketplace_name,
        )
        ctx = ComposeContext(
            marketplace_name=cfg.marketplace_name, from_address=address, to_address=to,
            message_id_domain=cfg.message_id_domain, links=links,
            list_unsubscribe_url=links.settings_url, now=datetime.now(UTC),
        )
        raw = bytes(compose_digest_email(digest, ctx))
        if self.signer is not None:
            raw = self.signer.sign(raw)
        return address, to, raw

    def compose_notice(self, notice: MailNotice) -> tuple[str, str, bytes]:
        cfg = self.cfg
        msg = compose_notice_email(notice, marketplace_name=cfg.marketplace_name,
                                   from_address=cfg.notices_from,
                                   message_id_domain=cfg.message_id_domain,
                                   now=datetime.now(UTC))
        raw = bytes(msg)
        if self.signer is not None:
            raw = self.signer.sign(raw)
        # Null reverse-path (RFC 3834 s.3.3 spirit): bounces of a notice must not loop back.
        return "", notice.to_address, raw

    async def handle(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        event_type: type[Digest] | type[MailNotice] = (
            MailNotice if record.topic == MAIL_NOTICES.name else Digest)
        try:
            item = decode(event_type, record.value or b"")
        except DecodeError as exc:
            await self.dead_letters.write(
                source_topic=record.topic, reason=f"undecodable {event_type.__name__}: {exc}",
                reason_class="bad_record", key=(record.key or b"").decode("utf-8", "replace"),
                partition=record.partition, offset=record.offset, payload=record.value or b"")
            EVENTS_HANDLED.labels(SERVICE, "bad_record").inc()
            return
        item_id = item.notice_id if isinstance(item, MailNotice) else item.digest_id
        if item_id in self.sent:
            EVENTS_HANDLED.labels(SERVICE, "duplicate").inc()
            return
        async with self._concurrency:
            outcome = await self._deliver(item)
        await self.producer.send_and_wait(MAIL_OUTCOMES.name, encode(outcome),
                                          key=item_id.encode())
        self.sent.add(item_id)
        EVENTS_HANDLED.labels(SERVICE, outcome.status).inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def _deliver(self, digest: Digest | MailNotice) -> MailOutcome:
        cfg = self.cfg
        source = MAIL_NOTICES.name if isinstance(digest, MailNotice) else MAIL_DIGESTS.name
        try:
            if isinstance(digest, MailNotice):
                sender, to, raw = self.compose_notice(digest)
            else:
                sender, to, raw = self.compose(digest)
        except Exception as exc:  # a digest we cannot render must not block the partition
            log.exception("compose failed", extra={"digest_id": digest.digest_id})
            await self.dead_letters.write(source_topic=source, key=_item_id(digest),
                                          reason=f"cannot compose: {exc}", reason_class="compose")
            return self._outcome(digest, MailStatus.FAILED, reason=f"cannot compose: {exc}")
        attempt = 0
        while True:
            attempt += 1
            t0 = time.perf_counter()
            try:
                await self.pool.send(sender, [to], raw)
                SEND_SECONDS.observe(time.perf_counter() - t0)
                DIGESTS_SENT.labels("sent").inc() if isinstance(digest, Digest) else None
                message_id = _header_value(raw, b"Message-ID")
                return self._outcome(digest, MailStatus.SENT, attempts=attempt, code=250,
                                     message_id=message_id)
            except SendError as exc:
                if exc.permanent or attempt >= cfg.smtp_max_attempts:
                    DIGESTS_SENT.labels("failed").inc()
                    await self.dead_letters.write(
                        source_topic=source, key=_item_id(digest),
                        reason=f"SMTP delivery failed after {attempt} attempts: {exc.reason}",
                        reason_class="smtp_permanent" if exc.permanent else "smtp_exhausted")
                    return self._outcome(digest, MailStatus.FAILED, attempts=attempt,
                                         code=exc.code, reason=exc.reason)
                SEND_RETRIES.inc()
                delay = backoff_delay(attempt, base_s=cfg.smtp_backoff_base_s,
                                      max_s=cfg.smtp_backoff_max_s)
                log.info("smtp temporary failure; retrying",
                         extra={"item_id": _item_id(digest), "attempt": attempt,
                                "reason": exc.reason, "delay_s": round(delay, 2)})
                await asyncio.sleep(delay)

    @staticmethod
    def _outcome(digest: Digest | MailNotice, status: str, *, attempts: int = 0, code: int = 0,
                 reason: str = "", message_id: str = "") -> MailOutcome:
        return MailOutcome(digest_id=_item_id(digest), shop_id=digest.shop_id,
                           conversation_id=digest.conversation_id, status=status,
                           message_id_header=message_id, smtp_code=code, reason=reason,
                           attempts=attempts, at_ms=now_ms())


def _item_id(item: Digest | MailNotice) -> str:
    return item.notice_id if isinstance(item, MailNotice) else item.digest_id


def load_signer(cfg: Settings) -> DkimSigner | None:
    """The DKIM signer when a key file is configured; unsigned mail only for local runs."""
    if not cfg.dkim_key_file:
        return None
    return load_dkim_signer(cfg.dkim_selector, cfg.dkim_domain, cfg.dkim_key_file)


def _header_value(raw: bytes, name: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return ""


async def main() -> None:
    cfg = get_settings()
    producer = make_producer(cfg)
    await producer.start()
    pool = SmtpPool(RelayConfig(cfg.smtp_host, cfg.smtp_port, cfg.smtp_starttls,
                                cfg.smtp_username, cfg.smtp_password.get_secret_value(),
                                cfg.smtp_timeout_s, cfg.smtp_pool_size))
    mailer = Mailer(cfg, producer, pool, load_signer(cfg))
    await mailer.sent.load(cfg.kafka_bootstrap)
    consumer = make_consumer(cfg, MAIL_DIGESTS.name, MAIL_NOTICES.name, group_id=GROUP)
    await consumer.start()
    healthy = True
    ops = await serve_ops(build_ops_app(SERVICE, lambda: healthy), cfg.http_host, cfg.mailer_port)
    lag = asyncio.create_task(report_lag(consumer, GROUP))
    UP.labels(SERVICE).set(1)
    try:
        await consume_keyed_batches(consumer, mailer.handle)
    except KafkaError:
        healthy = False
        raise
    finally:
        UP.labels(SERVICE).set(0)
        lag.cancel()
        ops.cancel()
        await consumer.stop()
        await producer.stop()
        await pool.close()
