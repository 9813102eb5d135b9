"""The inbound SMTP front on real parts: aiosmtplib client -> smtp_front.py -> broker.

250 only after Kafka acknowledged the raw mail (read back whole), SIZE advertises 50 MB and
552 is answered above it, 550 at RCPT for unknown or expired reply addresses, 451 while
Kafka is unavailable and 250 again once it is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from devstack.broker import free_port
from reply_parser.smtp_front import ReplyFrontHandler, start_smtp_front
from shared.codec import decode
from shared.events import InboundEnvelope
from shared.tokens import mint_token, parse_keys, reply_address
from shared.topics import INBOUND_RECORD_LIMIT, MAIL_INBOUND, MAX_INBOUND_MAIL_BYTES
from tests.private_broker import private_broker

pytestmark = pytest.mark.integration
KEYS = parse_keys("1:front-test-key")
BASE = "bridge.test"
SELLER = "seller@shop.example"


def _address(
    shop: str = "71", conversation: str = "51", ttl_s: float = 3600.0, now_s: float | None = None
) -> str:
    token = mint_token(shop, conversation, KEYS, now_s=now_s or time.time(), ttl_s=ttl_s)
    return reply_address(token, "us", BASE)


def _producer(bootstrap: str, timeout_ms: int = 10000) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        max_request_size=INBOUND_RECORD_LIMIT,
        request_timeout_ms=timeout_ms,
        metadata_max_age_ms=1000,
    )


class Front:
    def __init__(self, port: int, bootstrap: str) -> None:
        self.port = port
        self.bootstrap = bootstrap

    async def send(self, raw: bytes, rcpt: str, sender: str = SELLER) -> tuple[int, str]:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=self.port, timeout=60) as smtp:
            response = await smtp.sendmail(sender, [rcpt], raw)
        return 250, response[1]

    async def records_after(
        self, ends: dict[TopicPartition, int], mail_id: str, timeout_s: float = 20.0
    ) -> list[tuple[bytes, InboundEnvelope]]:
        """Records of *mail_id* on mail.inbound written after the offsets *ends*."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=INBOUND_RECORD_LIMIT,
            fetch_max_bytes=INBOUND_RECORD_LIMIT,
        )
        await consumer.start()
        found: list[tuple[bytes, InboundEnvelope]] = []
        try:
            consumer.assign(list(ends))
            for tp, offset in ends.items():
                consumer.seek(tp, offset)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not found:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for rec in records:
                        env = decode(InboundEnvelope, dict(rec.headers)["envelope"])
                        if env.mail_id == mail_id:
                            found.append((rec.value or b"", env))
        finally:
            await consumer.stop()
        return found

    async def end_offsets(self) -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(MAIL_INBOUND.name, p) for p in range(MAIL_INBOUND.partitions)]
            return await consumer.end_offsets(tps)
        finally:
            await consumer.stop()


@pytest_asyncio.fixture(scope="module")
async def front(kafka_bootstrap: str) -> AsyncIterator[Front]:
    producer = _producer(kafka_bootstrap)
    await producer.start()
    port = free_port()
    server = await start_smtp_front(
        ReplyFrontHandler(producer, KEYS, BASE), "127.0.0.1", port, MAX_INBOUND_MAIL_BYTES
    )
    try:
        yield Front(port, kafka_bootstrap)
    finally:
        server.close()
        await server.wait_closed()
        await producer.stop()


def _mail(body: str = "Yes, in stock.", rcpt: str = "") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SELLER, rcpt or "x@y", "Re: A new message"
    msg["Message-ID"] = f"<{time.time_ns()}@shop.example>"
    msg.set_content(body)
    return msg.as_bytes(policy=policy.SMTP)  # what travels over SMTP: CRLF line ends


async def test_ehlo_advertises_a_50_mb_size_limit(front: Front) -> None:
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=front.port, timeout=10) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("size")
        assert int(smtp.esmtp_extensions["size"]) == 50 * 1024 * 1024


