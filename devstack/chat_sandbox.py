"""A sandbox of the TikTok Shop customer-service Open API (202309), for dev and tests.

Same paths, payload shapes, request signing and error codes as the platform
(docs/tiktok-shop-contract.md); it pushes type-14 webhooks, signed like the
platform, with redeliveries on failure; it records what each buyer sees and
flags any reply part posted twice (by the bridge's idempotency key), with the time each
part became visible (``received_at``, for the load bench). Failure
injection (5xx, 429 with Retry-After, expired token) is switchable at
``/sandbox/faults``. Routes under ``/sandbox/`` are the sandbox's own controls.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, Field

from shared.chat_platform.base import CHAT_MESSAGE_LIMIT
from shared.chat_platform.rate_limit import ShopApiLimiter
from shared.chat_platform.tiktok_signing import sign_request, sign_webhook

PREFIX = "/customer_service/202309"
IMAGE_MAX_BYTES = 10 * 1024 * 1024  # Upload Buyer Messages Image: "<= 10MB"
TIMESTAMP_SKEW_S = 300  # the platform accepts [now - 5 min, now + 30 s]


@dataclass
class Faults:
    rate_5xx: float = 0.0  # 500/502/503 before anything is stored
    rate_5xx_after_commit: float = 0.0  # Send Message stores the message, then answers 5xx
    rate_429: float = 0.0
    retry_after_s: float = 0.2
    expired_token: bool = False
    webhook_fail_first: int = 0  # answer the first N webhook deliveries as failed (redelivery test)
    webhook_redeliver_rate: float = 0.0  # push a successful delivery once more (at-least-once)
    qps_per_api: float = 50.0  # the documented default per API per app+shop; 0 turns it off
    lookup_delay_s: float = 0.0  # Get Product / Get Order Detail answer this much later


@dataclass
class SandboxState:
    app_key: str
    app_secret: str
    access_token: str
    webhook_url: str
    conversations: dict[str, dict[str, Any]] = field(default_factory=dict)
    buyer_view: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    idempotency: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    webhook_log: list[dict[str, Any]] = field(default_factory=list)
    faults: Faults = field(default_factory=Faults)
    ids: itertools.count[int] = field(
        default_factory=lambda: itertools.count(7_300_000_000_000_000_000)
    )
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    limiter: ShopApiLimiter = field(default_factory=lambda: ShopApiLimiter(50.0, burst=50.0))
    calls: dict[str, int] = field(default_factory=dict)  # answers by outcome, for tests/benches
    images: dict[str, dict[str, Any]] = field(default_factory=dict)  # uploaded, by url
    # The seeded catalogue and orders (POST /sandbox/products, /sandbox/orders), by id.
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)


def envelope(data: Any = None, *, code: int = 0, message: str = "Success") -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "request_id": f"sandbox-{time.time_ns()}",
        "data": data if data is not None else {},
    }


def error(status: int, code: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        envelope(code=code, message=message), status_code=status, headers=headers or None
    )


class BuyerMessageIn(BaseModel):
    shop_id: str = Field(min_length=1, max_length=64)
    conversation_id: str = Field(min_length=1, max_length=64)
    buyer_name: str = Field("Buyer", max_length=200)
    buyer_id: str = "buyer-1"
    type: str = "TEXT"
    text: str = ""
    content: dict[str, Any] | None = None  # raw platform content for non-text types


class SellerEventIn(BaseModel):
    shop_id: str
    conversation_id: str
    text: str = ""


# Webhook pushes on the wire at once: ingest answers each only after Kafka's ack, so
# pushes per second are about this over that latency.
PUSHES_IN_FLIGHT = 200


class FaultsIn(BaseModel):
    rate_5xx: float = Field(0.0, ge=0, le=1)
    rate_5xx_after_commit: float = Field(0.0, ge=0, le=1)
    rate_429: float = Field(0.0, ge=0, le=1)
    retry_after_s: float = Field(0.2, ge=0, le=60)
    expired_token: bool = False
    webhook_fail_first: int = Field(0, ge=0)
    webhook_redeliver_rate: float = Field(0.0, ge=0, le=1)
    qps_per_api: float = Field(50.0, ge=0)
    lookup_delay_s: float = Field(0.0, ge=0, le=30)


class ProductIn(BaseModel):
    """A product in the sandbox catalogue, as Get Product will answer it."""

    shop_id: str = Field(min_length=1, max_length=64)
    product_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    title: str = Field(min_length=1, max_length=500)
    price: str = Field("9.90", pattern=r"^[0-9]{1,9}(\.[0-9]{1,2})?$")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    with_image: bool = True  # a picture served by the sandbox (an allowed image host locally)


class OrderIn(BaseModel):
    """An order, as Get Order Detail will answer it (one line item per unit)."""

    shop_id: str = Field(min_length=1, max_length=64)
    order_id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    status: str = Field("AWAITING_SHIPMENT", pattern=r"^[A-Z_]{1,40}$")
    item_names: list[str] = Field(default_factory=list, max_length=50)


def create_sandbox(
    app_key: str,
    app_secret: str,
    access_token: str,
    webhook_url: str,
    *,
    redelivery_delays_s: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0),
) -> FastAPI:
    state = SandboxState(app_key, app_secret, access_token, webhook_url)
    app = FastAPI(title="TikTok Shop customer-service sandbox")
    app.state.sandbox = state
    http = httpx.AsyncClient(
        timeout=5.0,
        limits=httpx.Limits(
            max_connections=PUSHES_IN_FLIGHT, max_keepalive_connections=PUSHES_IN_FLIGHT
        ),
    )
    pushes: set[asyncio.Task[None]] = set()
    # Pushes on the wire at once, one connection each: httpcore hands a freed connection
    # to its waiting requests in time linear in their number, so thousands queued inside
    # it (a burst of buyer messages) cost quadratic CPU and starve the event loop the
    # sandbox shares. Queued here, waiting is free.
    on_the_wire = asyncio.Semaphore(PUSHES_IN_FLIGHT)

    def _spawn(coro: Any) -> None:
        # Webhooks are pushed after the call returns, as the platform does; keep a
        # reference so the task is not garbage-collected mid-flight.
        task = asyncio.create_task(coro)
        pushes.add(task)
        task.add_done_callback(pushes.discard)

    def count(outcome: str) -> None:
        state.calls[outcome] = state.calls.get(outcome, 0) + 1

    async def check_request(
        request: Request, body: bytes, api: str = "", shop_id: str = ""
    ) -> JSONResponse | None:
        err = _check_request(request, body, api, shop_id)
        count(str(err.status_code) if err is not None else "ok")
        return err

    def _check_request(
        request: Request, body: bytes, api: str, shop_id: str
    ) -> JSONResponse | None:
        q = dict(request.query_params)
        if q.get("app_key") != state.app_key:
            return error(401, 36009004, "Invalid app_key.")
        ts = q.get("timestamp", "")
        if not ts.isdigit() or not (time.time() - TIMESTAMP_SKEW_S <= int(ts) <= time.time() + 30):
            return error(401, 36009004, "Invalid timestamp.")
        if "sign" not in q:
            return error(
                401,
                36009004,
                "Missing credentials: the request does not include a required signature.",
            )
        expected = sign_request(request.url.path, q, body, state.app_secret)
        if q["sign"] != expected:
            return error(401, 106001, "Invalid credentials. The sign query parameter is invalid.")
        token = request.headers.get("x-tts-access-token", "")
        if state.faults.expired_token:
            return error(
                401, 105002, "Expired credentials. The x-tts-access-token header has expired."
            )
        if token != state.access_token:
            return error(401, 36009004, "Invalid x-tts-access-token.")
        if api and state.faults.qps_per_api > 0:
            wait = state.limiter.delay(shop_id or "?", api)
            if wait > 0:
                return error(
                    429, 36009002, "Too many requests.", **{"Retry-After": f"{max(wait, 0.02):.2f}"}
                )
        if state.rng.random() < state.faults.rate_429:
            return error(
                429,
                36009002,
                "Too many requests.",
                **{"Retry-After": f"{state.faults.retry_after_s:g}"},
            )
        if state.rng.random() < state.faults.rate_5xx:
            return server_error()
        return None

    def server_error() -> JSONResponse:
        status = state.rng.choice((500, 502, 503))
        return error(
            status,
            36009007,
            "Internal error." if status == 500 else "Service temporarily unavailable.",
        )

    def shop_of(conv_id: str) -> str:
        conv = state.conversations.get(conv_id)
        return str(conv["shop_id"]) if conv else ""

    def conversation(conv_id: str) -> dict[str, Any] | None:
        return state.conversations.get(conv_id)

    # --- platform API -------------------------------------------------------

    @app.get(f"{PREFIX}/conversations")
    async def get_conversations(request: Request) -> Response:
        if (err := await check_request(request, b"")) is not None:
            return err
        convs = [_public_conversation(c) for c in state.conversations.values()]
        return JSONResponse(envelope({"conversations": convs[:20], "next_page_token": ""}))

    @app.get("/customer_service/202601/conversations/{conv_id}")
    async def get_conversation(conv_id: str, request: Request) -> Response:
        if (
            err := await check_request(request, b"", "get_conversation", shop_of(conv_id))
        ) is not None:
            return err
        conv = conversation(conv_id)
        if conv is None:
            return error(404, 12052001, "Conversation not found.")
        return JSONResponse(envelope({"conversation": _public_conversation(conv)}))

    @app.get(f"{PREFIX}/conversations/{{conv_id}}/messages")
    async def get_messages(conv_id: str, request: Request) -> Response:
        if (err := await check_request(request, b"", "get_messages", shop_of(conv_id))) is not None:
            return err
        conv = conversation(conv_id)
        if conv is None:
            return error(404, 12052001, "Conversation not found.")
        q = request.query_params
        size = q.get("page_size", "")
        if not size.isdigit() or not 1 <= int(size) <= 10:
            return error(400, 36009003, "page_size is required, 1..10.")
        desc = q.get("sort_order", "DESC").upper() != "ASC"
        field_name = "index" if q.get("sort_field") == "index" else "create_time"
        msgs = sorted(
            conv["messages"], key=lambda m: (int(m[field_name]), int(m["index"])), reverse=desc
        )
        start = int(q["page_token"]) if q.get("page_token", "").isdigit() else 0
        page = msgs[start : start + int(size)]
        more = start + int(size) < len(msgs)
        return JSONResponse(
            envelope(
                {
                    "messages": page,
                    "next_page_token": str(start + int(size)) if more else "",
                    "unsupported_msg_tips": "",
                }
            )
        )

    @app.post(f"{PREFIX}/conversations/{{conv_id}}/messages")
    async def send_message(conv_id: str, request: Request) -> Response:
        body = await request.body()
        err = await check_request(request, body, "send_message", shop_of(conv_id))
        if err is not None:
            return err
        conv = conversation(conv_id)
        if conv is None:
            return error(404, 12052001, "Conversation not found.")
        try:
            payload = orjson.loads(body)
            inner = orjson.loads(payload["content"])
            msg_type = str(payload["type"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return error(
                400, 36009023, "Invalid request body: type and JSON-string content required."
            )
        if msg_type == "TEXT" and len(str(inner.get("content", ""))) > CHAT_MESSAGE_LIMIT:
            return error(400, 12052004, f"Text message exceeds {CHAT_MESSAGE_LIMIT} characters.")
        key = request.headers.get("x-bridge-idempotency-key", "")
        if key and key in state.idempotency:
            state.duplicates.append(key)  # the bridge posted the same part twice
        message_id = str(next(state.ids))
        if key:
            state.idempotency[key] = message_id
        msg = {
            "id": message_id,
            "type": msg_type,
            "content": payload["content"],
            "create_time": int(time.time()),
            "is_visible": True,
            "index": message_id,
            "sender": {"im_user_id": "shop", "nickname": "Shop", "role": "SHOP"},
        }
        conv["messages"].append(msg)
        seen: dict[str, Any] = {
            "id": message_id,
            "type": msg_type,
            "content": inner,
            "idempotency_key": key,
            "received_at": time.time(),
        }
        if msg_type == "IMAGE" and (image := state.images.get(str(inner.get("url", "")))):
            seen["image"] = {k: image[k] for k in ("content_type", "bytes", "sha256")}
        state.buyer_view.setdefault(conv_id, []).append(seen)
        if state.rng.random() < state.faults.rate_5xx_after_commit:
            count("5xx_after_commit")
            return server_error()  # stored, but the client cannot know it
        return JSONResponse(envelope({"message_id": message_id}))

    @app.post(f"{PREFIX}/images/upload")
    async def upload_image(request: Request) -> Response:
        """Upload Buyer Messages Image: multipart field ``data``; the body is not signed."""
        shop = request.headers.get("x-tts-access-token", "?")  # no shop in the path
        if (err := await check_request(request, b"", "upload_image", shop)) is not None:
            return err
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            return error(400, 36009003, "Content-Type must be multipart/form-data.")
        form = await request.form(max_part_size=IMAGE_MAX_BYTES + 1)
        part = form.get("data")
        if part is None or isinstance(part, str):
            return error(400, 36009003, "Form field data (the image file) is required.")
        data = await part.read()
        kind = _image_kind(data)
        if kind is None:
            return error(400, 12052230, "Unsupported image format: jpg, gif, webp or png only.")
        if len(data) > IMAGE_MAX_BYTES:
            return error(400, 12052231, "Image exceeds 10MB.")
        width, height = _image_size(kind, data)
        digest = hashlib.sha256(data).hexdigest()
        url = f"{request.base_url}sandbox/images/{next(state.ids)}.{kind.split('/')[1]}"
        state.images[url] = {
            "content_type": kind,
            "bytes": len(data),
            "sha256": digest,
            "data": data,
        }
        return JSONResponse(envelope({"url": url, "width": width, "height": height}))

    @app.get("/sandbox/images/{name}")
    async def image_bytes(name: str, request: Request) -> Response:
        image = state.images.get(f"{request.base_url}sandbox/images/{name}")
        if image is None:
            return JSONResponse({"error": "unknown image"}, status_code=404)
        return Response(image["data"], media_type=image["content_type"])

    @app.post(f"{PREFIX}/conversations/{{conv_id}}/messages/read")
    async def read_messages(conv_id: str, request: Request) -> Response:
        body = await request.body()
        err = await check_request(request, body, "read_message", shop_of(conv_id))
        if err is not None:
            return err
        conv = conversation(conv_id)
        if conv is None:
            return error(404, 12052001, "Conversation not found.")
        conv["unread_count"] = 0
        conv["read_marks"] = conv.get("read_marks", 0) + 1
        return JSONResponse(envelope({}))

    async def lookup_delay() -> None:
        if state.faults.lookup_delay_s > 0:
            await asyncio.sleep(state.faults.lookup_delay_s)

    @app.get("/product/202309/products/{product_id}")
    async def get_product(product_id: str, request: Request) -> Response:
        """Get Product: the seeded product (the sandbox does not check that it belongs to
        the calling shop; its rate limit counts against the product's shop)."""
        product = state.products.get(product_id)
        shop = product["shop_id"] if product else "?"
        if (err := await check_request(request, b"", "get_product", shop)) is not None:
            return err
        await lookup_delay()
        if product is None:
            return error(404, 12019001, "Product not found.")
        return JSONResponse(envelope(product["data"]))

    @app.get("/order/202309/orders")
    async def get_order_detail(request: Request) -> Response:
        """Get Order Detail: ``ids`` (comma-separated, at most 50); unknown ids are left out."""
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        first = state.orders.get(ids[0]) if ids else None
        shop = first["shop_id"] if first else "?"
        if (err := await check_request(request, b"", "get_order_detail", shop)) is not None:
            return err
        if not 1 <= len(ids) <= 50:
            return error(400, 36009003, "ids is required: 1 to 50 order ids.")
        await lookup_delay()
        orders = [state.orders[i]["data"] for i in ids if i in state.orders]
        return JSONResponse(envelope({"orders": orders}))

    # --- sandbox controls ----------------------------------------------------

    @app.post("/sandbox/products")
    async def add_product(body: ProductIn, request: Request) -> Response:
        """Seed the catalogue (tests, the playground): Get Product answers it from now on."""
        images = []
        if body.with_image:
            url = f"{request.base_url}sandbox/images/product-{body.product_id}.png"
            data = _product_png(body.product_id)
            state.images[url] = {
                "content_type": "image/png",
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "data": data,
            }
            images = [{"height": 80, "width": 80, "urls": [url], "thumb_urls": [url]}]
        state.products[body.product_id] = {
            "shop_id": body.shop_id,
            "data": {
                "id": body.product_id,
                "title": body.title,
                "status": "ACTIVATE",
                "main_images": images,
                "skus": [
                    {
                        "id": f"{body.product_id}1",
                        "price": {
                            "currency": body.currency,
                            "sale_price": body.price,
                            "tax_exclusive_price": body.price,
                        },
                    }
                ],
            },
        }
        return JSONResponse({"product_id": body.product_id})

    @app.post("/sandbox/orders")
    async def add_order(body: OrderIn) -> Response:
        """Seed an order: Get Order Detail answers it from now on."""
        state.orders[body.order_id] = {
            "shop_id": body.shop_id,
            "data": {
                "id": body.order_id,
                "status": body.status,
                "line_items": [
                    {"id": f"{body.order_id}-{i}", "product_name": name}
                    for i, name in enumerate(body.item_names)
                ],
            },
        }
        return JSONResponse({"order_id": body.order_id})

    async def push_webhook(payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload)
        headers = {
            "Authorization": sign_webhook(state.app_key, body, state.app_secret),
            "Content-Type": "application/json",
        }
        for delay in (0.0, *redelivery_delays_s):
            await asyncio.sleep(delay)
            if state.faults.webhook_fail_first > 0:
                state.faults.webhook_fail_first -= 1
                state.webhook_log.append(
                    {"id": payload["tts_notification_id"], "status": "dropped"}
                )
                continue
            try:
                async with on_the_wire:
                    resp = await http.post(state.webhook_url, content=body, headers=headers)
                status = resp.status_code
            except httpx.HTTPError as exc:
                status = 0
                state.webhook_log.append(
                    {
                        "id": payload["tts_notification_id"],
                        "status": f"error {exc.__class__.__name__}",
                    }
                )
            else:
                state.webhook_log.append({"id": payload["tts_notification_id"], "status": status})
            if 200 <= status < 300:
                if state.rng.random() < state.faults.webhook_redeliver_rate:
                    continue  # at-least-once: the same notification once more
                return

    def _new_message(
        conv: dict[str, Any],
        role: str,
        sender: dict[str, str],
        msg_type: str,
        content: dict[str, Any],
    ) -> dict[str, Any]:
        msg = platform_message(str(next(state.ids)), role, sender, msg_type, content)
        conv["messages"].append(msg)
        return msg

    def _webhook_for(shop_id: str, conv_id: str, msg: dict[str, Any]) -> dict[str, Any]:
        return message_webhook(shop_id, conv_id, msg, str(next(state.ids)))

    @app.post("/sandbox/buyer_messages")
    async def buyer_says(body: BuyerMessageIn) -> Response:
        """A buyer writes in the chat: stored, then pushed as a type-14 webhook."""
        conv = state.conversations.setdefault(
            body.conversation_id,
            {
                "id": body.conversation_id,
                "shop_id": body.shop_id,
                "messages": [],
                "unread_count": 0,
                "create_time": int(time.time()),
                "buyer": {
                    "im_user_id": body.buyer_id,
                    "nickname": body.buyer_name,
                    "user_id": body.buyer_id,
                },
            },
        )
        conv["buyer"]["nickname"] = body.buyer_name
        content = body.content if body.content is not None else {"content": body.text}
        msg = _new_message(
            conv,
            "BUYER",
            {"im_user_id": body.buyer_id, "nickname": body.buyer_name},
            body.type.upper(),
            content,
        )
        conv["unread_count"] += 1
        payload = _webhook_for(body.shop_id, body.conversation_id, msg)
        _spawn(push_webhook(payload))
        return JSONResponse(
            {"message_id": msg["id"], "notification_id": payload["tts_notification_id"]}
        )

    @app.post("/sandbox/seller_messages")
    async def seller_says(body: SellerEventIn) -> Response:
        """The seller answers in the chat tool: pushed as a type-14 webhook with role SHOP."""
        conv = conversation(body.conversation_id)
        if conv is None:
            return JSONResponse({"error": "unknown conversation"}, status_code=404)
        msg = _new_message(
            conv, "SHOP", {"im_user_id": "shop", "nickname": "Shop"}, "TEXT", {"content": body.text}
        )
        _spawn(push_webhook(_webhook_for(body.shop_id, body.conversation_id, msg)))
        return JSONResponse({"message_id": msg["id"]})

    @app.get("/sandbox/conversations/{conv_id}/buyer_view")
    async def buyer_view(conv_id: str) -> Response:
        return JSONResponse(
            {"conversation_id": conv_id, "received": state.buyer_view.get(conv_id, [])}
        )

    @app.get("/sandbox/stats")
    async def stats() -> Response:
        return JSONResponse(
            {
                "duplicates": state.duplicates,
                "webhooks": state.webhook_log[-200:],
                "parts_received": sum(len(v) for v in state.buyer_view.values()),
                "calls": state.calls,
                "images_uploaded": len(state.images),
                "read_marks": {
                    c: v.get("read_marks", 0)
                    for c, v in state.conversations.items()
                    if v.get("read_marks")
                },
            }
        )

    @app.post("/sandbox/faults")
    async def set_faults(body: FaultsIn) -> Response:
        state.faults = Faults(**body.model_dump())
        state.limiter = ShopApiLimiter(body.qps_per_api, burst=max(1.0, body.qps_per_api))
        return JSONResponse(body.model_dump())

    @app.post("/sandbox/conversations")
    async def open_conversation(body: SellerEventIn) -> Response:
        """Create a conversation without a buyer message (for replies-only tests and benches)."""
        conv = state.conversations.setdefault(
            body.conversation_id,
            {
                "id": body.conversation_id,
                "shop_id": body.shop_id,
                "messages": [],
                "unread_count": 0,
                "create_time": int(time.time()),
                "buyer": {"im_user_id": "buyer-1", "nickname": "Buyer", "user_id": "buyer-1"},
            },
        )
        return JSONResponse({"conversation_id": conv["id"]})

    @app.get("/chat/{shop_id}/{conv_id}", response_class=HTMLResponse)
    async def chat_page(shop_id: str, conv_id: str) -> str:
        """The "Reply in chat" deep link lands here: the conversation as the seller sees it."""
        conv = conversation(conv_id)
        rows = []
        for m in (conv or {}).get("messages", []):
            text = orjson.loads(m["content"]).get("content", m["type"])
            rows.append(f"<p><b>{_esc(m['sender']['role'])}</b>: {_esc(str(text))}</p>")
        return (
            f"<!doctype html><title>Chat {_esc(conv_id)}</title>"
            f"<h1>Conversation {_esc(conv_id)} (shop {_esc(shop_id)})</h1>{''.join(rows)}"
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def platform_message(
    message_id: str, role: str, sender: dict[str, str], msg_type: str, content: dict[str, Any]
) -> dict[str, Any]:
    """A chat message as the platform stores and lists it (content is a JSON string)."""
    return {
        "id": message_id,
        "type": msg_type,
        "content": orjson.dumps(content).decode(),
        "create_time": int(time.time()),
        "is_visible": True,
        "index": message_id,
        "sender": {**sender, "role": role},
    }


def message_webhook(
    shop_id: str, conv_id: str, msg: dict[str, Any], notification_id: str
) -> dict[str, Any]:
    """The type-14 (new message) webhook the platform pushes for ``msg``."""
    data = {k: msg[k] for k in ("content", "create_time", "is_visible", "index", "type")}
    data.update(
        {
            "conversation_id": conv_id,
            "message_id": msg["id"],
            "sender": {"im_user_id": msg["sender"]["im_user_id"], "role": msg["sender"]["role"]},
        }
    )
    return {
        "type": 14,
        "tts_notification_id": notification_id,
        "shop_id": shop_id,
        "timestamp": int(time.time()),
        "data": data,
    }


def _public_conversation(conv: dict[str, Any]) -> dict[str, Any]:
    latest = conv["messages"][-1] if conv["messages"] else None
    return {
        "id": conv["id"],
        "create_time": conv["create_time"],
        "can_send_message": True,
        "unread_count": conv["unread_count"],
        "participant_count": 2,
        "participants": [
            {**conv["buyer"], "avatar": "", "role": "BUYER"},
            {
                "im_user_id": "shop",
                "user_id": conv["shop_id"],
                "nickname": "Shop",
                "avatar": "",
                "role": "SHOP",
            },
        ],
        "latest_message": latest,
    }


def _image_kind(data: bytes) -> str | None:
    """The picture's type from its magic bytes (what the platform checks), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _image_size(kind: str, data: bytes) -> tuple[int, int]:
    """Width and height for PNG and GIF headers; 0, 0 where the sandbox does not look."""
    if kind == "image/png" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if kind == "image/gif" and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    return 0, 0


def _product_png(seed: str) -> bytes:
    """An 80x80 one-colour PNG, its colour from ``seed``: a product picture to look at."""

    r, g, b = hashlib.sha256(seed.encode()).digest()[:3]
    row = b"\x00" + bytes((r, g, b)) * 80
    raw = zlib.compress(row * 80)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 80, 80, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _esc(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
