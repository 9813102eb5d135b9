"""A stranger cannot put text into a DKIM-signed notice to a shop, nor use up the shop's
notices: automated mail from outside the shop makes no notice; a notice quotes a subject,
a reason and a sender only as one short clean line (an address only when it is a plain
``local@domain``); and every notice a mail from outside can set off shares one budget per
(shop, sender)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from hypothesis import given
from hypothesis import strategies as st

from devstack.topic_reader import records_so_far
from mailer.notice_email import compose_notice_bytes
from reply_parser.classify import classify_mail
from reply_parser.content_policy import held_as_automated_notice, sender_rejected_notice
from reply_parser.inbound_pipeline import OwnIdentity, decide, parse_mail
from reply_parser.parser_app import Parser
from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.codec import decode, encode
from shared.events import InboundEnvelope, MailNotice, ShopSettings
from shared.notice_texts import NOTICE_QUOTE_GRAPHEMES, shown_sender, shown_text
from shared.settings_view import ShopSettingsView
from shared.text_safety import truncate_graphemes
from shared.topics import MAIL_INBOUND, MAIL_NOTICES

SELLER = "seller@shop.example"
STRANGER = "stranger@evil.example"
OWN = OwnIdentity("digest.bridge.example", "bridge.example")
SHOP = ShopSettings(
    shop_id="7", destination_email="inbox@shop.example", authorized_senders=(SELLER,)
)
ATTACK = (
    "Automatic reply: out of office\r\n\r\nReason: your shop is suspended.\r\n"
    "Verify now at https://tiktok-shop-verify.example/login\r\n"
)
ENCODED_SUBJECT = "=?utf-8?b?" + base64.b64encode(ATTACK.encode()).decode() + "?="
QUOTED_LOCAL = (
    '"Your TikTok Shop account is suspended. Verify at https://evil.example/login"@evil.example'
)


def _envelope(sender: str, shop_id: str = "7") -> InboundEnvelope:
    return InboundEnvelope(
        mail_id=uuid.uuid4().hex,
        shop_id=shop_id,
        conversation_id="5",
        mail_from=sender,
        rcpt_to="tok@chat-seller-us.bridge.example",
        received_at_ms=1000,
        peer="192.0.2.10",
    )


def _attack_mail(sender: str) -> bytes:
    # Written as raw bytes: the encoded word is the attacker's, not the email package's.
    return (
        f"From: {sender}\r\nTo: tok@chat-seller-us.bridge.example\r\n"
        f"Subject: {ENCODED_SUBJECT}\r\nMessage-ID: <{uuid.uuid4().hex}@evil.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nI am away.\r\n"
    ).encode()


def _attacker_lines(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.startswith(("Reason: your shop", "Verify now"))
        or "tiktok-shop-verify.example" in line
        and not line.startswith("Subject: ")
    ]


def test_a_strangers_automated_mail_makes_no_notice_to_the_shop() -> None:
    decision = decide(_attack_mail(STRANGER), _envelope(STRANGER), SHOP, OWN)
    assert decision.classification == "auto_reply" and decision.reply is None
    assert decision.notices == ()


def test_a_registered_senders_held_notice_quotes_the_subject_on_one_line() -> None:
    decision = decide(_attack_mail(SELLER), _envelope(SELLER), SHOP, OWN)
    (notice,) = decision.notices
    assert notice.kind == "held_as_automated" and notice.to_address == "inbox@shop.example"
    assert _attacker_lines(notice.text) == []
    (subject_line,) = [line for line in notice.text.splitlines() if line.startswith("Subject: ")]
    assert subject_line == "Subject: " + shown_text(ATTACK)
    raw = compose_notice_bytes(
        notice,
        marketplace_name="TikTok Shop",
        from_address="notices@bridge.example",
        message_id_domain="bridge.example",
        now=datetime.now(UTC),
    )
    plain = MailNotice(
        notice_id="n",
        kind=notice.kind,
        to_address=notice.to_address,
        subject=notice.subject,
        text="plain text",
        shop_id="7",
    )
    reference = compose_notice_bytes(
        plain,
        marketplace_name="TikTok Shop",
        from_address="notices@bridge.example",
        message_id_domain="bridge.example",
        now=datetime.now(UTC),
    )
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.keys() == message_from_bytes(reference, policy=policy.default).keys()
    body = parsed.get_body(("plain",))
    assert body is not None and _attacker_lines(body.get_content()) == []


def test_the_classifiers_reason_names_the_pattern_not_the_subject() -> None:
    verdict = classify_mail(parse_mail(_attack_mail(STRANGER)))
    assert verdict.cls == "auto_reply"
    assert verdict.reason == 'auto-reply subject ("automatic reply")'


def test_a_quoted_local_part_is_not_shown_in_a_notice() -> None:
    notice = sender_rejected_notice(
        reply_id="r",
        shop=SHOP,
        sender=QUOTED_LOCAL.lower(),
        reason="the sender is not a registered, activated user",
        conversation_id="5",
        now_ms=1,
        sender_accountable=True,
    )
    assert notice is not None
    assert "suspended" not in notice.text and "evil.example/login" not in notice.text
    assert "Sender: someone at evil.example\n" in notice.text
    held = held_as_automated_notice(
        reply_id="r",
        shop=SHOP,
        sender=QUOTED_LOCAL,
        subject="x",
        reason="y",
        conversation_id="5",
        now_ms=1,
    )
    assert held is not None and "suspended" not in held.text


@pytest.mark.parametrize("address", [SELLER, "first.last+tag@mail.shop.example"])
def test_a_plain_address_is_shown_as_it_is(address: str) -> None:
    assert shown_sender(address) == address


@given(st.text(max_size=400))
def test_quoted_outside_text_is_one_short_line(value: str) -> None:
    shown = shown_text(value)
    assert len(shown.splitlines()) <= 1 and "\r" not in shown and "\n" not in shown
    assert truncate_graphemes(shown, NOTICE_QUOTE_GRAPHEMES) == shown


@pytest.mark.integration
async def test_repeated_automated_mails_from_one_sender_stay_within_the_notice_budget(
    kafka_bootstrap: str,
) -> None:
    """Each mail has its own Message-ID (so its own notice id): only the parser's per-(shop,
    sender) budget keeps them from filling the shop's inbox and its send limit."""
    shop_id = uuid.uuid4().hex[:12]
    shop = ShopSettings(
        shop_id=shop_id, destination_email="inbox@shop.example", authorized_senders=(SELLER,)
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        cfg = ReplyParserSettings(kafka_bootstrap=kafka_bootstrap)  # type: ignore[call-arg]
        parser = Parser(cfg, producer, ShopSettingsView(cfg), resolver=None)
        parser.shops.apply(shop_id.encode(), encode(shop))
        for offset in range(6):
            msg = EmailMessage()
            msg["From"], msg["To"] = SELLER, "tok@chat-seller-us.bridge.example"
            msg["Subject"] = f"Automatic reply: away {offset}"
            msg["Message-ID"] = f"<{uuid.uuid4().hex}@shop.example>"
            msg.set_content("I am away.")
            await parser.handle(
                ConsumerRecord(
                    MAIL_INBOUND.name,
                    0,
                    offset,
                    0,
                    0,
                    f"{shop_id}:5".encode(),
                    msg.as_bytes(policy=policy.SMTP),
                    None,
                    0,
                    0,
                    [("envelope", encode(_envelope(SELLER, shop_id)))],
                )
            )
    finally:
        await producer.stop()
    found = await records_so_far(kafka_bootstrap, MAIL_NOTICES.name, MAIL_NOTICES.partitions)
    notices = [
        n
        for n in (decode(MailNotice, r.value or b"") for recs in found.values() for r in recs)
        if n.shop_id == shop_id
    ]
    assert [n.kind for n in notices] == ["held_as_automated"]
    assert len(notices) <= cfg.rejection_notice_per_sender_limit
