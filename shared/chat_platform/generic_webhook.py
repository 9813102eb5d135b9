"""A generic signed-webhook chat platform: the second adapter behind the same interface.

For a marketplace without its own adapter, or an in-house chat. The contract is
ours and small (Stripe/GitHub-style signing, with the timestamp signed so old
deliveries can be refused):

Receive: ``POST`` with ``X-Bridge-Timestamp: <unix seconds>`` and
``X-Bridge-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>``;
body ``{"shop_id": "...", "events": [{"type": "message" | "read",
"conversation_id", "message_id", "create_time" (s), "sender": {"role":
"buyer" | "seller" | "system", "id", "name"}, "content": {"kind", "text", "url",
"title", "order_id", ...}}]}``.

Send: ``POST {base}/conversations/{id}/messages`` with ``{"type", "content"}``
and an ``Idempotency-Key`` header (a platform we define can honour it, unlike
TikTok's); ``POST .../read``; ``GET {base}/conversations/{id}``;
``GET {base}/conversations/{id}/messages?since=<s>``. Requests carry the same
signature headers as webhooks.

Off unless configured: with no ``BRIDGE_GENERIC_WEBHOOK_SECRET`` the ingest mounts no
``/webhooks/generic`` route (404) and both classes refuse an empty secret, since an
HMAC with an empty key is one anyone can compute.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from shared.chat_platform import payload_fields as fields
from shared.chat_platform.base import (
    ConversationInfo,
    OrderDetails,
    OutgoingMessage,
    PlatformError,
    PlatformMessage,
    ProductDetails,
    UploadedImage,
    WebhookBatch,
    WebhookRejected,
    json_object_body,
    retry_after_s,
    transport_error,
)
from shared.constant_time import same_secret
from shared.events import ChatContent, ChatEventKind, ContentKind

TIMESTAMP_HEADER = "x-bridge-timestamp"
SIGNATURE_HEADER = "x-bridge-signature"
TOLERANCE_S = 300
_TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit() accepts "²"
_ROLES = {"buyer": "BUYER", "seller": "SHOP", "agent": "CUSTOMER_SERVICE", "system": "SYSTEM"}
_ROLE_NAMES = frozenset(_ROLES)
_EVENT_TYPES = frozenset({"message", "read"})
_KINDS = {k.value for k in ContentKind}


def require_secret(secret: str) -> str:
    """The shared secret, or :class:`ValueError` if it is empty (the adapter is off)."""
    if not secret:
        raise ValueError(
            "the generic chat platform needs BRIDGE_GENERIC_WEBHOOK_SECRET; "
            "without it the adapter is off"
        )
    return secret


def sign_generic(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now_s: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if now_s is None else now_s))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign_generic(secret, ts, body)}


def content_from_generic(raw: Any, where: str) -> ChatContent:
    """Map a generic ``content`` object, every field checked; unknown kinds are kept as
    OTHER with a description."""
    if not isinstance(raw, dict):
        raise fields.refuse(where, "expected an object", fields.Violation.WRONG_TYPE)
    kind = (fields.type_name_field(raw, "kind", where, required=False) or "text").lower()
    values = {
        "text": fields.text_field(raw, "text", where),
        "url": fields.url_field(raw, "url", where),
        "thumbnail_url": fields.url_field(raw, "thumbnail_url", where),
        "title": fields.text_field(raw, "title", where, max_chars=fields.LABEL_MAX_CHARS),
        "price": fields.text_field(raw, "price", where, max_chars=fields.NAME_MAX_CHARS),
        "order_id": fields.id_field(raw, "order_id", where, required=False),
        "status": fields.text_field(raw, "status", where, max_chars=fields.NAME_MAX_CHARS),
        "product_id": fields.id_field(raw, "product_id", where, required=False),
        "sku_id": fields.id_field(raw, "sku_id", where, required=False),
        "package_id": fields.id_field(raw, "package_id", where, required=False),
        "coupon_id": fields.id_field(raw, "coupon_id", where, required=False),
    }
    if kind not in _KINDS or kind == ContentKind.OTHER:
        text = values["text"] or f"[{kind} message: open the chat to view]"
        return ChatContent(kind=ContentKind.OTHER, text=text, url=values["url"], platform_type=kind)
    return ChatContent(kind, **values)  # type: ignore[arg-type]  # every value is a str field


class GenericWebhookAdapter:
    """Receive side of the generic platform."""

    name = "generic"

    def __init__(self, secret: str, *, tolerance_s: int = TOLERANCE_S) -> None:
        self._secret = require_secret(secret)
        self._tolerance = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, now_s: float | None = None) -> None:
        ts = headers.get(TIMESTAMP_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not _TIMESTAMP.fullmatch(ts) or not given:
            raise WebhookRejected(401, f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
        if not same_secret(sign_generic(self._secret, ts, body), given.strip()):
            raise WebhookRejected(401, "signature does not match the body and timestamp")
        now = time.time() if now_s is None else now_s
        if abs(now - int(ts)) > self._tolerance:
            # Signed but old: a replayed capture, refused (the timestamp is signed).
            raise WebhookRejected(403, f"timestamp outside +/-{self._tolerance}s: replay refused")

    def parse(self, body: bytes, now_s: float | None = None) -> WebhookBatch:
        payload = json_object_body(body)
        shop_id = fields.id_field(payload, "shop_id", "body")
        events = payload.get("events")
        if not isinstance(events, list):
            raise fields.refuse("body.events", "expected a list", fields.Violation.WRONG_TYPE)
        return WebhookBatch(
            shop_id,
            tuple(
                message_from_generic(e, f"body.events[{i}]", shop_id=shop_id, now_s=now_s)
                for i, e in enumerate(events)
            ),
        )


def message_from_generic(
    raw: Any,
    where: str,
    conversation_id: str = "",
    *,
    shop_id: str = "",
    now_s: float | None = None,
) -> PlatformMessage:
    """One generic event, every field checked (payload_fields); raises PayloadError."""
    if not isinstance(raw, dict):
        raise fields.refuse(where, "expected an object", fields.Violation.WRONG_TYPE)
    event_type = fields.enum_field(raw, "type", where, _EVENT_TYPES, default="message")
    if not conversation_id:
        conversation_id = (
            fields.conversation_id_field(raw, "conversation_id", where, shop_id)
            if shop_id
            else fields.id_field(raw, "conversation_id", where)
        )
    create_time = fields.unix_seconds_field(raw, "create_time", where, now_s=now_s)
    sender = fields.object_field(raw, "sender", where, required=False)
    default_role = "seller" if event_type == "read" else None
    role = _ROLES[
        fields.enum_field(sender, "role", f"{where}.sender", _ROLE_NAMES, default=default_role)
    ]
    message_id = fields.id_field(raw, "message_id", where)
    sender_id = fields.id_field(sender, "id", f"{where}.sender", required=False)
    sender_name = fields.text_field(
        sender, "name", f"{where}.sender", max_chars=fields.NAME_MAX_CHARS
    )
    if event_type == "read":
        content = ChatContent(kind=ContentKind.NOTICE, text="read")
        raw_type = raw_content = ""
    else:
        content = content_from_generic(raw.get("content"), f"{where}.content")
        raw_type = str(raw["content"].get("kind", ""))
        raw_content = orjson.dumps(raw["content"]).decode()
    return PlatformMessage(
        message_id=message_id,
        conversation_id=conversation_id,
        sender_role=role,
        sender_id=sender_id,
        sender_name=sender_name,
        create_time_s=create_time,
        index="",
        is_visible=True,
        content=content,
        raw_type=raw_type,
        raw_content=raw_content,
        kind_override=ChatEventKind.READ if event_type == "read" else "",
    )


class GenericChatPlatform:
    """Send side of the generic platform."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout_s: float = 10.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._secret = require_secret(secret)
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    def outgoing_text(self, text: str) -> OutgoingMessage:
        return OutgoingMessage("text", orjson.dumps({"kind": "text", "text": text}).decode())

    def outgoing_image(self, url: str, width: int = 0, height: int = 0) -> OutgoingMessage:
        return OutgoingMessage("image", orjson.dumps({"kind": "image", "url": url}).decode())

    async def upload_image(
        self, shop_id: str, data: bytes, content_type: str, filename: str = ""
    ) -> UploadedImage:
        """The generic contract has no upload: refused (not retryable) with the reason, so
        the part is dead-lettered and the seller told, instead of a silent drop."""
        raise PlatformError(
            "the generic chat platform has no image upload; inline pictures "
            "cannot be delivered there (send an image url instead)"
        )

    async def product_details(
        self, shop_id: str, product_ids: list[str]
    ) -> dict[str, ProductDetails]:
        """The generic contract has no product API: nothing known, cards show their ids."""
        return {}

    async def order_details(self, shop_id: str, order_ids: list[str]) -> dict[str, OrderDetails]:
        """The generic contract has no order API: nothing known, cards show their ids."""
        return {}

    async def _call(
        self,
        method: str,
        path: str,
        shop_id: str,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        hdrs = {
            **signed_headers(self._secret, body),
            "content-type": "application/json",
            "x-shop-id": shop_id,
            **(headers or {}),
        }
        try:
            resp = await self._http.request(
                method, path, content=body or None, headers=hdrs, params=params
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc, method) from None
        if resp.status_code == 429 or resp.status_code >= 500:
            raise PlatformError(
                f"platform busy ({resp.status_code})",
                status=resp.status_code,
                retryable=True,
                retry_after_s=retry_after_s(resp),
                ambiguous=method == "POST" and resp.status_code >= 500,
            )
        if resp.status_code >= 400:
            raise PlatformError(
                f"platform refused ({resp.status_code}): {resp.text[:200]}", status=resp.status_code
            )
        data = orjson.loads(resp.content) if resp.content else {}
        return data if isinstance(data, dict) else {}

    async def send(
        self,
        shop_id: str,
        conversation_id: str,
        message: OutgoingMessage,
        *,
        idempotency_key: str = "",
    ) -> str:
        body = orjson.dumps(
            {"type": message.msg_type, "content": orjson.loads(message.content_json)}
        )
        data = await self._call(
            "POST",
            f"/conversations/{conversation_id}/messages",
            shop_id,
            body,
            {"idempotency-key": idempotency_key} if idempotency_key else None,
        )
        return str(data.get("message_id", ""))

    async def mark_read(self, shop_id: str, conversation_id: str) -> None:
        await self._call("POST", f"/conversations/{conversation_id}/read", shop_id)

    async def get_conversation(self, shop_id: str, conversation_id: str) -> ConversationInfo:
        data = await self._call("GET", f"/conversations/{conversation_id}", shop_id)
        buyer = data.get("buyer") or {}
        return ConversationInfo(
            conversation_id, str(buyer.get("id", "")), str(buyer.get("name", ""))
        )

    async def messages_since(
        self, shop_id: str, conversation_id: str, since_s: int
    ) -> list[PlatformMessage]:
        data = await self._call(
            "GET",
            f"/conversations/{conversation_id}/messages",
            shop_id,
            params={"since": str(since_s)},
        )
        out = [
            message_from_generic(m, "messages[]", conversation_id)
            for m in data.get("messages", []) or []
        ]
        return sorted(out, key=lambda m: m.create_time_s)