async def test_reply_is_answered_250_only_once_kafka_holds_it(front: Front) -> None:
    rcpt = _address()
    raw = _mail(rcpt=rcpt)
    ends = await front.end_offsets()
    _, message = await front.send(raw, rcpt)
    assert message.startswith("2.0.0 Queued as ")
    mail_id = message.rsplit(" ", 1)[1]
    ((value, env),) = await front.records_after(ends, mail_id)
    assert value == raw
    assert (env.shop_id, env.conversation_id, env.mail_from) == ("71", "51", SELLER)


@pytest.mark.parametrize(
    "make_rcpt, reason",
    [
        (lambda: "nobody@chat-seller-us." + BASE, "not a reply token"),
        (
            lambda: _address()[:5] + ("a" if _address()[5] != "a" else "b") + _address()[6:],
            "signature",
        ),
        (lambda: _address(ttl_s=60, now_s=time.time() - 10 * 86400), "expired"),
        (lambda: "someone@elsewhere.example", "not a reply domain"),
    ],
)
async def test_unknown_forged_or_expired_address_is_refused_at_rcpt_with_a_reason(
    front: Front, make_rcpt: object, reason: str
) -> None:
    rcpt = make_rcpt()  # type: ignore[operator]
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await front.send(_mail(), rcpt)
    (refusal,) = info.value.recipients
    assert refusal.code == 550 and reason in refusal.message


async def test_a_50_mb_mail_is_accepted_and_on_kafka_whole(front: Front) -> None:
    rcpt = _address(conversation="52")
    head = _mail(rcpt=rcpt)
    line = b"x" * 998 + b"\r\n"
    raw = head + line * ((MAX_INBOUND_MAIL_BYTES - len(head) - 4096) // len(line))
    assert len(raw) > 49.9 * 1024 * 1024
    ends = await front.end_offsets()
    _, message = await front.send(raw, rcpt)
    mail_id = message.rsplit(" ", 1)[1]
    ((value, _env),) = await front.records_after(ends, mail_id, timeout_s=60)
    assert len(value) == len(raw)
    assert hashlib.sha256(value).digest() == hashlib.sha256(raw).digest()


async def test_a_mail_above_50_mb_is_refused_with_552(front: Front) -> None:
    rcpt = _address(conversation="53")
    raw = _mail(rcpt=rcpt) + (b"y" * 998 + b"\r\n") * (51 * 1024 * 1024 // 1000)
    with pytest.raises(aiosmtplib.SMTPResponseException) as info:
        await front.send(raw, rcpt)
    assert info.value.code == 552


async def test_kafka_unavailable_gets_451_and_the_retry_after_recovery_gets_250(
    tmp_path: Path,
) -> None:
    broker = private_broker(tmp_path)
    await broker.start_with_topics()
    producer = _producer(broker.bootstrap, timeout_ms=2000)
    await producer.start()
    port = free_port()
    server = await start_smtp_front(
        ReplyFrontHandler(producer, KEYS, BASE, kafka_timeout_s=3.0),
        "127.0.0.1",
        port,
        MAX_INBOUND_MAIL_BYTES,
    )
    front = Front(port, broker.bootstrap)
    rcpt = _address(conversation="54")
    try:
        code, _ = await front.send(_mail(rcpt=rcpt), rcpt)
        assert code == 250
        broker.stop()
        raw = _mail("sent while Kafka is down", rcpt=rcpt)
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await front.send(raw, rcpt)
        assert info.value.code == 451
        broker = private_broker(tmp_path, port=broker.port)  # same address: the front reconnects
        await broker.start_with_topics()
        ends = await front.end_offsets()
        for _attempt in range(20):  # what a sending MTA does: retry the deferred mail
            try:
                _, message = await front.send(raw, rcpt)
                break
            except aiosmtplib.SMTPDataError as exc:
                assert exc.code == 451
                await asyncio.sleep(0.5)
        else:
            pytest.fail("front never recovered after Kafka came back")
        mail_id = message.rsplit(" ", 1)[1]
        ((value, _env),) = await front.records_after(ends, mail_id)
        assert value == raw
    finally:
        server.close()
        await server.wait_closed()
        await producer.stop()
        broker.stop()
