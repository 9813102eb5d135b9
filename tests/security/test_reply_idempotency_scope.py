"""Finding 5: no reply is lost across conversations.

A reply's idempotency key (its id, and the fan-out's ``reply_id:index`` part keys, the
notice ids derived from it) is scoped by shop and conversation: one mail answering two
digests (To: both reply addresses) reaches both buyers, while the same mail delivered again
to the same conversation still reaches its buyer once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from email import policy
from email.message import EmailMessage

import aiosmtplib
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reply_parser.inbound_pipeline import OwnIdentity, decide, parse_mail, reply_id_for
from shared.events import InboundEnvelope, ShopSettings
from shared.tokens import mint_token, parse_keys, reply_address
from tests.conftest import Stack
from tests.polling import eventually

SELLER = "seller@shop.example"
OWN = OwnIdentity("digest.bridge.example", "bridge.example")


def _raw(message_id: str | None = "<same@shop.example>", *, attachment: bool = False) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SELLER, "a@chat-seller-us.bridge.example", "Re: x"
    if message_id:
        msg["Message-ID"] = message_id
    msg.set_content("Both orders ship tomorrow.")
    if attachment:
        msg.add_attachment(
            b"%PDF-1.4", maintype="application", subtype="pdf", filename="invoice.pdf"
        )
    return msg.as_bytes()


def _env(shop: str, conv: str) -> InboundEnvelope:
    return InboundEnvelope(
        mail_id="m1",
        shop_id=shop,
        conversation_id=conv,
        mail_from=SELLER,
        rcpt_to="a@chat-seller-us.bridge.example",
        received_at_ms=1,
    )


def test_one_mail_to_two_conversations_is_two_replies_with_distinct_part_keys() -> None:
    raw = _raw(attachment=True)
    first = decide(raw, _env("7", "5"), ShopSettings(shop_id="7", destination_email=SELLER), OWN)
    second = decide(raw, _env("7", "6"), ShopSettings(shop_id="7", destination_email=SELLER), OWN)
    assert first.reply is not None and second.reply is not None
    assert first.reply.reply_id != second.reply.reply_id
    assert first.reply.part_key(0) != second.reply.part_key(0)
    # the seller's "not shown to the buyer" notice is one per conversation too
    assert first.notices[0].notice_id != second.notices[0].notice_id


def test_the_same_mail_to_the_same_conversation_keeps_its_id() -> None:
    shop = ShopSettings(shop_id="7", destination_email=SELLER)
    again = [decide(_raw(), _env("7", "5"), shop, OWN).reply for _ in range(2)]
    assert again[0] is not None and again[1] is not None
    assert again[0].reply_id == again[1].reply_id


def test_a_mail_without_message_id_is_keyed_by_its_content_within_the_conversation() -> None:
    raw = _raw(None)
    msg = parse_mail(raw)
    assert reply_id_for("7", "5", msg, raw) == reply_id_for("7", "5", msg, raw)
    assert reply_id_for("7", "5", msg, raw) != reply_id_for("7", "6", msg, raw)
    assert reply_id_for("7", "5", msg, raw) != reply_id_for("7", "5", msg, raw + b" ")


def test_shop_and_conversation_cannot_be_shifted_into_each_other() -> None:
    raw = _raw()
    msg = parse_mail(raw)
    assert reply_id_for("1:2", "3", msg, raw) != reply_id_for("1", "2:3", msg, raw)


ids = st.text(alphabet="0123456789:ab-", min_size=1, max_size=12)


@given(ids, ids, ids, ids)
def test_reply_ids_differ_whenever_shop_or_conversation_differ(
    shop_a: str, conv_a: str, shop_b: str, conv_b: str
) -> None:
    raw = _raw()
    msg = parse_mail(raw)
    same = (shop_a, conv_a) == (shop_b, conv_b)
    assert (
        reply_id_for(shop_a, conv_a, msg, raw) == reply_id_for(shop_b, conv_b, msg, raw)
    ) == same


# --- on the running stack -----------------------------------------------------------------------


def _rcpt(stack: Stack, shop: str, conv: str) -> str:
    keys = parse_keys(stack.env.get("BRIDGE_TOKEN_KEYS", "1:dev-only-token-key-change-me"))
    token = mint_token(shop, conv, keys, now_s=time.time(), ttl_s=3600)
    return reply_address(token, "us", stack.env.get("BRIDGE_REPLY_DOMAIN_BASE", "bridge.localhost"))


def _numeric_pair() -> tuple[str, str]:
    n = uuid.uuid4().int
    return str(7_000_000_000_000_000_000 + n % 10**18), str(5_000_000_000_000_000 + n % 10**17)


async def _texts(stack: Stack, conv: str) -> list[str]:
    return [r["content"]["content"] for r in await stack.buyer_view(conv)]


async def _answer_both(
    stack: Stack, targets: list[tuple[str, str]], raw_id: str, text: str
) -> None:
    """One mail, one SMTP transaction, To: both reply addresses (the seller answering two
    digests at once)."""
    seller = stack.env.get("BRIDGE_DEFAULT_DESTINATION_EMAIL", "seller@shop.localhost")
    rcpts = [_rcpt(stack, shop, conv) for shop, conv in targets]
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = seller, ", ".join(rcpts), "Re: your orders"
    msg["Message-ID"] = raw_id
    msg.set_content(text)
    await aiosmtplib.send(
        msg.as_bytes(policy=policy.SMTP),
        sender=seller,
        recipients=rcpts,
        hostname="127.0.0.1",
        port=stack.ports.inbound_smtp,
        timeout=30,
    )


async def _views(stack: Stack, convs: list[str], text: str) -> list[dict[str, object]]:
    """Each conversation's one received message, once all of them have it."""
    views = []
    for conv in convs:
        (seen,) = await eventually(
            lambda c=conv: stack.buyer_view(c),  # type: ignore[misc]
            timeout_s=30,
            what=f"the reply in conversation {conv}",
        )
        assert seen["content"] == {"content": text}
        views.append(seen)
    return views


