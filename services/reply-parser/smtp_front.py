"""The inbound SMTP front: validates recipients at RCPT, queues raw mail on Kafka.

aiosmtpd does the protocol; this handler is the policy. It knows reply
addresses and Kafka, nothing about chat. 250 is answered only after Kafka
acknowledged the raw mail; while Kafka is unavailable the sender gets 451 and
retries, so nothing accepted is ever lost.

What one client may take is bounded: a mail is one record per conversation it answers
(several reply addresses of one conversation are one record) and may answer at most
``max_conversations`` (others are deferred with 452, the client sends them in another
transaction), so one large mail cannot become ten copies on Kafka;
connections are capped in total and per client IP (421 4.7.0), and a session ends at a
wall-clock limit or when its average data rate falls below a floor after a grace period
(421 4.4.2): aiosmtpd's idle timeout restarts at every byte, so a client dripping a byte
every few seconds would otherwise hold its connection for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiosmtpd.smtp import SMTP, Envelope, Session

from reply_parser.reply_parser_settings import ReplyParserSettings
from reply_parser.smtp_replies import (
    NO_VALID_RECIPIENTS,
    QUEUE_UNAVAILABLE,
    QUEUED,
    RECIPIENT_OK,
    SESSION_CUT,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_CONVERSATIONS,
    TOO_MANY_RECIPIENTS,
    UNKNOWN_RECIPIENT,
)
from shared.codec import encode
from shared.events import InboundEnvelope, conversation_key
from shared.key_ring import KeyRing
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS
from shared.tokens import ReplyToken, TokenError, split_reply_address, verify_token
from shared.topics import MAIL_INBOUND

log = logging.getLogger("reply-parser.front")
SERVICE = "reply_front"
MAX_RECIPIENTS = 10


class ReplyFrontHandler:
    """aiosmtpd handler: RCPT checks the reply token, DATA queues the raw mail on Kafka.

    *kafka_timeout_s* bounds how long a DATA waits for Kafka's acknowledgement; beyond it the
    sender gets 451 and retries. A write that still lands after the timeout only duplicates
    the record, which the parser and fan-out absorb (reply id from the Message-ID).
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        token_keys: KeyRing,
        reply_domain_base: str,
        kafka_timeout_s: float = 20.0,
        max_conversations: int = 3,
    ) -> None:
        self._producer = producer
        self._keys = token_keys
        self._base = reply_domain_base
        self._timeout = kafka_timeout_s
        self._max_conversations = max_conversations

    def _verify(self, address: str) -> ReplyToken:
        token, _region = split_reply_address(address, self._base)
        return verify_token(token, self._keys, now_s=time.time())

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return str(TOO_MANY_RECIPIENTS)
        try:
            reply = self._verify(address)
        except TokenError as exc:
            EVENTS_HANDLED.labels(SERVICE, "rcpt_refused").inc()
            return UNKNOWN_RECIPIENT.format(address=address, reason=exc)
        if address in envelope.rcpt_tos:
            return str(RECIPIENT_OK)
        # Each conversation is one copy of the mail on Kafka: their number is capped, and
        # RFC 5321 clients send deferred recipients in a later transaction.
        conversations = {self._conversation(r) for r in envelope.rcpt_tos}
        if (reply.shop_id, reply.conversation_id) not in conversations and len(
            conversations
        ) >= self._max_conversations:
            EVENTS_HANDLED.labels(SERVICE, "rcpt_deferred").inc()
            return str(TOO_MANY_CONVERSATIONS)
        envelope.rcpt_tos.append(address)
        return str(RECIPIENT_OK)

    def _conversation(self, address: str) -> tuple[str, str]:
        reply = self._verify(address)
        return reply.shop_id, reply.conversation_id

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        started = time.perf_counter()
        raw = envelope.original_content or b""
        if not envelope.rcpt_tos:
            return str(NO_VALID_RECIPIENTS)
        by_conversation: dict[tuple[str, str], list[str]] = {}
        for rcpt in envelope.rcpt_tos:
            try:
                by_conversation.setdefault(self._conversation(rcpt), []).append(rcpt)
            except TokenError as exc:  # expired between RCPT and DATA
                return UNKNOWN_RECIPIENT.format(address=rcpt, reason=exc)
        mail_id = uuid.uuid4().hex
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        records = []
        for (shop_id, conversation_id), rcpts in by_conversation.items():
            env = InboundEnvelope(
                mail_id=mail_id,
                shop_id=shop_id,
                conversation_id=conversation_id,
                mail_from=envelope.mail_from or "",
                rcpt_to=rcpts[0],
                received_at_ms=now_ms(),
                peer=peer,
                rcpt_tos=tuple(rcpts),
            )
            records.append((conversation_key(shop_id, conversation_id).encode(), env))
        try:
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        self._producer.send_and_wait(
                            MAIL_INBOUND.name, raw, key=key, headers=[("envelope", encode(env))]
                        )
                        for key, env in records
                    )
                ),
                self._timeout,
            )
        except (KafkaError, TimeoutError) as exc:
            EVENTS_HANDLED.labels(SERVICE, "kafka_unavailable").inc()
            log.warning("kafka unavailable; mail deferred", extra={"error": str(exc)})
            return str(QUEUE_UNAVAILABLE)
        EVENTS_HANDLED.labels(SERVICE, "queued").inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        return QUEUED.format(mail_id=mail_id)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """What one client may hold of the front (see :class:`ReplyParserSettings`)."""

    max_connections: int = 500
    max_connections_per_ip: int = 20
    session_max_s: float = 900.0
    min_bytes_per_s: float = 256.0
    rate_grace_s: float = 30.0

    @classmethod
    def from_settings(cls, cfg: ReplyParserSettings) -> SessionLimits:
        return cls(
            cfg.inbound_max_connections,
            cfg.inbound_max_connections_per_ip,
            cfg.inbound_session_max_s,
            cfg.inbound_min_bytes_per_s,
            cfg.inbound_rate_grace_s,
        )


