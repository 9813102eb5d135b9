"""The inbound SMTP front: validates recipients at RCPT, queues raw mail on Kafka.

aiosmtpd does the protocol; this handler is the policy. It knows reply
addresses and Kafka, nothing about chat. 250 is answered only after Kafka
acknowledged the raw mail; while Kafka is unavailable the sender gets 451 and
retries, so nothing accepted is ever lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiosmtpd.smtp import SMTP, Envelope, Session

from shared.codec import encode
from shared.events import InboundEnvelope, conversation_key
from shared.logging import now_ms
from shared.metrics import EVENTS_HANDLED, HANDLE_SECONDS
from shared.tokens import TokenError, split_reply_address, verify_token
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

    def __init__(self, producer: AIOKafkaProducer, token_keys: dict[int, bytes],
                 reply_domain_base: str, kafka_timeout_s: float = 20.0) -> None:
        self._producer = producer
        self._keys = token_keys
        self._base = reply_domain_base
        self._timeout = kafka_timeout_s

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            token, _region = split_reply_address(address, self._base)
            verify_token(token, self._keys, now_s=time.time())
        except TokenError as exc:
            EVENTS_HANDLED.labels(SERVICE, "rcpt_refused").inc()
            return f"550 5.1.1 <{address}>: {exc}"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        started = time.perf_counter()
        raw = envelope.original_content or b""
        mail_id = uuid.uuid4().hex
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        records: list[tuple[bytes, InboundEnvelope]] = []
        for rcpt in envelope.rcpt_tos:
            token, _ = split_reply_address(rcpt, self._base)
            try:
                reply = verify_token(token, self._keys, now_s=time.time())
            except TokenError as exc:  # expired between RCPT and DATA
                return f"550 5.1.1 <{rcpt}>: {exc}"
            env = InboundEnvelope(
                mail_id=mail_id, shop_id=reply.shop_id, conversation_id=reply.conversation_id,
                mail_from=envelope.mail_from or "", rcpt_to=rcpt, received_at_ms=now_ms(),
                peer=peer,
            )
            records.append((conversation_key(reply.shop_id, reply.conversation_id).encode(), env))
        if not records:
            return "503 5.5.1 No valid recipients"
        try:
            await asyncio.wait_for(asyncio.gather(*(
                self._producer.send_and_wait(MAIL_INBOUND.name, raw, key=key,
                                             headers=[("envelope", encode(env))])
                for key, env in records)), self._timeout)
        except (KafkaError, TimeoutError) as exc:
            EVENTS_HANDLED.labels(SERVICE, "kafka_unavailable").inc()
            log.warning("kafka unavailable; mail deferred", extra={"error": str(exc)})
            return "451 4.3.0 Temporary queue failure, try again later"
        EVENTS_HANDLED.labels(SERVICE, "queued").inc()
        HANDLE_SECONDS.labels(SERVICE).observe(time.perf_counter() - started)
        return f"250 2.0.0 Queued as {mail_id}"


async def start_smtp_front(handler: ReplyFrontHandler, host: str, port: int,
                           max_bytes: int) -> asyncio.base_events.Server:
    """Serve SMTP on the current loop (not aiosmtpd's Controller thread, so the
    handler shares the loop with its Kafka producer)."""
    loop = asyncio.get_running_loop()
    # data_size_limit makes aiosmtpd advertise "SIZE <max_bytes>" in EHLO and answer 552 to
    # a MAIL FROM SIZE= above it or to DATA that grows past it.
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=max_bytes, enable_SMTPUTF8=True,
                     ident="chat-bridge reply front", hostname="reply-front"),
        host=host, port=port)
