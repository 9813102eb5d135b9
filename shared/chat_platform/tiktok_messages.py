"""TikTok Shop chat messages <-> the bridge's :class:`ChatContent`, both ways.

Types and content shapes follow the 202309 customer-service reference (Get
Conversation Messages / Send Message) and the type-14 "new message" webhook;
see docs/tiktok-shop-contract.md. ``content`` is a JSON *string* on the wire.
Unknown types are kept with a fallback description, never dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.chat_platform.base import (  # noqa: F401 - BUYER_ROLE/SELLER_ROLES re-exported
    BUYER_ROLE,
    SELLER_ROLES,
    OutgoingMessage,
    PayloadError,
    PlatformMessage,
)
from shared.events import ChatContent, ContentKind

NEW_MESSAGE_WEBHOOK_TYPE = 14  # "14 New message" (docv2/page/14-new-message)
NEW_CONVERSATION_WEBHOOK_TYPE = 13  # "13 New conversation" (docv2/page/13-new-conversation)

# SYSTEM/ROBOT messages are the platform's own; a digest must not be triggered by them.
IGNORED_ROLES = frozenset({"SYSTEM", "ROBOT"})

# Send Message accepts only these types (202309 OAS, Send Message ``type``).
SENDABLE_TYPES = frozenset({"TEXT", "IMAGE", "VIDEO", "PRODUCT_CARD", "ORDER_CARD",
                            "RETURN_REFUND_CARD", "COUPON_CARD", "LOGISTICS_CARD"})
TEXT_LIMIT = 2000  # Send Message TEXT: "Max 2000 characters."


def _str(obj: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise PayloadError(f"{where}.{key}: missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"{where}.{key}: expected a string")
    return str(value)


def content_from_platform(msg_type: str, content_json: str) -> ChatContent:
    """Map one platform message type and its JSON-string content to ChatContent."""
    try:
        body = orjson.loads(content_json) if content_json else {}
    except orjson.JSONDecodeError:
        body = {"content": content_json}
    if not isinstance(body, dict):
        body = {"content": str(body)}
    text = str(body.get("content", "") or "")
    t = msg_type.upper()
    if t == "TEXT":
        return ChatContent(kind=ContentKind.TEXT, text=text)
    if t == "EMOTICONS":
        # Shape undocumented: keep whatever text or URL it carries.
        return ChatContent(kind=ContentKind.EMOJI, text=text or str(body.get("emoji", "")),
                           url=str(body.get("url", "") or ""), platform_type=t)
    if t == "IMAGE":
        return ChatContent(kind=ContentKind.IMAGE, url=str(body.get("url", "")),
                           thumbnail_url=str(body.get("url", "")))
    if t in ("PRODUCT_CARD", "BUYER_ENTER_FROM_PRODUCT"):
        product_id = str(body.get("product_id", ""))
        # The documented content is only {"product_id"}; a name, if present, wins.
        return ChatContent(kind=ContentKind.PRODUCT_CARD,
                           title=str(body.get("product_name", "") or f"Product {product_id}"),
                           price=str(body.get("price", "")),
                           thumbnail_url=str(body.get("image_url", body.get("cover", ""))),
                           text=str(body.get("product_id", "")), platform_type=t)
    if t in ("ORDER_CARD", "BUYER_ENTER_FROM_ORDER", "LOGISTICS_CARD", "RETURN_REFUND_CARD"):
        return ChatContent(kind=ContentKind.ORDER_CARD, order_id=str(body.get("order_id", "")),
                           status=str(body.get("order_status", body.get("status", ""))),
                           platform_type=t)
    if t == "VIDEO":
        return ChatContent(kind=ContentKind.VIDEO, url=str(body.get("url", "")),
                           thumbnail_url=str(body.get("cover", "")))
    if t == "STICKER":
        return ChatContent(kind=ContentKind.STICKER, url=str(body.get("url", "")), text=text)
    if t in ("NOTIFICATION", "ALLOCATED_SERVICE", "BUYER_ENTER_FROM_TRANSFER"):
        return ChatContent(kind=ContentKind.NOTICE, text=text, platform_type=t)
    if t == "COUPON_CARD":
        coupon = f"Coupon {body.get('coupon_id', '')}".strip()
        return ChatContent(kind=ContentKind.OTHER, text=coupon,
                           platform_type=t)
    # OTHER ("Messages of types not supported in this API") and any type added
    # after 202309: kept with a readable fallback, never dropped.
    label = (t or "unknown").replace("_", " ").lower()
    fallback = text or f"[{label} message: open the chat to view]"
    return ChatContent(kind=ContentKind.OTHER, text=fallback, platform_type=t or "UNKNOWN")


def message_from_webhook(payload: Any) -> tuple[str, PlatformMessage]:
    """Parse a type-14 webhook body into (shop_id, message); raises PayloadError."""
    if not isinstance(payload, dict):
        raise PayloadError("body: expected a JSON object")
    shop_id = _str(payload, "shop_id", "body")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadError("body.data: expected an object")
    return shop_id, message_from_platform(data, "body.data", id_field="message_id")


def message_from_platform(data: dict[str, Any], where: str = "message", *,
                          id_field: str = "id", conversation_id: str = "") -> PlatformMessage:
    """Parse a message object (REST ``id`` or webhook ``message_id``).

    REST message objects carry no ``conversation_id``; the caller passes it.
    """
    sender = data.get("sender")
    if not isinstance(sender, dict):
        raise PayloadError(f"{where}.sender: expected an object")
    create_time = data.get("create_time")
    if not isinstance(create_time, int) or isinstance(create_time, bool) or create_time < 0:
        raise PayloadError(f"{where}.create_time: expected a Unix time in seconds")
    content = data.get("content", "")
    if not isinstance(content, str):
        raise PayloadError(f"{where}.content: expected a JSON string")
    msg_type = _str(data, "type", where)
    return PlatformMessage(
        message_id=_str(data, id_field, where),
        conversation_id=conversation_id or _str(data, "conversation_id", where),
        sender_role=_str(sender, "role", f"{where}.sender").upper(),
        sender_id=_str(sender, "im_user_id", f"{where}.sender", required=False),
        sender_name=_str(sender, "nickname", f"{where}.sender", required=False),
        create_time_s=create_time,
        index=_str(data, "index", where, required=False),
        is_visible=bool(data.get("is_visible", True)),
        content=content_from_platform(msg_type, content),
        raw_type=msg_type.upper(),
        raw_content=content,
    )


def outgoing_text(text: str) -> OutgoingMessage:
    """A reply part as a Send Message TEXT: ``{"content": text}`` serialised to a string."""
    if len(text) > TEXT_LIMIT:
        raise PayloadError(f"text part of {len(text)} characters; the platform allows {TEXT_LIMIT}")
    return OutgoingMessage("TEXT", orjson.dumps({"content": text}).decode())


def outgoing_image(url: str, width: int = 0, height: int = 0) -> OutgoingMessage:
    """An inline picture as a Send Message IMAGE (url from Upload Buyer Messages Image)."""
    return OutgoingMessage("IMAGE", orjson.dumps({"url": url, "width": width,
                                                  "height": height}).decode())


def send_message_body(message: OutgoingMessage) -> bytes:
    """Send Message request body: ``{"type": ..., "content": "<JSON string>"}``."""
    if message.msg_type not in SENDABLE_TYPES:
        raise PayloadError(f"type {message.msg_type!r} cannot be sent through Send Message")
    return orjson.dumps({"type": message.msg_type, "content": message.content_json})


def text_message_body(text: str) -> bytes:
    """Send Message body for a text part: ``content`` is itself a JSON string."""
    return orjson.dumps({"type": "TEXT", "content": orjson.dumps({"content": text}).decode()})


def image_message_body(url: str, width: int = 0, height: int = 0) -> bytes:
    inner = {"url": url, "width": width, "height": height}
    return orjson.dumps({"type": "IMAGE", "content": orjson.dumps(inner).decode()})
