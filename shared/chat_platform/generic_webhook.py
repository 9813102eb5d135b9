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
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from shared.chat_platform.base import (
    ConversationInfo,
    OutgoingMessage,
    PayloadError,
    PlatformError,
    PlatformMessage,
    UploadedImage,
    WebhookBatch,
    WebhookRejected,
    json_object_body,
)
from shared.events import ChatContent, ChatEventKind, ContentKind

TIMESTAMP_HEADER = "x-bridge-timestamp"
SIGNATURE_HEADER = "x-bridge-signature"
TOLERANCE_S = 300
_ROLES = {"buyer": "BUYER", "seller": "SHOP", "agent": "CUSTOMER_SERVICE", "system": "SYSTEM"}
_KINDS = {k.value for k in ContentKind}


def require_secret(secret: str) -> str:
    """The shared secret, or :class:`ValueError` if it is empty (the adapter is off)."""
    if not secret:
        raise ValueError("the generic chat platform needs BRIDGE_GENERIC_WEBHOOK_SECRET; "
                         "without it the adapter is off")
    return secret


def sign_generic(secret: str, timestamp: str, body: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, now_s: float | None = None) -> dict[str, str]:
    ts = str(int(time.time() if now_s is None else now_s))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: sign_generic(secret, ts, body)}


def content_from_generic(raw: Any, where: str) -> ChatContent:
    """Map a generic ``content`` object; unknown kinds are kept as OTHER with a description."""
    if not isinstance(raw, dict):
        raise PayloadError(f"{where}: expected an object")
    kind = str(raw.get("kind", "text")).lower()
    fields = {k: str(raw.get(k, "") or "") for k in
              ("text", "url", "thumbnail_url", "title", "price", "order_id", "status")}
    if kind not in _KINDS or kind == ContentKind.OTHER:
        text = fields["text"] or f"[{kind} message: open the chat to view]"
        return ChatContent(kind=ContentKind.OTHER, text=text, url=fields["url"],
                           platform_type=kind)
    return ChatContent(kind=kind, **fields)


class GenericWebhookAdapter:
    """Receive side of the generic platform."""

    name = "generic"

    def __init__(self, secret: str, *, tolerance_s: int = TOLERANCE_S) -> None:
        self._secret = require_secret(secret)
        self._tolerance = tolerance_s

    def verify(self, headers: Mapping[str, str], body: bytes, now_s: float | None = None) -> None:
        ts = headers.get(TIMESTAMP_HEADER, "")
        given = headers.get(SIGNATURE_HEADER, "")
        if not ts.isdigit() or not given:
            raise WebhookRejected(401, f"{TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required")
        if not hmac.compare_digest(sign_generic(self._secret, ts, body), given.strip()):
            raise WebhookRejected(401, "signature does not match the body and timestamp")
        now = time.time() if now_s is None else now_s
        if abs(now - int(ts)) > self._tolerance:
            # Signed but old: a replayed capture, refused (the timestamp is signed).
            raise WebhookRejected(403, f"timestamp outside +/-{self._tolerance}s: replay refused")

    def parse(self, body: bytes) -> WebhookBatch:
        payload = json_object_body(body)
        shop_id = payload.get("shop_id")
        if not isinstance(shop_id, str) or not shop_id:
            raise PayloadError("body.shop_id: missing")
        events = payload.get("events")
        if not isinstance(events, list):
            raise PayloadError("body.events: expected a list")
        return WebhookBatch(shop_id, tuple(message_from_generic(e, f"body.events[{i}]")
                                           for i, e in enumerate(events)))


def message_from_generic(raw: Any, where: str, conversation_id: str = "") -> PlatformMessage:
    if not isinstance(raw, dict):
        raise PayloadError(f"{where}: expected an object")
    event_type = raw.get("type", "message")
    if event_type not in ("message", "read"):
        raise PayloadError(f"{where}.type: expected 'message' or 'read'")
    conv = conversation_id or raw.get("conversation_id")
    if not isinstance(conv, str) or not conv:
        raise PayloadError(f"{where}.conversation_id: missing")
    create_time = raw.get("create_time")
    if not isinstance(create_time, int) or isinstance(create_time, bool) or create_time < 0:
        raise PayloadError(f"{where}.create_time: expected a Unix time in seconds")
    sender = raw.get("sender") or {}
    if not isinstance(sender, dict):
        raise PayloadError(f"{where}.sender: expected an object")
    role = _ROLES.get(str(sender.get("role", "seller" if event_type == "read" else "")).lower())
    if role is None:
        raise PayloadError(f"{where}.sender.role: expected buyer, seller, agent or system")
    message_id = str(raw.get("message_id", "") or "")
    if not message_id:
        raise PayloadError(f"{where}.message_id: missing")
    if event_type == "read":
        content = ChatContent(kind=ContentKind.NOTICE, text="read")
    else:
        content = content_from_generic(raw.get("content"), f"{where}.content")
    return PlatformMessage(
        message_id=message_id, conversation_id=conv, sender_role=role,
        sender_id=str(sender.get("id", "")), sender_name=str(sender.get("name", "")),
        create_time_s=create_time, index="", is_visible=True, content=content,
        raw_type=str((raw.get("content") or {}).get("kind", "")) if event_type == "message" else "",
        raw_content=orjson.dumps(raw.get("content")).decode() if event_type == "message" else "",
        kind_override=ChatEventKind.READ if event_type == "read" else "",
    )