class ConnectionCount:
    """Open connections, in total and per client IP (one per server)."""

    def __init__(self) -> None:
        self.total = 0
        self.per_ip: Counter[str] = Counter()

    def admit(self, ip: str, limits: SessionLimits) -> bool:
        if self.total >= limits.max_connections or self.per_ip[ip] >= limits.max_connections_per_ip:
            return False
        self.total += 1
        self.per_ip[ip] += 1
        return True

    def release(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


def too_slow(received: int, elapsed_s: float, limits: SessionLimits) -> str | None:
    """Why a session must end now, or None: its wall-clock limit, or an average rate below
    the floor once the grace period is over (counted from the session's start, so waiting
    between commands counts against it as much as dripping does)."""
    if elapsed_s > limits.session_max_s:
        return f"session longer than {limits.session_max_s:.0f}s"
    if elapsed_s > limits.rate_grace_s and received < limits.min_bytes_per_s * (
        elapsed_s - limits.rate_grace_s
    ):
        return f"fewer than {limits.min_bytes_per_s:.0f} bytes/s"
    return None


class GuardedSMTP(SMTP):
    """aiosmtpd's SMTP with the connection caps and the session deadline of
    :class:`SessionLimits`; the protocol itself stays aiosmtpd's."""

    def __init__(
        self,
        handler: ReplyFrontHandler,
        limits: SessionLimits,
        connections: ConnectionCount,
        **kwargs: object,
    ) -> None:
        super().__init__(handler, **kwargs)  # type: ignore[arg-type]
        self._limits = limits
        self._connections = connections
        self._ip = ""
        self._admitted = False
        self._started = 0.0
        self._received = 0
        self._pace: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted:  # STARTTLS: the same session on a new transport
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        self._ip = peer[0] if isinstance(peer, tuple) else str(peer)
        if not self._connections.admit(self._ip, self._limits):
            EVENTS_HANDLED.labels(SERVICE, "connection_refused").inc()
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(TOO_MANY_CONNECTIONS.line())
            transport.close()
            return
        self._admitted = True
        self._started = time.monotonic()
        super().connection_made(transport)
        self._pace = self.loop.call_later(1.0, self._check_pace)

    def data_received(self, data: bytes) -> None:
        self._received += len(data)
        super().data_received(data)

    def _check_pace(self) -> None:
        reason = too_slow(self._received, time.monotonic() - self._started, self._limits)
        if reason is None:
            self._pace = self.loop.call_later(1.0, self._check_pace)
            return
        EVENTS_HANDLED.labels(SERVICE, "session_cut").inc()
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport) and not transport.is_closing():
            transport.write(SESSION_CUT.line(reason=reason))
            transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:
            return
        if self._pace is not None:
            self._pace.cancel()
            self._pace = None
        self._connections.release(self._ip)
        self._admitted = False
        super().connection_lost(error)

    def eof_received(self) -> bool | None:
        if not self._admitted:
            return False
        return super().eof_received()


async def start_smtp_front(
    handler: ReplyFrontHandler,
    host: str,
    port: int,
    max_bytes: int,
    limits: SessionLimits | None = None,
) -> asyncio.base_events.Server:
    """Serve SMTP on the current loop (not aiosmtpd's Controller thread, so the
    handler shares the loop with its Kafka producer)."""
    loop = asyncio.get_running_loop()
    session_limits = limits or SessionLimits()
    connections = ConnectionCount()
    # data_size_limit makes aiosmtpd advertise "SIZE <max_bytes>" in EHLO and answer 552 to
    # a MAIL FROM SIZE= above it or to DATA that grows past it.
    return await loop.create_server(
        lambda: GuardedSMTP(
            handler,
            session_limits,
            connections,
            data_size_limit=max_bytes,
            enable_SMTPUTF8=True,
            ident="chat-bridge reply front",
            hostname="reply-front",
        ),
        host=host,
        port=port,
    )
