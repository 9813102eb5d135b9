"""The generic signed-webhook adapter: the interface is not TikTok-shaped only."""

from __future__ import annotations

import orjson
import pytest

from shared.chat_platform.base import ChatPlatform, PayloadError, WebhookRejected
from shared.chat_platform.generic_webhook import (
    GenericChatPlatform,
    GenericWebhookAdapter,
    sign_generic,
    signed_headers,
)
from shared.events import ChatEventKind, ContentKind

SECRET = "s3cret"
NOW = 1_700_000_000
BODY = orjson.dumps(
    {
        "shop_id": "shop-1",
        "events": [
            {
                "type": "message",
                "conversation_id": "c1",
                "message_id": "m1",
                "create_time": NOW,
                "sender": {"role": "buyer", "id": "b1", "name": "Ana"},
                "content": {"kind": "product_card", "title": "Kettle", "url": "https://p/1"},
            },
            {
                "type": "message",
                "conversation_id": "c1",
                "message_id": "m2",
                "create_time": NOW,
                "sender": {"role": "buyer", "id": "b1", "name": "Ana"},
                "content": {"kind": "poll", "text": ""},
            },
            {"type": "read", "conversation_id": "c1", "message_id": "r1", "create_time": NOW},
        ],
    }
)


def test_signature_over_timestamp_and_body_verifies() -> None:
    GenericWebhookAdapter(SECRET).verify(signed_headers(SECRET, BODY, NOW), BODY, now_s=NOW)


def test_wrong_signature_is_401_and_an_old_timestamp_is_403() -> None:
    adapter = GenericWebhookAdapter(SECRET)
    headers = signed_headers(SECRET, BODY, NOW)
    with pytest.raises(WebhookRejected) as bad:
        adapter.verify(
            {**headers, "x-bridge-signature": sign_generic("other", "1", BODY)}, BODY, now_s=NOW
        )
    assert bad.value.status == 401
    with pytest.raises(WebhookRejected) as old:
        adapter.verify(headers, BODY, now_s=NOW + 3600)
    assert old.value.status == 403


def test_events_map_to_buyer_messages_and_a_seller_read() -> None:
    batch = GenericWebhookAdapter(SECRET).parse(BODY)
    card, unknown, read = batch.messages
    assert card.event_kind == ChatEventKind.BUYER_MESSAGE
    assert card.content.kind == ContentKind.PRODUCT_CARD and card.content.title == "Kettle"
    assert card.sender_name == "Ana"
    assert unknown.content.kind == ContentKind.OTHER and "poll" in unknown.content.text
    assert read.event_kind == ChatEventKind.READ


def test_malformed_event_names_the_field() -> None:
    body = orjson.dumps({"shop_id": "s", "events": [{"type": "message", "message_id": "m"}]})
    with pytest.raises(PayloadError, match="conversation_id"):
        GenericWebhookAdapter(SECRET).parse(body)


def test_the_generic_platform_satisfies_the_same_send_interface() -> None:
    platform = GenericChatPlatform("http://127.0.0.1:9", SECRET)
    assert isinstance(platform, ChatPlatform)
    assert orjson.loads(platform.outgoing_text("hi").content_json) == {"kind": "text", "text": "hi"}
