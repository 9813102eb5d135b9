"""TikTok Shop chat messages <-> the bridge's :class:`ChatContent`, both ways.

Types and content shapes follow the 202309 customer-service reference (Get
Conversation Messages / Send Message) and the type-14 "new message" webhook;
see docs/tiktok-shop-contract.md. ``content`` is a JSON *string* on the wire.
Unknown types are kept with a fallback description, never dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.chat_platform import payload_fields as fields
from shared.chat_platform.base import (  # noqa: F401 - BUYER_ROLE/SELLER_ROLES re-exported
    BUYER_ROLE,
    CHAT_MESSAGE_LIMIT,
    SELLER_ROLES,
    OutgoingMessage,
    PayloadError,
    PlatformMessage,
)
from shared.chat_platform.emoticons import emoticon_name, emoticon_text
from shared.events import ChatContent, ContentKind

NEW_MESSAGE_WEBHOOK_TYPE = 14  # "14 New message" (docv2/page/14-new-message)
NEW_CONVERSATION_WEBHOOK_TYPE = 13  # "13 New conversation" (docv2/page/13-new-conversation)

# SYSTEM/ROBOT messages are the platform's own; a digest must not be triggered by them.
IGNORED_ROLES = frozenset({"SYSTEM", "ROBOT"})

# Send Message accepts only these types (202309 OAS, Send Message ``type``).
SENDABLE_TYPES = frozenset(
    {
        "TEXT",
        "IMAGE",
        "VIDEO",
        "PRODUCT_CARD",
        "ORDER_CARD",
        "RETURN_REFUND_CARD",
        "COUPON_CARD",
        "LOGISTICS_CARD",
    }
)


# Every role the platform documents (contract s.2); any other is refused, because who
# wrote a message decides whether it starts a digest or clears one.
SENDER_ROLES = frozenset({BUYER_ROLE, *SELLER_ROLES, *IGNORED_ROLES})
_WHERE = "body.data.content"  # content fields are reported under the message's content


def content_from_platform(msg_type: str, content_json: str, where: str = _WHERE) -> ChatContent:
    """Map one platform message type and its JSON-string content to ChatContent.

    Each field read is checked (payload_fields): text bounded, URLs http(s), ids
    ASCII; content that is not a JSON object is kept as text.
    """
    try:
        body = orjson.loads(content_json) if content_json else {}
    except orjson.JSONDecodeError:
        body = {"content": content_json}
    if not isinstance(body, dict):
        body = {"content": body if isinstance(body, str) else content_json}
    t = msg_type.upper()

    def text(key: str = "content", max_chars: int = fields.TEXT_MAX_CHARS) -> str:
        return fields.text_field(body, key, where, max_chars=max_chars)

    def url(key: str) -> str:
        return fields.url_field(body, key, where)

    def ident(key: str) -> str:
        return fields.id_field(body, key, where, required=False)

    if t == "TEXT":
        return ChatContent(kind=ContentKind.TEXT, text=text())
    if t == "EMOTICONS":
        # Content shape undocumented (contract s.2): the code as text ("[smile]") in
        # "content" or "emoji", a picture in "url" or "image_url" when there is one.
        code = text() or text("emoji", fields.NAME_MAX_CHARS)
        return ChatContent(
            kind=ContentKind.EMOTICON,
            text=emoticon_text(code),
            title=emoticon_name(code),
            url=url("url") or url("image_url"),
            platform_type=t,
        )
    if t == "IMAGE":
        return ChatContent(kind=ContentKind.IMAGE, url=url("url"), thumbnail_url=url("url"))
    if t in ("PRODUCT_CARD", "BUYER_ENTER_FROM_PRODUCT"):
        # The documented content is only {"product_id"}: the mailer looks the name, picture
        # and price up (mailer/card_lookup.py); a name sent along is kept meanwhile.
        return ChatContent(
            kind=ContentKind.PRODUCT_CARD,
            product_id=ident("product_id"),
            title=text("product_name", fields.LABEL_MAX_CHARS),
            price=text("price", fields.NAME_MAX_CHARS),
            thumbnail_url=url("image_url") or url("cover"),
            platform_type=t,
        )
    status = text("order_status", fields.NAME_MAX_CHARS) or text("status", fields.NAME_MAX_CHARS)
    if t in ("ORDER_CARD", "BUYER_ENTER_FROM_ORDER"):
        return ChatContent(
            kind=ContentKind.ORDER_CARD, order_id=ident("order_id"), status=status, platform_type=t
        )
    if t == "RETURN_REFUND_CARD":  # {"order_id", "sku_id"}
        return ChatContent(
            kind=ContentKind.RETURN_REFUND_CARD,
            order_id=ident("order_id"),
            sku_id=ident("sku_id"),
            status=status,
            platform_type=t,
        )
    if t == "LOGISTICS_CARD":  # {"order_id", "package_id" (optional)}
        return ChatContent(
            kind=ContentKind.LOGISTICS_CARD,
            order_id=ident("order_id"),
            package_id=ident("package_id"),
            status=status,
            platform_type=t,
        )
    if t == "VIDEO":
        return ChatContent(kind=ContentKind.VIDEO, url=url("url"), thumbnail_url=url("cover"))
    if t == "STICKER":
        return ChatContent(kind=ContentKind.STICKER, url=url("url"), text=text())
    if t in ("NOTIFICATION", "ALLOCATED_SERVICE", "BUYER_ENTER_FROM_TRANSFER"):
        return ChatContent(kind=ContentKind.NOTICE, text=text(), platform_type=t)
    if t == "COUPON_CARD":  # {"coupon_id"}
        return ChatContent(
            kind=ContentKind.COUPON_CARD,
            coupon_id=ident("coupon_id"),
            title=text("title", fields.NAME_MAX_CHARS),
            platform_type=t,
        )
    # OTHER ("Messages of types not supported in this API") and any type added
    # after 202309: kept with a readable fallback, never dropped.
    label = (t or "unknown").replace("_", " ").lower()
    fallback = text() or f"[{label} message: open the chat to view]"
    return ChatContent(kind=ContentKind.OTHER, text=fallback, platform_type=t or "UNKNOWN")


def message_from_webhook(
    payload: Any, *, now_s: float | None = None
) -> tuple[str, PlatformMessage]:
    """Parse a type-14 webhook body into (shop_id, message); raises PayloadError."""
    if not isinstance(payload, dict):
        raise fields.refuse("body", "expected a JSON object", fields.Violation.WRONG_TYPE)
    shop_id = fields.id_field(payload, "shop_id", "body")
    data = fields.object_field(payload, "data", "body")
    return shop_id, message_from_platform(
        data, "body.data", id_field="message_id", shop_id=shop_id, now_s=now_s
    )


def message_from_platform(
    data: dict[str, Any],
    where: str = "message",
    *,
    id_field: str = "id",
    conversation_id: str = "",
    shop_id: str = "",
    now_s: float | None = None,
) -> PlatformMessage:
    """Parse a message object (REST ``id`` or webhook ``message_id``), every field checked.

    REST message objects carry no ``conversation_id``; the caller passes it. With
    ``shop_id``, the conversation id must also fit a reply address beside it.
    """
    sender = fields.object_field(data, "sender", where)
    create_time = fields.unix_seconds_field(data, "create_time", where, now_s=now_s)
    content = data.get("content", "")
    if not isinstance(content, str):
        raise fields.refuse(
            f"{where}.content", "expected a JSON string", fields.Violation.WRONG_TYPE
        )
    msg_type = fields.type_name_field(data, "type", where)
    if not conversation_id:
        conversation_id = (
            fields.conversation_id_field(data, "conversation_id", where, shop_id)
            if shop_id
            else fields.id_field(data, "conversation_id", where)
        )
    index = fields.index_field(data, "index", where)
    return PlatformMessage(
        message_id=fields.id_field(data, id_field, where),
        conversation_id=conversation_id,
        sender_role=fields.enum_field(sender, "role", f"{where}.sender", SENDER_ROLES, upper=True),
        sender_id=fields.id_field(sender, "im_user_id", f"{where}.sender", required=False),
        sender_name=fields.text_field(
            sender, "nickname", f"{where}.sender", max_chars=fields.NAME_MAX_CHARS
        ),
        create_time_s=create_time,
        index=str(index) if index else "",
        is_visible=fields.bool_field(data, "is_visible", where, default=True),
        content=content_from_platform(msg_type, content, f"{where}.content"),
        raw_type=msg_type.upper(),
        raw_content=content,
    )


def outgoing_text(text: str) -> OutgoingMessage:
    """A reply part as a Send Message TEXT: ``{"content": text}`` serialised to a string."""
    # Send Message TEXT: "Max 2000 characters."
    if len(text) > CHAT_MESSAGE_LIMIT:
        raise PayloadError(
            f"text part of {len(text)} characters; the platform allows {CHAT_MESSAGE_LIMIT}"
        )
    return OutgoingMessage("TEXT", orjson.dumps({"content": text}).decode())


def outgoing_image(url: str, width: int = 0, height: int = 0) -> OutgoingMessage:
    """An inline picture as a Send Message IMAGE (url from Upload Buyer Messages Image)."""
    return OutgoingMessage(
        "IMAGE", orjson.dumps({"url": url, "width": width, "height": height}).decode()
    )


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
