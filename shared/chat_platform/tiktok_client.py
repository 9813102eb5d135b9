"""Async client for the TikTok Shop customer-service Open API (202309).

Requests are signed per :mod:`shared.chat_platform.tiktok_signing`; the shop's
access token goes in ``x-tts-access-token``. Errors are mapped to
:class:`PlatformError` with ``retryable`` and ``retry_after_s`` so callers can
back off correctly (429 rate limit ``36009002``, 5xx, 503 protective).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from shared.chat_platform.tiktok_messages import image_message_body, text_message_body
from shared.chat_platform.tiktok_signing import sign_request

API_VERSION = "202309"
CS_PREFIX = f"/customer_service/{API_VERSION}"

RATE_LIMITED = 36009002
EXPIRED_TOKEN = 105002
INVALID_SIGN = 106001


class PlatformError(Exception):
    """A chat-platform call failed; ``retryable`` says whether trying again can help."""

    def __init__(self, reason: str, *, status: int = 0, code: int = 0, retryable: bool = False,
                 retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class ConversationInfo:
    conversation_id: str
    buyer_id: str
    buyer_name: str


class TikTokShopClient:
    """One app's client; ``access_tokens`` maps shop id -> token (``*`` is the fallback)."""

    def __init__(self, base_url: str, app_key: str, app_secret: str,
                 access_tokens: dict[str, str], *, timeout_s: float = 10.0,
                 http: httpx.AsyncClient | None = None) -> None:
        self._app_key = app_key
        self._secret = app_secret
        self._tokens = access_tokens
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout_s,
                                               limits=httpx.Limits(max_connections=64))

    async def aclose(self) -> None:
        await self._http.aclose()

    def _token(self, shop_id: str) -> str:
        token = self._tokens.get(shop_id) or self._tokens.get("*")
        if not token:
            raise PlatformError(f"no access token configured for shop {shop_id}")
        return token

    async def _call(self, method: str, path: str, shop_id: str, *, body: bytes = b"",
                    params: dict[str, str] | None = None,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
        query = {"app_key": self._app_key, "timestamp": str(int(time.time())), **(params or {})}
        query["sign"] = sign_request(path, query, body, self._secret)
        hdrs = {"x-tts-access-token": self._token(shop_id), "content-type": "application/json",
                **(headers or {})}
        try:
            resp = await self._http.request(method, path, params=query, content=body or None,
                                            headers=hdrs)
        except httpx.HTTPError as exc:
            raise PlatformError(f"platform unreachable: {exc.__class__.__name__}",
                                retryable=True) from None
        try:
            envelope = orjson.loads(resp.content) if resp.content else {}
        except orjson.JSONDecodeError:
            envelope = {}
        code = int(envelope.get("code", 0) or 0) if isinstance(envelope, dict) else 0
        message = str(envelope.get("message", "")) if isinstance(envelope, dict) else ""
        if resp.status_code == 429 or code == RATE_LIMITED:
            raise PlatformError(f"rate limited: {message}", status=resp.status_code, code=code,
                                retryable=True, retry_after_s=_retry_after(resp))
        if resp.status_code >= 500:
            raise PlatformError(f"platform error {resp.status_code}: {message}",
                                status=resp.status_code, code=code, retryable=True,
                                retry_after_s=_retry_after(resp))
        if resp.status_code >= 400 or code != 0:
            raise PlatformError(f"platform refused ({resp.status_code}, code {code}): {message}",
                                status=resp.status_code, code=code, retryable=False)
        data = envelope.get("data") or {}
        return data if isinstance(data, dict) else {}

    async def send_text(self, shop_id: str, conversation_id: str, text: str, *,
                        idempotency_key: str = "") -> str:
        """Send a text message; returns the platform's message id."""
        return await self._send(shop_id, conversation_id, text_message_body(text), idempotency_key)

    async def send_image(self, shop_id: str, conversation_id: str, url: str, *,
                         idempotency_key: str = "") -> str:
        return await self._send(shop_id, conversation_id, image_message_body(url), idempotency_key)

    async def _send(self, shop_id: str, conversation_id: str, body: bytes, key: str) -> str:
        # The platform has no idempotency header of its own; the key is sent for
        # tracing (the sandbox uses it to detect doubles). Exactly-once comes from
        # the fan-out's delivery state.
        headers = {"x-bridge-idempotency-key": key} if key else None
        data = await self._call("POST", f"{CS_PREFIX}/conversations/{conversation_id}/messages",
                                shop_id, body=body, headers=headers)
        return str(data.get("message_id", ""))

    async def mark_read(self, shop_id: str, conversation_id: str) -> None:
        await self._call("POST", f"{CS_PREFIX}/conversations/{conversation_id}/messages/read",
                         shop_id)

    async def get_conversation(self, shop_id: str, conversation_id: str) -> ConversationInfo:
        """Buyer of a conversation (Get Conversation, 202601: the webhook has no nickname)."""
        data = await self._call("GET", f"/customer_service/202601/conversations/{conversation_id}",
                                shop_id)
        conv = data.get("conversation", data)
        for p in conv.get("participants", []) or []:
            if isinstance(p, dict) and str(p.get("role", "")).upper() == "BUYER":
                return ConversationInfo(conversation_id, str(p.get("im_user_id", "")),
                                        str(p.get("nickname", "")))
        return ConversationInfo(conversation_id, "", "")


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
