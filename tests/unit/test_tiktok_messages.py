"""TikTok Shop message types <-> the bridge's content, both ways, and the webhook adapter."""

from __future__ import annotations

import orjson
import pytest

from shared.chat_platform.base import PayloadError, WebhookRejected
from shared.chat_platform.tiktok_messages import (
    content_from_platform,
    outgoing_image,
    outgoing_text,
    send_message_body,
)
from shared.chat_platform.tiktok_signing import sign_webhook
from shared.chat_platform.tiktok_webhook import TikTokWebhookAdapter
from shared.events import ChatEventKind, ContentKind

# "14 New message" example from the platform's docs.
NEW_MESSAGE = {
    "type": 14,
    "tts_notification_id": "7327112393057371910",
    "shop_id": "7494049642642441621",
    "timestamp": 1644412885,
    "data": {
        "content": '{"content":"444"}',
        "conversation_id": "710688832392260838",
        "create_time": 1681790246,
        "is_visible": True,
        "message_id": "722323407926368819",
        "index": "7494560109732334274",
        "type": "TEXT",
        "sender": {"im_user_id": "707885565181165594", "role": "BUYER"},
    },
}


@pytest.mark.parametrize(
    ("msg_type", "content", "kind", "check"),
    [
        ("TEXT", {"content": "hi 👋"}, ContentKind.TEXT, lambda c: c.text == "hi 👋"),
        ("EMOTICONS", {"content": "😀"}, ContentKind.EMOTICON, lambda c: c.text == "😀"),
        (
            "EMOTICONS",
            {"content": "[smile][heart]"},
            ContentKind.EMOTICON,
            lambda c: c.text == "\U0001f642\u2764\ufe0f" and c.title == "",
        ),
        (
            "EMOTICONS",
            {"content": "[notacode]", "url": "https://i/e.png"},
            ContentKind.EMOTICON,
            lambda c: c.text == "notacode" and c.title == "notacode" and c.url == "https://i/e.png",
        ),
        (
            "IMAGE",
            {"height": "290", "url": "https://i/x.png", "width": "304"},
            ContentKind.IMAGE,
            lambda c: c.url == "https://i/x.png",
        ),
        (
            "PRODUCT_CARD",
            {"product_id": "12345"},
            ContentKind.PRODUCT_CARD,
            lambda c: c.product_id == "12345" and c.title == "",  # the mailer looks it up
        ),
        ("ORDER_CARD", {"order_id": "576"}, ContentKind.ORDER_CARD, lambda c: c.order_id == "576"),
        (
            "LOGISTICS_CARD",
            {"order_id": "9", "package_id": "3"},
            ContentKind.LOGISTICS_CARD,
            lambda c: c.order_id == "9" and c.package_id == "3",
        ),
        (
            "RETURN_REFUND_CARD",
            {"order_id": "9", "sku_id": "45678"},
            ContentKind.RETURN_REFUND_CARD,
            lambda c: c.order_id == "9" and c.sku_id == "45678",
        ),
        (
            "COUPON_CARD",
            {"coupon_id": "7262992004278206762"},
            ContentKind.COUPON_CARD,
            lambda c: c.coupon_id == "7262992004278206762",
        ),
        (
            "VIDEO",
            {"url": "https://v/1.mp4", "cover": "https://v/1.jpg", "vid": "v1"},
            ContentKind.VIDEO,
            lambda c: c.url == "https://v/1.mp4" and c.thumbnail_url,
        ),
        ("STICKER", {"url": "https://s/1.webp"}, ContentKind.STICKER, lambda c: c.url),
        (
            "NOTIFICATION",
            {"content": "Order shipped"},
            ContentKind.NOTICE,
            lambda c: c.text == "Order shipped",
        ),
    ],
)
def test_each_received_type_maps_to_its_content_kind(msg_type, content, kind, check) -> None:  # type: ignore[no-untyped-def]
    mapped = content_from_platform(msg_type, orjson.dumps(content).decode())
    assert mapped.kind == kind
    assert check(mapped)


@pytest.mark.parametrize("msg_type", ["OTHER", "HOLOGRAM_CARD", ""])
def test_unknown_or_unsupported_types_are_kept_with_a_fallback_description(msg_type: str) -> None:
    mapped = content_from_platform(msg_type, "{}")
    assert mapped.kind == ContentKind.OTHER
    assert mapped.text  # never an empty, silently dropped message
    assert mapped.platform_type


def test_text_part_becomes_a_send_message_body_with_a_json_string_content() -> None:
    body = orjson.loads(send_message_body(outgoing_text("Hello")))
    assert body == {"type": "TEXT", "content": '{"content":"Hello"}'}


def test_inline_picture_becomes_an_image_message() -> None:
    body = orjson.loads(send_message_body(outgoing_image("https://img/1.png", 640, 480)))
    assert body["type"] == "IMAGE"
    assert orjson.loads(body["content"]) == {
        "url": "https://img/1.png",
        "width": 640,
        "height": 480,
    }


def test_text_over_the_2000_character_limit_is_refused_before_sending() -> None:
    with pytest.raises(PayloadError):
        outgoing_text("x" * 2001)
    assert outgoing_text("é" * 2000).msg_type == "TEXT"


def test_webhook_adapter_parses_the_documented_new_message_event() -> None:
    adapter = TikTokWebhookAdapter("key", "secret")
    body = orjson.dumps(NEW_MESSAGE)
    adapter.verify({"authorization": sign_webhook("key", body, "secret")}, body)
    batch = adapter.parse(body)
    assert batch.shop_id == "7494049642642441621"
    (msg,) = batch.messages
    assert msg.message_id == "722323407926368819"
    assert msg.event_kind == ChatEventKind.BUYER_MESSAGE
    assert msg.content.text == "444"


def test_webhook_adapter_refuses_a_bad_signature_with_401_and_an_unserved_shop_with_403() -> None:
    body = orjson.dumps(NEW_MESSAGE)
    with pytest.raises(WebhookRejected) as bad:
        TikTokWebhookAdapter("key", "secret").verify({"authorization": "00"}, body)
    assert bad.value.status == 401
    with pytest.raises(WebhookRejected) as other:
        TikTokWebhookAdapter("key", "secret", frozenset({"1"})).parse(body)
    assert other.value.status == 403


def test_seller_and_system_messages_are_told_apart() -> None:
    adapter = TikTokWebhookAdapter("key", "secret")
    for role, kind in (
        ("SHOP", ChatEventKind.SELLER_MESSAGE),
        ("CUSTOMER_SERVICE", ChatEventKind.SELLER_MESSAGE),
        ("SYSTEM", None),
        ("ROBOT", None),
    ):
        payload = {
            **NEW_MESSAGE,
            "data": {
                **NEW_MESSAGE["data"],  # type: ignore[dict-item]
                "sender": {"im_user_id": "s", "role": role},
            },
        }
        (msg,) = adapter.parse(orjson.dumps(payload)).messages
        assert msg.event_kind == kind


def test_other_event_types_are_acknowledged_without_messages() -> None:
    batch = TikTokWebhookAdapter("k", "s").parse(
        orjson.dumps(
            {"type": 13, "shop_id": "1", "data": {"conversation_id": "2", "create_time": 1}}
        )
    )
    assert batch.messages == ()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"type":"14","shop_id":"1"}',
        b'{"type":14,"shop_id":"1","data":{"type":"TEXT"}}',
    ],
)
def test_malformed_webhooks_raise_a_payload_error_naming_the_field(body: bytes) -> None:
    with pytest.raises(PayloadError):
        TikTokWebhookAdapter("k", "s").parse(body)
