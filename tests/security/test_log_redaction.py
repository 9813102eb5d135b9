"""Finding 9 (part): a refused sender's address is not written in clear where it outlives the
mail: not in the parser's log lines, nor in the result it publishes, nor in any dead letter;
the log keeps a short hash and the domain, enough to tell repeats apart and see where mail
comes from."""

from __future__ import annotations

import logging
import uuid
from email import policy
from email.message import EmailMessage

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord

from devstack.topic_reader import records_so_far
from reply_parser.parser_app import Parser
from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.codec import decode, encode
from shared.events import DeadLetter, InboundEnvelope, InboundResult
from shared.kafka import DeadLetterWriter
from shared.logging import JsonFormatter, redact_address
from shared.settings_view import ShopSettingsView
from shared.topics import DEAD_LETTER, MAIL_INBOUND, MAIL_INBOUND_RESULTS

pytestmark = pytest.mark.integration


def test_a_redacted_address_keeps_the_domain_and_a_stable_hash_only() -> None:
    redacted = redact_address("Mallory.Secret@Evil.Example")
    assert redacted.endswith("@evil.example") and "mallory" not in redacted.lower()
    assert redacted == redact_address(" mallory.secret@evil.example ")
    assert redacted != redact_address("someone.else@evil.example")


async def test_a_refused_senders_address_is_not_in_the_parser_logs_or_results(
    kafka_bootstrap: str, caplog: pytest.LogCaptureFixture
) -> None:
    sender = f"mallory.{uuid.uuid4().hex[:8]}@evil.example"
    shop, conv = uuid.uuid4().hex[:12], "5"
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "tok@chat-seller-us.bridge.test", "Re: hi"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@evil.example>"
    msg.set_content("Send your card number to me.")
    env = InboundEnvelope(
        mail_id=uuid.uuid4().hex,
        shop_id=shop,
        conversation_id=conv,
        mail_from=sender,
        rcpt_to="tok@chat-seller-us.bridge.test",
        received_at_ms=1,
        peer="192.0.2.7",
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        cfg = ReplyParserSettings(kafka_bootstrap=kafka_bootstrap)  # type: ignore[call-arg]
        parser = Parser(cfg, producer, ShopSettingsView(cfg), resolver=None)
        with caplog.at_level(logging.DEBUG):
            await parser.handle(
                ConsumerRecord(
                    MAIL_INBOUND.name,
                    0,
                    0,
                    0,
                    0,
                    f"{shop}:{conv}".encode(),
                    msg.as_bytes(policy=policy.SMTP),
                    None,
                    0,
                    0,
                    [("envelope", encode(env))],
                )
            )
    finally:
        await producer.stop()
    # Every line as the service writes it (JSON with the extra fields).
    lines = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert "inbound mail handled" in lines
    assert sender not in lines and sender.split("@")[0] not in lines
    assert redact_address(sender) in lines
    found = await records_so_far(
        kafka_bootstrap, MAIL_INBOUND_RESULTS.name, MAIL_INBOUND_RESULTS.partitions
    )
    (result,) = [
        r
        for r in (
            decode(InboundResult, rec.value or b"") for recs in found.values() for rec in recs
        )
        if r.shop_id == shop
    ]
    assert result.classification == "rejected" and sender not in encode(result).decode()


@pytest.mark.parametrize("service", ["mailer", "fanout", "reply_parser"])
async def test_a_dead_letter_names_where_the_record_is_never_what_it_says(
    kafka_bootstrap: str, service: str
) -> None:
    """Every service's dead letters go through DeadLetterWriter: a refused digest or reply
    part carries buyer text and seller addresses, which must not outlive its topic."""
    secret = f"buyer secret {uuid.uuid4().hex} seller@shop.example"
    key = f"{uuid.uuid4().hex[:12]}:7"
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await DeadLetterWriter(producer, service).write(
            source_topic="mail.digests",
            reason="undecodable",
            reason_class="undecodable",
            key=key,
            partition=2,
            offset=9,
            payload=secret.encode(),
        )
    finally:
        await producer.stop()
    found = await records_so_far(kafka_bootstrap, DEAD_LETTER.name, DEAD_LETTER.partitions)
    (raw,) = [r.value for r in found[0] if r.key == key.encode()]
    assert secret.split()[2] not in raw.decode() and b"seller@shop.example" not in raw
    letter = decode(DeadLetter, raw)
    assert (letter.service, letter.source_topic, letter.partition, letter.offset) == (
        service,
        "mail.digests",
        2,
        9,
    )
    assert letter.payload_bytes == len(secret.encode())