@pytest.mark.integration
@pytest.mark.parametrize("shops", ["one shop", "two shops"])
async def test_one_mail_to_two_conversations_reaches_both_buyers(stack: Stack, shops: str) -> None:
    shop_a, conv_a = _numeric_pair()
    shop_b, conv_b = _numeric_pair()
    if shops == "one shop":
        shop_b = shop_a
    for shop in {shop_a, shop_b}:
        await stack.onboard(shop)
    for shop, conv in ((shop_a, conv_a), (shop_b, conv_b)):
        await stack.buyer_says(shop, conv, "When does my order ship?")
    text = "Both orders ship tomorrow."
    message_id = f"<{uuid.uuid4().hex}@shop.localhost>"
    await _answer_both(stack, [(shop_a, conv_a), (shop_b, conv_b)], message_id, text)

    first, second = await _views(stack, [conv_a, conv_b], text)
    # Each post carried its own idempotency key: a platform that honours keys would
    # otherwise have dropped one of the two as a duplicate.
    assert first["idempotency_key"] != second["idempotency_key"]


@pytest.mark.integration
async def test_the_same_mail_reaching_a_second_conversation_later_is_delivered_there_too(
    stack: Stack,
) -> None:
    """The MTA splits the recipients into two deliveries (or the seller forwards the same
    mail): the second conversation's copy arrives after the first was delivered."""
    (shop_a, conv_a), (shop_b, conv_b) = _numeric_pair(), _numeric_pair()
    for shop in (shop_a, shop_b):
        await stack.onboard(shop)
    for shop, conv in ((shop_a, conv_a), (shop_b, conv_b)):
        await stack.buyer_says(shop, conv, "Any discount for two?")
    text = "Yes, 10% off the second one."
    message_id = f"<{uuid.uuid4().hex}@shop.localhost>"
    await _answer_both(stack, [(shop_a, conv_a)], message_id, text)
    await _views(stack, [conv_a], text)
    await _answer_both(stack, [(shop_b, conv_b)], message_id, text)
    await _views(stack, [conv_b], text)


@pytest.mark.integration
async def test_the_same_mail_redelivered_to_the_same_conversations_reaches_each_buyer_once(
    stack: Stack,
) -> None:
    targets = [_numeric_pair(), _numeric_pair()]
    for shop, _ in targets:
        await stack.onboard(shop)
    for shop, conv in targets:
        await stack.buyer_says(shop, conv, "Is it gift-wrapped?")
    text = "Yes, gift-wrapped at no charge."
    message_id = f"<{uuid.uuid4().hex}@shop.localhost>"
    await _answer_both(stack, targets, message_id, text)
    await _answer_both(stack, targets, message_id, text)  # a retrying MTA sends it again

    for _, conv in targets:
        assert await eventually(lambda c=conv: _texts(stack, c), timeout_s=30) == [text]  # type: ignore[misc]
    await asyncio.sleep(3)  # a second copy would have reached the sandbox by now
    for _, conv in targets:
        assert await _texts(stack, conv) == [text]
