"""Finding 8: what a stranger can make the inbound SMTP front (and the notices behind it) do.

One mail to many reply addresses of a conversation is one record on Kafka, and one mail
answers at most three conversations; connections are capped in total and per
client IP; a client dripping bytes, or holding a session past its limit, is cut off with 421;
forged outsider mails do not use up the shop's "reply refused" notices. Real front, real
broker (Tansu), real SMTP over loopback.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage

import aiosmtplib
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer, ConsumerRecord

from devstack.broker import free_port
from devstack.topic_reader import records_so_far
from reply_parser.parser_app import Parser
from reply_parser.reply_parser_settings import ReplyParserSettings
from reply_parser.smtp_front import ReplyFrontHandler, SessionLimits, start_smtp_front
from shared.codec import decode, encode
from shared.events import InboundEnvelope, MailNotice, ShopSettings
from shared.settings_view import ShopSettingsView
from shared.tokens import mint_token, parse_keys, reply_address
from shared.topics import INBOUND_RECORD_LIMIT, MAIL_INBOUND, MAIL_NOTICES, MAX_INBOUND_MAIL_BYTES

pytestmark = pytest.mark.integration
KEYS = parse_keys("1:abuse-test-key")
BASE = "bridge.test"
SELLER = "seller@shop.example"


def _address(shop: str, conversation: str) -> str:
    return reply_address(
        mint_token(shop, conversation, KEYS, now_s=time.time(), ttl_s=3600), "us", BASE
    )


def _mail(rcpt: str, sender: str = SELLER, headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, rcpt, "Re: A new message"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@mail.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content("Yes, in stock.")
    return msg.as_bytes(policy=policy.SMTP)


@pytest_asyncio.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=INBOUND_RECORD_LIMIT
    )
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def _front(producer: AIOKafkaProducer, limits: SessionLimits) -> tuple[int, object]:
    port = free_port()
    server = await start_smtp_front(
        ReplyFrontHandler(producer, KEYS, BASE), "127.0.0.1", port, MAX_INBOUND_MAIL_BYTES, limits
    )
    return port, server


async def _inbound_records(bootstrap: str, shop: str) -> list[InboundEnvelope]:
    found = await records_so_far(bootstrap, MAIL_INBOUND.name, MAIL_INBOUND.partitions)
    envs = [
        decode(InboundEnvelope, dict(r.headers)["envelope"])
        for recs in found.values()
        for r in recs
    ]
    return [e for e in envs if e.shop_id == shop]


async def test_ten_recipients_of_one_mail_become_one_record_on_kafka(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> None:
    port, server = await _front(producer, SessionLimits())
    shop = uuid.uuid4().hex[:12]
    # Ten reply addresses of one conversation (digests of different hours have different
    # tokens): one copy of the mail on Kafka.
    same = [
        reply_address(
            mint_token(shop, "c1", KEYS, now_s=time.time() - 3600 * i, ttl_s=3600 * 24), "us", BASE
        )
        for i in range(10)
    ]
    assert len(set(same)) == 10
    others = [_address(shop, f"c{i}") for i in range(2, 11)]
    try:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30) as smtp:
            refused, _ = await smtp.sendmail(SELLER, same, _mail(same[0]))
            assert refused == {}
            # Ten conversations: the first three are accepted (one copy each, on each
            # conversation's partition), the rest deferred to another transaction.
            refused, _ = await smtp.sendmail(SELLER, [same[0], *others], _mail(same[0]))
            assert sorted(refused) == sorted(others[2:])
            assert {code for code, _ in refused.values()} == {452}
            assert all("4.5.3" in text for _, text in refused.values())
    finally:
        server.close()  # type: ignore[attr-defined]
    envs = await _inbound_records(kafka_bootstrap, shop)
    assert len(envs) == 1 + 3  # not 10 + 10
    first = next(e for e in envs if len(e.rcpt_tos) == 10)
    assert set(first.rcpt_tos) == set(same) and first.rcpt_to == same[0]
    assert first.conversation_id == "c1"
    assert sorted(e.conversation_id for e in envs if e is not first) == ["c1", "c2", "c3"]


@pytest.mark.parametrize(
    "limits",
    [SessionLimits(max_connections=2), SessionLimits(max_connections_per_ip=2)],
    ids=["total", "per client IP"],
)
async def test_connections_beyond_the_cap_get_421_and_a_freed_slot_is_reused(
    producer: AIOKafkaProducer, limits: SessionLimits
) -> None:
    port, server = await _front(producer, limits)
    held = []
    try:
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220 ")
            held.append((reader, writer))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        line = await asyncio.wait_for(reader.readline(), 10)
        assert line.startswith(b"421 4.7.0 ")
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the front
        writer.close()
        _, first = held.pop()
        first.close()
        await first.wait_closed()
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"220 ")
        writer.close()
    finally:
        for _, writer in held:
            writer.close()
        server.close()  # type: ignore[attr-defined]


async def test_a_slow_drip_client_is_disconnected_within_the_deadline(
    producer: AIOKafkaProducer,
) -> None:
    # One byte a second: aiosmtpd's idle timeout (300 s) restarts at each byte.
    limits = SessionLimits(min_bytes_per_s=50, rate_grace_s=1.0, session_max_s=60)
    port, server = await _front(producer, limits)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 ")
        started = time.monotonic()
        answer = b""
        for byte in b"EHLO drip.example\r\n" * 10:
            writer.write(bytes([byte]))
            try:
                answer = await asyncio.wait_for(reader.readline(), 1.0)
            except TimeoutError:
                continue
            break
        elapsed = time.monotonic() - started
        assert answer.startswith(b"421 4.4.2 "), answer
        assert elapsed < 1.0 + 2.5  # grace, plus the once-a-second check, plus a loaded host
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        server.close()  # type: ignore[attr-defined]


async def test_a_session_past_its_wall_clock_limit_is_closed_even_when_busy(
    producer: AIOKafkaProducer,
) -> None:
    limits = SessionLimits(min_bytes_per_s=0, session_max_s=2.0)
    port, server = await _front(producer, limits)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 ")
        started = time.monotonic()
        last = b""
        while time.monotonic() - started < 10:
            writer.write(b"NOOP\r\n")
            last = await asyncio.wait_for(reader.readline(), 5)
            if not last.startswith(b"250"):
                break
            await asyncio.sleep(0.3)
        assert last.startswith(b"421 4.4.2 ") and b"session longer" in last
        assert time.monotonic() - started < 2.0 + 2.5
        writer.close()
    finally:
        server.close()  # type: ignore[attr-defined]


async def test_forged_outsider_mails_do_not_use_up_the_shops_notices(
    kafka_bootstrap: str, producer: AIOKafkaProducer
) -> None:
    """Ten forged outsider mails, then a refused mail from a sender whose domain is proven
    (our MX's Authentication-Results): the shop is told about that one, and only that one."""
    cfg = ReplyParserSettings(
        kafka_bootstrap=kafka_bootstrap,
        trusted_authserv_ids="mx.bridge.test",
        default_destination_email="owner@shop.example",
    )  # type: ignore[call-arg]
    view = ShopSettingsView(cfg)
    parser = Parser(cfg, producer, view, resolver=None)
    shop, conv = uuid.uuid4().hex[:12], "c1"
    # An onboarded shop (alerts on, its inbox): a shop nobody onboarded has no inbox to tell.
    view.apply(
        shop.encode(),
        encode(
            ShopSettings(
                shop_id=shop,
                alerts_enabled=True,
                destination_email="owner@shop.example",
                authorized_senders=("owner@shop.example",),
                updated_at_ms=1,
                updated_by="tests",
            )
        ),
    )
    rcpt = _address(shop, conv)

    def record(offset: int, sender: str, headers: dict[str, str] | None = None) -> ConsumerRecord:
        env = InboundEnvelope(
            mail_id=uuid.uuid4().hex,
            shop_id=shop,
            conversation_id=conv,
            mail_from=sender,
            rcpt_to=rcpt,
            received_at_ms=1,
            peer="192.0.2.7",
        )
        return ConsumerRecord(
            MAIL_INBOUND.name,
            0,
            offset,
            0,
            0,
            f"{shop}:{conv}".encode(),
            _mail(rcpt, sender, headers),
            None,
            0,
            0,
            [("envelope", encode(env))],
        )

    for i in range(10):
        await parser.handle(record(i, f"stranger{i}@forged.example"))
    proven = {"Authentication-Results": "mx.bridge.test; dmarc=pass header.from=partner.example"}
    await parser.handle(record(10, "olga@partner.example", proven))
    await parser.handle(record(11, "olga@partner.example", proven))  # once per sender

    found = await records_so_far(kafka_bootstrap, MAIL_NOTICES.name, MAIL_NOTICES.partitions)
    notices = [decode(MailNotice, r.value or b"") for recs in found.values() for r in recs]
    mine = [n for n in notices if n.shop_id == shop]
    assert len(mine) == 1
    assert mine[0].kind == "sender_rejected" and "olga@partner.example" in mine[0].text
    assert mine[0].to_address == "owner@shop.example"