class GenericChatPlatform:
    """Send side of the generic platform."""

    def __init__(self, base_url: str, secret: str, *, timeout_s: float = 10.0,
                 http: httpx.AsyncClient | None = None) -> None:
        self._secret = require_secret(secret)
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    def outgoing_text(self, text: str) -> OutgoingMessage:
        return OutgoingMessage("text", orjson.dumps({"kind": "text", "text": text}).decode())

    def outgoing_image(self, url: str, width: int = 0, height: int = 0) -> OutgoingMessage:
        return OutgoingMessage("image", orjson.dumps({"kind": "image", "url": url}).decode())

    async def upload_image(self, shop_id: str, data: bytes, content_type: str,
                           filename: str = "") -> UploadedImage:
        """The generic contract has no upload: refused (not retryable) with the reason, so
        the part is dead-lettered and the seller told, instead of a silent drop."""
        raise PlatformError("the generic chat platform has no image upload; inline pictures "
                            "cannot be delivered there (send an image url instead)")

    async def _call(self, method: str, path: str, shop_id: str, body: bytes = b"",
                    headers: Mapping[str, str] | None = None,
                    params: Mapping[str, str] | None = None) -> dict[str, Any]:
        hdrs = {**signed_headers(self._secret, body), "content-type": "application/json",
                "x-shop-id": shop_id, **(headers or {})}
        try:
            resp = await self._http.request(method, path, content=body or None, headers=hdrs,
                                            params=params)
        except httpx.ConnectError as exc:
            raise PlatformError(f"platform unreachable: {exc}", retryable=True) from None
        except httpx.HTTPError as exc:
            raise PlatformError(f"platform call failed: {exc.__class__.__name__}",
                                retryable=True, ambiguous=method == "POST") from None
        if resp.status_code == 429 or resp.status_code >= 500:
            ra = resp.headers.get("retry-after")
            raise PlatformError(f"platform busy ({resp.status_code})", status=resp.status_code,
                                retryable=True, retry_after_s=float(ra) if ra and ra.replace(
                                    ".", "", 1).isdigit() else None,
                                ambiguous=method == "POST" and resp.status_code >= 500)
        if resp.status_code >= 400:
            raise PlatformError(f"platform refused ({resp.status_code}): {resp.text[:200]}",
                                status=resp.status_code)
        data = orjson.loads(resp.content) if resp.content else {}
        return data if isinstance(data, dict) else {}

    async def send(self, shop_id: str, conversation_id: str, message: OutgoingMessage, *,
                   idempotency_key: str = "") -> str:
        body = orjson.dumps({"type": message.msg_type,
                             "content": orjson.loads(message.content_json)})
        data = await self._call("POST", f"/conversations/{conversation_id}/messages", shop_id,
                                body, {"idempotency-key": idempotency_key} if idempotency_key
                                else None)
        return str(data.get("message_id", ""))

    async def mark_read(self, shop_id: str, conversation_id: str) -> None:
        await self._call("POST", f"/conversations/{conversation_id}/read", shop_id)

    async def get_conversation(self, shop_id: str, conversation_id: str) -> ConversationInfo:
        data = await self._call("GET", f"/conversations/{conversation_id}", shop_id)
        buyer = data.get("buyer") or {}
        return ConversationInfo(conversation_id, str(buyer.get("id", "")),
                                str(buyer.get("name", "")))

    async def messages_since(self, shop_id: str, conversation_id: str,
                             since_s: int) -> list[PlatformMessage]:
        data = await self._call("GET", f"/conversations/{conversation_id}/messages", shop_id,
                                params={"since": str(since_s)})
        out = [message_from_generic(m, "messages[]", conversation_id)
               for m in data.get("messages", []) or []]
        return sorted(out, key=lambda m: m.create_time_s)
