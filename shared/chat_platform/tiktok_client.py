"""Async client for the TikTok Shop customer-service Open API (202309): the send side.

Followed (docs/tiktok-shop-contract.md has the quotes and sources):
- base ``https://open-api.tiktokglobalshop.com``, path ``/{category}/{version}/{resource}``
  with the version in the path (guides "methods-and-endpoints", "upgrading to 202309");
- common query parameters ``app_key``, ``timestamp`` (10-digit Unix seconds), ``sign``
  (guide "common-parameters"), signed per :mod:`tiktok_signing` ("sign-your-api-request");
- the shop's access token in the ``x-tts-access-token`` header, never signed;
  ``shop_cipher`` as an optional query parameter (signed like any other);
- Get Conversation Messages / Send Message / Read Message, 202309 OAS (s.2);
- Get Product / Get Order Detail for the cards a digest shows (s.7);
- error envelope ``{code, message, request_id, data}``; 429 / ``36009002`` rate limit,
  503 protective, ``105002`` expired token, ``106001`` bad sign (guide "common-errors").

Errors map to :class:`PlatformError` with ``retryable``, ``retry_after_s`` and
``ambiguous`` (a POST that may have been applied although it failed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from shared.chat_platform.base import (
    ConversationInfo,
    OrderDetails,
    OutgoingMessage,
    PayloadError,
    PlatformError,
    PlatformMessage,
    ProductDetails,
    UploadedImage,
    check_image,
    retry_after_s,
    transport_error,
)
from shared.chat_platform.payload_fields import NAME_MAX_CHARS, text_field
from shared.chat_platform.rate_limit import ShopApiLimiter
from shared.chat_platform.tiktok_catalog import (
    ORDER_IDS_PER_CALL,
    order_details_from_platform,
    product_from_platform,
)
from shared.chat_platform.tiktok_messages import (
    message_from_platform,
    outgoing_image,
    outgoing_text,
    send_message_body,
)
from shared.chat_platform.tiktok_signing import sign_request

__all__ = ["ConversationInfo", "PlatformError", "TikTokShopClient", "parse_token_map"]

PRODUCTION_BASE_URL = "https://open-api.tiktokglobalshop.com"
API_VERSION = "202309"
CS_PREFIX = f"/customer_service/{API_VERSION}"
PRODUCT_PREFIX = f"/product/{API_VERSION}"  # Get Product (contract s.7)
ORDER_PREFIX = f"/order/{API_VERSION}"  # Get Order Detail (contract s.7)
DOCUMENTED_QPS = 50.0  # "50 QPS ... for each API ... combination of the app and shop"
MESSAGES_PAGE_SIZE = 10  # Get Conversation Messages: page_size "Max 10"
# httpcore scans every pooled connection (a readability syscall each) and every waiting
# request whenever a request starts or ends: CPU per request grows with the pool and the
# queue (in the fan-out's profile at 256 connections, most of its time). So the pool is
# sized to the platform's latency (``platform_max_connections``) and requests beyond it
# wait on a semaphore, not in httpcore.
DEFAULT_MAX_CONNECTIONS = 64

RATE_LIMITED = 36009002
EXPIRED_TOKEN = 105002
INVALID_SIGN = 106001
INVALID_TOKEN = 101000


def parse_token_map(spec: str) -> dict[str, str]:
    """``"shop_id=token,shop_id=token"`` (a Secret's value) -> {shop_id: token}.

    A bare token without ``=`` is the fallback for every shop (``*``).
    """
    tokens: dict[str, str] = {}
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        shop, sep, token = item.partition("=")
        if sep:
            tokens[shop.strip()] = token.strip()
        else:
            tokens["*"] = item
    return tokens


class TikTokShopClient:
    """One app's client; ``access_tokens`` maps shop id -> token (``*`` is the fallback)."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        app_secret: str,
        access_tokens: Mapping[str, str],
        *,
        timeout_s: float = 10.0,
        shop_ciphers: Mapping[str, str] | None = None,
        qps_per_api: float = DOCUMENTED_QPS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._app_key = app_key
        self._secret = app_secret
        self._tokens = dict(access_tokens)
        self._ciphers = dict(shop_ciphers or {})
        self._limiter = ShopApiLimiter(qps_per_api)
        self._http = http or httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )
        self._inflight = asyncio.Semaphore(max_connections)

    async def aclose(self) -> None:
        await self._http.aclose()

    def outgoing_text(self, text: str) -> OutgoingMessage:
        return outgoing_text(text)

    def outgoing_image(self, url: str, width: int = 0, height: int = 0) -> OutgoingMessage:
        return outgoing_image(url, width, height)

    def _token(self, shop_id: str) -> str:
        token = self._tokens.get(shop_id) or self._tokens.get("*")
        if not token:
            raise PlatformError(f"no access token configured for shop {shop_id}")
        return token

    async def _call(
        self,
        method: str,
        path: str,
        shop_id: str,
        api: str,
        *,
        body: bytes = b"",
        params: Mapping[str, str] | None = None,
        extra_headers: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        await self._limiter.acquire(shop_id, api)
        query = {"app_key": self._app_key, "timestamp": str(int(time.time())), **(params or {})}
        if cipher := self._ciphers.get(shop_id):
            query["shop_cipher"] = cipher
        # A multipart body is not signed ("sign your API request", step 3).
        query["sign"] = sign_request(path, query, body, self._secret, multipart=bool(files))
        headers = {"x-tts-access-token": self._token(shop_id), **(extra_headers or {})}
        if not files:
            headers["content-type"] = "application/json"  # httpx sets the multipart boundary
        try:
            async with self._inflight:
                resp = await self._http.request(
                    method, path, params=query, content=body or None, headers=headers, files=files
                )
        except httpx.HTTPError as exc:
            raise transport_error(exc, method) from None
        return _data_or_raise(resp, method)

    async def send(
        self,
        shop_id: str,
        conversation_id: str,
        message: OutgoingMessage,
        *,
        idempotency_key: str = "",
    ) -> str:
        """Send Message; returns the platform's message id.

        The platform has no idempotency key. The key is sent as a tracing header
        (the sandbox uses it to flag doubles); exactly-once comes from the
        fan-out's marker + :meth:`messages_since` check.
        """
        try:
            body = send_message_body(message)
        except PayloadError as exc:
            raise PlatformError(str(exc)) from None
        path = f"{CS_PREFIX}/conversations/{conversation_id}/messages"
        extra = {"x-bridge-idempotency-key": idempotency_key} if idempotency_key else {}
        data = await self._call(
            "POST", path, shop_id, "send_message", body=body, extra_headers=extra
        )
        return str(data.get("message_id", ""))

    async def send_text(
        self, shop_id: str, conversation_id: str, text: str, *, idempotency_key: str = ""
    ) -> str:
        return await self.send(
            shop_id, conversation_id, outgoing_text(text), idempotency_key=idempotency_key
        )

    async def send_image(
        self, shop_id: str, conversation_id: str, url: str, *, idempotency_key: str = ""
    ) -> str:
        return await self.send(
            shop_id, conversation_id, outgoing_image(url), idempotency_key=idempotency_key
        )

    async def upload_image(
        self, shop_id: str, data: bytes, content_type: str, filename: str = ""
    ) -> UploadedImage:
        """Upload Buyer Messages Image: multipart field ``data``; returns url, width, height.

        Not ambiguous: an upload that failed after storing only leaves an unused url
        behind, never a message the buyer sees, so a retry simply uploads again.
        """
        try:
            check_image(data, content_type)
        except PayloadError as exc:
            raise PlatformError(str(exc)) from None
        name = filename or "image." + content_type.rsplit("/", 1)[-1].replace("jpeg", "jpg")
        try:
            got = await self._call(
                "POST",
                f"{CS_PREFIX}/images/upload",
                shop_id,
                "upload_image",
                files={"data": (name, data, content_type)},
            )
        except PlatformError as exc:
            exc.ambiguous = False
            raise
        url = str(got.get("url", "") or "")
        if not url:
            raise PlatformError("image upload answered without a url", retryable=True)
        return UploadedImage(url, _int(got.get("width")), _int(got.get("height")))

    async def mark_read(self, shop_id: str, conversation_id: str) -> None:
        """Read Message: "mark all messages sent by the buyer as read"."""
        await self._call(
            "POST",
            f"{CS_PREFIX}/conversations/{conversation_id}/messages/read",
            shop_id,
            "read_message",
        )

    async def get_conversation(self, shop_id: str, conversation_id: str) -> ConversationInfo:
        """The buyer of a conversation (the webhook carries no nickname).

        Uses Get Conversation, which the OAS lists under version 202601; 202309
        only has the paged Get Conversations list without an id filter.
        """
        data = await self._call(
            "GET",
            f"/customer_service/202601/conversations/{conversation_id}",
            shop_id,
            "get_conversation",
        )
        conv = data.get("conversation", data)
        participants = conv.get("participants") if isinstance(conv, dict) else None
        for p in participants if isinstance(participants, list) else []:
            if isinstance(p, dict) and str(p.get("role", "")).upper() == "BUYER":
                # The name rides on the buyer's events: the webhook's nickname rule applies.
                try:
                    name = text_field(p, "nickname", "participant", max_chars=NAME_MAX_CHARS)
                except PayloadError:
                    name = ""
                return ConversationInfo(conversation_id, str(p.get("im_user_id", ""))[:64], name)
        return ConversationInfo(conversation_id, "", "")

    async def product_details(
        self, shop_id: str, product_ids: list[str]
    ) -> dict[str, ProductDetails]:
        """Get Product for each id, concurrently (the API has no batch read of products by
        id). An id the platform refuses (unknown, not this shop's) is absent; raises the
        first error only when every lookup failed, so one bad id costs only itself."""
        ids = list(dict.fromkeys(product_ids))
        if not ids:
            return {}
        results = await asyncio.gather(
            *(self._product(shop_id, pid) for pid in ids), return_exceptions=True
        )
        found: dict[str, ProductDetails] = {}
        errors: list[BaseException] = []
        for pid, result in zip(ids, results, strict=True):
            if isinstance(result, ProductDetails):
                found[pid] = result
            elif isinstance(result, BaseException):
                errors.append(result)
        if not found and errors:
            retryable = [e for e in errors if isinstance(e, PlatformError) and e.retryable]
            raise (retryable or errors)[0]
        return found

    async def _product(self, shop_id: str, product_id: str) -> ProductDetails | None:
        data = await self._call(
            "GET", f"{PRODUCT_PREFIX}/products/{quote(product_id, safe='')}", shop_id, "get_product"
        )
        try:
            return product_from_platform(data, product_id)
        except PayloadError:
            return None

    async def order_details(self, shop_id: str, order_ids: list[str]) -> dict[str, OrderDetails]:
        """Get Order Detail, up to 50 ids a call (one call for any digest's cards)."""
        ids = list(dict.fromkeys(order_ids))
        found: dict[str, OrderDetails] = {}
        for start in range(0, len(ids), ORDER_IDS_PER_CALL):
            chunk = ids[start : start + ORDER_IDS_PER_CALL]
            data = await self._call(
                "GET",
                f"{ORDER_PREFIX}/orders",
                shop_id,
                "get_order_detail",
                params={"ids": ",".join(chunk)},
            )
            found.update(
                (oid, details)
                for oid, details in order_details_from_platform(data).items()
                if oid in chunk
            )
        return found

    async def messages_since(
        self, shop_id: str, conversation_id: str, since_s: int, *, max_pages: int = 50
    ) -> list[PlatformMessage]:
        """Get Conversation Messages newest first (``sort_order=DESC``, ``sort_field=create_time``)
        until one is older than ``since_s``; returned oldest first. Does not mark read."""
        path = f"{CS_PREFIX}/conversations/{conversation_id}/messages"
        found: list[PlatformMessage] = []
        token = ""
        for _ in range(max_pages):
            params = {
                "page_size": str(MESSAGES_PAGE_SIZE),
                "sort_order": "DESC",
                "sort_field": "create_time",
            }
            if token:
                params["page_token"] = token
            data = await self._call("GET", path, shop_id, "get_messages", params=params)
            older = False
            for raw in data.get("messages", []) or []:
                if not isinstance(raw, dict):
                    continue
                try:
                    msg = message_from_platform(raw, conversation_id=conversation_id)
                except PayloadError:
                    continue
                if msg.create_time_s < since_s:
                    older = True
                    continue
                found.append(msg)
            token = str(data.get("next_page_token", "") or "")
            if older or not token:
                break
        found.sort(key=lambda m: (m.create_time_s, m.index.zfill(24), m.message_id))
        return found


def _data_or_raise(resp: httpx.Response, method: str) -> dict[str, Any]:
    try:
        envelope = orjson.loads(resp.content) if resp.content else {}
    except orjson.JSONDecodeError:
        envelope = {}
    if not isinstance(envelope, dict):
        envelope = {}
    code = int(envelope.get("code", 0) or 0)
    message = str(envelope.get("message", ""))
    if resp.status_code == 429 or code == RATE_LIMITED:
        raise PlatformError(
            f"rate limited: {message}",
            status=resp.status_code,
            code=code,
            retryable=True,
            retry_after_s=retry_after_s(resp),
        )
    if resp.status_code >= 500:
        # 5xx on a POST: the platform may have stored the message before failing.
        raise PlatformError(
            f"platform error {resp.status_code}: {message}",
            status=resp.status_code,
            code=code,
            retryable=True,
            retry_after_s=retry_after_s(resp),
            ambiguous=method == "POST",
        )
    if code == EXPIRED_TOKEN:
        raise PlatformError(
            f"access token expired (code {code}): refresh the shop's token",
            status=resp.status_code,
            code=code,
        )
    if resp.status_code >= 400 or code != 0:
        raise PlatformError(
            f"platform refused ({resp.status_code}, code {code}): {message}",
            status=resp.status_code,
            code=code,
        )
    data = envelope.get("data") or {}
    return data if isinstance(data, dict) else {}


def _int(value: Any) -> int:
    """The platform writes image sizes as numbers or as strings of digits."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
