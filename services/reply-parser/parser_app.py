"""The parser: raw mail from ``mail.inbound`` -> chat parts on ``chat.replies``.

Every mail ends as exactly one final ``InboundResult`` (reply, auto_reply, bounce,
loop or rejected, with the reason); a reply also yields a ``ChatReply`` for
the fan-out and an ``EMAIL_REPLY`` chat event so the consolidator stops
holding what the seller just answered. Offsets commit after those writes.

A mail whose sender authentication met DNS trouble is never accepted on a guess, and never
holds up its partition: it goes to ``mail.inbound.retry`` with its attempt number and due
time (a ``deferred`` result says so), and a second consumer checks it again when due, with
backoff, up to ``auth_retry_attempts`` in all; the last attempt refuses it (dead letter
"authentication could not be checked", the shop told). The mail then arrives later than
replies sent after it, as a mail a server deferred would.

Before each parse the record is marked on ``mail.inbound.attempts`` and a watchdog ends the
process when a parse is stuck or too big (``parse_guard``): a mail that kills the process is
dead-lettered after ``parser_max_attempts`` deaths instead of crash-looping the partition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict, deque

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from reply_parser.inbound_pipeline import (
    InboundDecision,
    OwnIdentity,
    Screened,
    conclude,
    config_from,
    screen,
)
from reply_parser.mail_auth import AuthResult, DnsPythonResolver, DnsResolver, evaluate
from reply_parser.mime_limits import MailTooComplex
from reply_parser.parse_guard import AttemptLog, ParseWatchdog
from reply_parser.parser_metrics import DIGESTS_BOUNCED, REPLIES_CLASSIFIED
from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.backoff import RetryPolicy
from shared.codec import DecodeError, decode, encode
from shared.events import (
    ChatEvent,
    ChatEventKind,
    InboundEnvelope,
    InboundResult,
    NoticeKind,
    ReplyClass,
)
from shared.kafka import (
    DeadLetterWriter,
    make_consumer,
    report_lag,
    start_producer,
)
from shared.logging import now_ms, redact_address
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS
from shared.service_runtime import ServiceRuntime
from shared.settings_view import ShopSettingsView
from shared.topics import (
    CHAT_EVENTS,
    CHAT_REPLIES,
    INBOUND_RECORD_LIMIT,
    MAIL_INBOUND_RESULTS,
    MAIL_INBOUND_RETRY,
    MAIL_NOTICES,
)

SERVICE = "reply_parser"
GROUP = "bridge-reply-parser"  # BRIDGE_PARSER_GROUP overrides it (a test or canary)
RETRY_GROUP = "bridge-reply-parser-retry"
# Kafka headers of a record on mail.inbound.retry (besides "envelope").
ATTEMPT_HEADER, DUE_HEADER = "auth_attempt", "retry_at_ms"
# Longest nap of the retry consumer between polls while nothing is due (it re-fetches the
# not-yet-due records after it, so it must stay well under the consumer's poll interval).
RETRY_NAP_MAX_S = 10.0
log = logging.getLogger(SERVICE)


_GUARD_SWEEP_AT = 100_000


class ConversationRateGuard:
    """At most ``limit`` delivered replies per conversation per ``window_s`` (loop brake)."""

    def __init__(self, limit: int = 30, window_s: float = 3600.0) -> None:
        self._limit = limit
        self._window = window_s
        self._seen: dict[str, deque[float]] = defaultdict(deque)

    def allow(self, key: str, now: float) -> bool:
        if len(self._seen) > _GUARD_SWEEP_AT:
            self._sweep(now)
        times = self._seen[key]
        while times and now - times[0] > self._window:
            times.popleft()
        if len(times) >= self._limit:
            return False
        times.append(now)
        return True

    def _sweep(self, now: float) -> None:
        """Forget keys with nothing inside the window (memory stays bounded by activity)."""
        for key in [k for k, t in self._seen.items() if not t or now - t[-1] > self._window]:
            del self._seen[key]


def _int_header(headers: dict[str, bytes], name: str, default: int) -> int:
    try:
        return int(headers.get(name, b"").decode() or default)
    except ValueError:
        return default


# The notices to the shop's own inbox that any mail can set off (as opposed to the seller's
# own content notices, which need a delivered reply): all of them share one budget.
OUTSIDE_TRIGGERED_NOTICES = frozenset({NoticeKind.SENDER_REJECTED, NoticeKind.HELD_AS_AUTOMATED})


class Parser:
    def __init__(
        self,
        cfg: ReplyParserSettings,
        producer: AIOKafkaProducer,
        shops: ShopSettingsView,
        resolver: DnsResolver | None,
        watchdog: ParseWatchdog | None = None,
    ) -> None:
        self.cfg = cfg
        self.producer = producer
        self.shops = shops
        self.own = OwnIdentity(cfg.message_id_domain, cfg.reply_domain_base)
        self.pipeline = config_from(cfg)
        self.resolver = resolver
        # A mail whose sender's DNS did not answer waits on mail.inbound.retry with this
        # schedule; its last attempt refuses it instead of deferring again.
        self.auth_retries = RetryPolicy(
            cfg.auth_retry_base_s, cfg.auth_retry_max_s, max_attempts=cfg.auth_retry_attempts
        )
        self.guard = ConversationRateGuard(cfg.reply_rate_limit, cfg.reply_rate_window_s)
        # Every notice a mail from outside can trigger to the shop's own inbox ("reply
        # refused", "held as automated"; see OUTSIDE_TRIGGERED_NOTICES) is counted per
        # (shop, sender) and per (shop, sender domain): one sender or outside domain cannot
        # use up the notices (and the mailer's per-shop send limit) meant for the shop.
        self.notices_per_sender = ConversationRateGuard(
            cfg.rejection_notice_per_sender_limit, cfg.reply_rate_window_s
        )
        self.notices_per_domain = ConversationRateGuard(
            cfg.rejection_notice_limit, cfg.reply_rate_window_s
        )
        self.dead_letters = DeadLetterWriter(producer, SERVICE)
        # Watches the parse only: a Kafka outage while publishing must not count as a death.
        self.watchdog = watchdog or ParseWatchdog(stuck_after_s=float("inf"))

    async def handle(self, rec: ConsumerRecord) -> None:
        started = time.perf_counter()
        headers = dict(rec.headers or ())
        try:
            env = decode(InboundEnvelope, headers.get("envelope", b""))
        except DecodeError as exc:
            await self.dead_letters.write(
                source_topic=rec.topic,
                reason=f"no envelope: {exc}",
                reason_class="bad_record",
                partition=rec.partition,
                offset=rec.offset,
            )
            return
        raw = rec.value or b""
        attempt = _int_header(headers, ATTEMPT_HEADER, 1)
        try:
            with self.watchdog.parsing(f"{rec.topic}/{rec.partition}@{rec.offset}"):
                decision = await self.decide(
                    raw, env, last_attempt=self.auth_retries.gives_up(attempt, elapsed_s=0)
                )
        except MailTooComplex as exc:
            await self._dead_letter(
                rec, raw, env, f"mail beyond parsing limits: {exc}", "too_complex"
            )
            decision = InboundDecision(ReplyClass.REJECTED, f"mail beyond parsing limits: {exc}")
        except Exception as exc:  # malformed beyond what the parser survives: keep the loop alive
            log.exception("cannot parse inbound mail", extra={"mail_id": env.mail_id})
            await self._dead_letter(
                rec, raw, env, f"unparseable mail: {exc.__class__.__name__}: {exc}", "unparseable"
            )
            decision = InboundDecision(ReplyClass.REJECTED, f"unparseable mail: {exc}")
        if decision.classification == ReplyClass.DEFERRED:
            decision = await self._defer(rec, raw, headers, attempt, decision)
        elif decision.auth_unchecked:
            await self._dead_letter(
                rec,
                raw,
                env,
                f"authentication could not be checked after {attempt} attempts: {decision.reason}",
                "auth_unchecked",
            )
        if decision.reply is not None and not self.guard.allow(
            f"{env.shop_id}:{env.conversation_id}", time.monotonic()
        ):
            decision = InboundDecision(ReplyClass.LOOP, "too many replies for this conversation")
        if any(
            n.kind in OUTSIDE_TRIGGERED_NOTICES for n in decision.notices
        ) and not self._shop_notice_allowed(env.shop_id, decision.sender):
            decision = dataclasses.replace(
                decision,
                notices=tuple(
                    n for n in decision.notices if n.kind not in OUTSIDE_TRIGGERED_NOTICES
                ),
            )
        await self._publish(rec.key or b"", env, decision)
        REPLIES_CLASSIFIED.labels(decision.classification).inc()
        if decision.bounce is not None:
            DIGESTS_BOUNCED.labels("failed" if decision.bounce.permanent else "delayed").inc()
        EVENTS_HANDLED.labels(SERVICE, decision.classification).inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)

    async def decide(
        self, raw: bytes, env: InboundEnvelope, *, last_attempt: bool
    ) -> InboundDecision:
        """The pipeline's pure stages, with the sender's DNS looked up between them only
        when the decision depends on it. Each step runs in a worker thread: parsing a large
        mail takes CPU, and the resolver blocks, while this loop must keep Kafka heartbeats
        and lag reports going."""
        shop = self.shops.get(env.shop_id)
        screened = await asyncio.to_thread(screen, raw, env, shop, self.own, config=self.pipeline)
        if isinstance(screened, InboundDecision):
            return screened
        auth = await self.authenticate(screened, env) if screened.needs_auth else None
        return await asyncio.to_thread(
            conclude, screened, env, shop, auth=auth, last_attempt=last_attempt
        )

    async def authenticate(self, screened: Screened, env: InboundEnvelope) -> AuthResult:
        """DKIM, SPF and DMARC of the mail through the resolver (the pipeline's only I/O)."""
        return await asyncio.to_thread(
            evaluate,
            screened.raw,
            screened.msg,
            peer_ip=env.peer,
            mail_from=env.mail_from,
            resolver=self.resolver,
            trusted_ids=self.pipeline.trusted_authserv_ids,
        )

    async def _defer(
        self,
        rec: ConsumerRecord,
        raw: bytes,
        headers: dict[str, bytes],
        attempt: int,
        decision: InboundDecision,
    ) -> InboundDecision:
        """Queue the mail on mail.inbound.retry, due after a backoff; the deferred result
        says when it is checked again."""
        delay_s = self.auth_retries.delay(attempt)
        await self.producer.send_and_wait(
            MAIL_INBOUND_RETRY.name,
            raw,
            key=rec.key,
            headers=[
                ("envelope", headers.get("envelope", b"")),
                (ATTEMPT_HEADER, str(attempt + 1).encode()),
                (DUE_HEADER, str(now_ms() + int(delay_s * 1000)).encode()),
            ],
        )
        return dataclasses.replace(
            decision,
            reason=(
                f"{decision.reason}; checked again in {delay_s:.0f} s (attempt {attempt + 1} of "
                f"{self.cfg.auth_retry_attempts})"
            ),
        )

    def _shop_notice_allowed(self, shop_id: str, sender: str) -> bool:
        now = time.monotonic()
        domain = sender.rpartition("@")[2]
        return self.notices_per_sender.allow(
            f"{shop_id}:{sender}", now
        ) and self.notices_per_domain.allow(f"{shop_id}:{domain}", now)

    async def give_up(self, rec: ConsumerRecord, deaths: int) -> None:
        """Dead-letter a record the parser process died on *deaths* times, unparsed."""
        reason = (
            f"the parser died on this mail {deaths} times (partition {rec.partition}, "
            f"offset {rec.offset}); not parsed again"
        )
        try:
            env = decode(InboundEnvelope, dict(rec.headers or ()).get("envelope", b""))
        except DecodeError as exc:
            await self.dead_letters.write(
                source_topic=rec.topic,
                reason=f"{reason}; no envelope: {exc}",
                reason_class="parser_died",
                partition=rec.partition,
                offset=rec.offset,
            )
            return
        await self._dead_letter(rec, rec.value or b"", env, reason, "parser_died")
        await self._publish(rec.key or b"", env, InboundDecision(ReplyClass.REJECTED, reason))
        REPLIES_CLASSIFIED.labels(ReplyClass.REJECTED).inc()

    async def _dead_letter(
        self, rec: ConsumerRecord, raw: bytes, env: InboundEnvelope, reason: str, reason_class: str
    ) -> None:
        # Where the mail is and why, not the mail: an operator re-reads it from the source
        # topic at (partition, offset) while its retention lasts.
        await self.dead_letters.write(
            source_topic=rec.topic,
            reason=reason[:500],
            reason_class=reason_class,
            key=(rec.key or b"").decode(errors="replace"),
            partition=rec.partition,
            offset=rec.offset,
            payload=raw,
            extra={
                "mail_id": env.mail_id,
                "shop_id": env.shop_id,
                "conversation_id": env.conversation_id,
            },
        )
        log.warning(
            "inbound mail dead-lettered", extra={"mail_id": env.mail_id, "reason": reason[:200]}
        )

    async def _publish(self, key: bytes, env: InboundEnvelope, decision: InboundDecision) -> None:
        sends = []
        reply = decision.reply
        for notice in decision.notices:
            # Keyed by shop like every notice: one mailer owns a shop's notices and admits
            # them in order against the send limits (it dedups by id across partitions).
            sends.append(
                self.producer.send_and_wait(
                    MAIL_NOTICES.name, encode(notice), key=notice.shop_id.encode()
                )
            )
        if reply is not None:
            sends.append(self.producer.send_and_wait(CHAT_REPLIES.name, encode(reply), key=key))
            seen = ChatEvent(
                kind=ChatEventKind.EMAIL_REPLY,
                shop_id=env.shop_id,
                conversation_id=env.conversation_id,
                message_id=reply.reply_id,
                sent_at_ms=env.received_at_ms,
                received_at_ms=env.received_at_ms,
            )
            sends.append(self.producer.send_and_wait(CHAT_EVENTS.name, encode(seen), key=key))
        result = InboundResult(
            mail_id=env.mail_id,
            shop_id=env.shop_id,
            conversation_id=env.conversation_id,
            classification=decision.classification,
            reason=decision.reason,
            reply_id=reply.reply_id if reply else "",
            parts=len(reply.parts) if reply else 0,
            at_ms=now_ms(),
            digest_id=decision.bounce.digest_id if decision.bounce else "",
            bounce_final=decision.bounce.permanent if decision.bounce else False,
            auth=decision.auth.summary() if decision.auth else "",
            auth_outcome=decision.auth_verdict.outcome if decision.auth_verdict else "",
        )
        sends.append(
            self.producer.send_and_wait(MAIL_INBOUND_RESULTS.name, encode(result), key=key)
        )
        await asyncio.gather(*sends)
        log.info(
            "inbound mail handled",
            extra={
                "mail_id": env.mail_id,
                "class": decision.classification,
                "reason": decision.reason,
                "sender": redact_address(decision.sender) if decision.sender else "",
            },
        )


class _ReloadAttempts(ConsumerRebalanceListener):  # type: ignore[misc]
    """Partitions may come from another process: read the markers it left before use."""

    def __init__(self, attempts: AttemptLog) -> None:
        self._attempts = attempts

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self._attempts.forget({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._attempts.forget({tp.partition for tp in assigned})


async def consume(
    consumer: AIOKafkaConsumer,
    parser: Parser,
    attempts: AttemptLog,
    max_attempts: int,
    bootstrap: str,
) -> None:
    """Parse records in order per partition, each marked before its parse; offsets commit
    after the batch."""
    while True:
        batches = await consumer.getmany(timeout_ms=500)
        if batches:
            await attempts.ensure_loaded(bootstrap, {tp.partition for tp in batches})
        for tp, records in batches.items():
            one_by_one = attempts.suspect(tp.partition, records[0].offset, records[-1].offset)
            if not one_by_one:
                await attempts.mark(tp.partition, records[0].offset, 1, records[-1].offset)
            for rec in records:
                if one_by_one:
                    deaths = attempts.deaths_before(rec.partition, rec.offset)
                    if deaths is not None and deaths >= max_attempts:
                        await parser.give_up(rec, deaths)
                        continue
                    if deaths is not None:
                        await attempts.mark(rec.partition, rec.offset, deaths + 1)
                await parser.handle(rec)
        if batches:
            await consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})


async def retry_deferred(consumer: AIOKafkaConsumer, parser: Parser) -> None:
    """Check deferred mails again as they fall due (mail.inbound.retry).

    A partition's records go in order; when its next record is not due yet the consumer
    seeks back to it and naps until the earliest due time (at most RETRY_NAP_MAX_S), so it
    keeps polling and each partition waits only for its own records.
    """
    while True:
        batches = await consumer.getmany(timeout_ms=500)
        handled: dict[TopicPartition, int] = {}
        next_due: int | None = None
        for tp, records in batches.items():
            for rec in records:
                due = _int_header(dict(rec.headers or ()), DUE_HEADER, 0)
                if due > now_ms():
                    consumer.seek(tp, rec.offset)
                    next_due = due if next_due is None else min(next_due, due)
                    break
                await parser.handle(rec)
                handled[tp] = rec.offset + 1
        if handled:
            await consumer.commit(handled)
        if next_due is not None:
            await asyncio.sleep(min(max(0, next_due - now_ms()) / 1000, RETRY_NAP_MAX_S))


async def main(runtime: ServiceRuntime, cfg: ReplyParserSettings) -> None:
    """The parser's parts, started in order on the runtime (stopped in reverse)."""
    producer = await runtime.producer(start_producer(cfg, max_request_size=INBOUND_RECORD_LIMIT))
    shops = ShopSettingsView(cfg)
    await runtime.started(shops, shops.start, shops.stop)
    watchdog = ParseWatchdog(cfg.parser_stuck_after_s, cfg.parser_max_rss_mb * 2**20)
    watchdog.start()
    parser = Parser(
        cfg,
        producer,
        shops,
        DnsPythonResolver(cfg.auth_dns_timeout_s, nameserver=cfg.auth_dns_server),
        watchdog,
    )
    group = cfg.parser_group or GROUP
    attempts = AttemptLog(producer, group, cfg.parser_inbound_topic)
    consumer = make_consumer(
        cfg, group_id=group, max_partition_fetch_bytes=INBOUND_RECORD_LIMIT, max_poll_records=50
    )
    consumer.subscribe([cfg.parser_inbound_topic], listener=_ReloadAttempts(attempts))
    await runtime.consumer(consumer, group=group)
    retry_consumer = make_consumer(
        cfg,
        MAIL_INBOUND_RETRY.name,
        group_id=RETRY_GROUP,
        max_partition_fetch_bytes=INBOUND_RECORD_LIMIT,
        max_poll_records=10,
    )
    await runtime.started(retry_consumer, retry_consumer.start, retry_consumer.stop)
    runtime.background(report_lag(retry_consumer, RETRY_GROUP))
    retries = runtime.background(retry_deferred(retry_consumer, parser))
    runtime.ready_when(lambda: not retries.done())
    runtime.serve_ops(cfg.http_host, cfg.reply_parser_port)
    await consume(consumer, parser, attempts, cfg.parser_max_attempts, cfg.kafka_bootstrap)
