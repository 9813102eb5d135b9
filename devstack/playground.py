"""The local playground: one page showing the loop as the buyer and the seller see it.

Three panes on one conversation (``shop_id:conversation_id``):

* the buyer's chat: send text, an emoji, a picture, a product card, an order card or a video
  through the sandbox platform's buyer-message API (the sandbox then pushes the signed
  webhook, as the platform does), and watch the seller's reply arrive in its parts, in order
  (the sandbox's buyer view);
* the seller's mailbox: the digests the mail sink received for this conversation, shown as a
  mail client shows them (headers above the rendered HTML, in a sandboxed frame), with a
  reply box that answers as Gmail, Outlook, Zendesk or Salesforce format a reply
  (:mod:`devstack.reply_styles`), as one of the shop's activated users, and an
  out-of-office button whose automatic answer must never reach the buyer;
* the timeline: every record about the conversation on the bridge's topics
  (:mod:`devstack.timeline`), read from Kafka by one tail from the topics' beginning.

The browser polls one JSON endpoint; everything (script, styles, sample pictures) is served
from here, nothing from a CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import struct
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import aiosmtplib
import httpx
import uvicorn
from aiokafka import ConsumerRecord
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field

from devstack.demo_shop import DEMO_CONVERSATION_ID, DEMO_SHOP_ID
from devstack.mail_sink import (
    ReplyAccess,
    SinkState,
    conversation_of,
    inbound_verdict,
    verdict_text,
)
from devstack.reply_styles import ReplyStyle, build_reply, out_of_office_reply
from devstack.stack import Ports, reply_access, serve_in_loop
from devstack.timeline import TIMELINE_TOPICS, TimelineEntry, describe
from devstack.topic_reader import TopicTail
from shared.events import conversation_key

HERE = Path(__file__).parent
# What the timeline keeps: enough for a demo conversation, bounded for a long run.
TIMELINE_PER_CONVERSATION = 300
TIMELINE_CONVERSATIONS = 5_000

# Shop and conversation ids as the platform's webhooks carry them (they go into sandbox paths).
ShopId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ConversationId = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
OptionalId = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{0,64}$")]

BuyerKind = Literal["text", "emoji", "picture", "product", "order", "video"]


@dataclass(frozen=True)
class PlaygroundLinks:
    """Where the other local pages are (printed by the run command, linked from the page)."""

    sink: str
    sandbox: str
    ingest: str
    prometheus: str = ""  # "" when Prometheus is not running
    console: str = ""  # the seller console's sign-in page, when ingest serves one


class Timeline:
    """Timeline entries per conversation, fed by a :class:`TopicTail` (bounded: the oldest
    conversations and entries go first)."""

    def __init__(self) -> None:
        self._by_conversation: OrderedDict[str, deque[TimelineEntry]] = OrderedDict()

    def add(self, record: ConsumerRecord) -> None:
        described = describe(record.topic, record.key, record.value, record.headers or ())
        if described is None:
            return
        key, summary, mail_id = described
        entries = self._by_conversation.get(key)
        if entries is None:
            entries = self._by_conversation[key] = deque(maxlen=TIMELINE_PER_CONVERSATION)
            if len(self._by_conversation) > TIMELINE_CONVERSATIONS:
                self._by_conversation.popitem(last=False)
        entries.append(
            TimelineEntry(
                record.topic,
                record.partition,
                record.offset,
                record.timestamp,
                key,
                summary,
                mail_id,
            )
        )

    def of(self, key: str) -> list[TimelineEntry]:
        return sorted(self._by_conversation.get(key, ()), key=lambda e: e.at_ms)


@dataclass
class MailIndex:
    """The sink's mail numbers by conversation, read from each digest's reply address as
    mail arrives (one token check per mail, however often the page polls)."""

    sink: SinkState
    access: ReplyAccess
    _scanned: int = 0
    _by_conversation: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def numbers(self, shop_id: str, conversation_id: str) -> list[int]:
        mails = self.sink.mails
        for n in range(self._scanned, len(mails)):
            found = conversation_of(mails[n].summary.reply_to, self.access.token_keys)
            if found is not None:
                self._by_conversation.setdefault(found, []).append(n)
        self._scanned = len(mails)
        return self._by_conversation.get((shop_id, conversation_id), [])


@dataclass
class SentByBuyer:
    """What the playground's buyer sent, per conversation (the buyer view holds only what
    the buyer received)."""

    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, conversation_id: str, kind: str, label: str) -> None:
        self.messages.setdefault(conversation_id, []).append(
            {"from": "buyer", "kind": kind, "text": label, "at": time.time()}
        )


class BuyerMessageIn(BaseModel):
    kind: BuyerKind = "text"
    text: str = Field("", max_length=2000)
    buyer_name: str = Field("Ana", min_length=1, max_length=100)


class SellerReplyIn(BaseModel):
    mail: int = Field(ge=0, description="the sink's number of the digest answered")
    text: str = Field(min_length=1, max_length=20_000)
    style: ReplyStyle = ReplyStyle.GMAIL
    from_address: str = Field(min_length=3, max_length=254)


class OutOfOfficeIn(BaseModel):
    mail: int = Field(ge=0)
    from_address: str = Field(min_length=3, max_length=254)


def sample_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A small striped picture, built without an imaging library (the sample buyer photo and
    the product and video thumbnails)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    light = bytes(min(255, c + 60) for c in rgb)
    rows = b"".join(
        b"\x00" + (bytes(rgb) if (y // 12) % 2 else light) * width for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


SAMPLES: dict[str, bytes] = {
    "photo.png": sample_png(320, 240, (70, 120, 180)),
    "socks.png": sample_png(160, 160, (200, 90, 60)),
    "poster.png": sample_png(320, 180, (40, 40, 40)),
}


def buyer_content(kind: BuyerKind, text: str, base_url: str) -> tuple[str, dict[str, Any], str]:
    """(platform message type, its content, what the buyer pane shows) for one kind, shaped
    as the platform's webhook carries it."""
    samples = f"{base_url}samples"
    if kind == "emoji":
        emoji = text or "😊👍"
        return "EMOTICONS", {"content": emoji}, emoji
    if kind == "picture":
        url = f"{samples}/photo.png"
        return "IMAGE", {"url": url, "width": 320, "height": 240}, "[picture]"
    if kind == "product":
        return (
            "PRODUCT_CARD",
            {
                "product_id": "1729587342210012345",
                "product_name": "Merino wool socks (3 pairs)",
                "price": "$12.99",
                "image_url": f"{samples}/socks.png",
            },
            "[product card] Merino wool socks (3 pairs)",
        )
    if kind == "order":
        return (
            "ORDER_CARD",
            {"order_id": "576460752303423456", "order_status": "Shipped"},
            "[order card] 576460752303423456",
        )
    if kind == "video":
        return (
            "VIDEO",
            {"url": f"{samples}/unboxing.mp4", "cover": f"{samples}/poster.png"},
            "[video]",
        )
    return "TEXT", {"content": text}, text


def create_playground(
    *,
    sink: SinkState,
    access: ReplyAccess,
    inbound_host: str,
    inbound_port: int,
    links: PlaygroundLinks,
    default_shop: str,
    default_conversation: str,
) -> FastAPI:
    """The playground app; with ``access.kafka_bootstrap`` its lifespan tails the topics."""
    timeline = Timeline()
    mails = MailIndex(sink, access)
    sent = SentByBuyer()
    templates = Jinja2Templates(directory=HERE / "templates")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tail = None
        if access.kafka_bootstrap:
            tail = asyncio.create_task(
                TopicTail(access.kafka_bootstrap, TIMELINE_TOPICS, timeline.add).run()
            )
        async with httpx.AsyncClient(base_url=links.sandbox, timeout=10.0) as http:
            app.state.http = http
            try:
                yield
            finally:
                if tail is not None:
                    tail.cancel()
                    with contextlib.suppress(BaseException):
                        await tail

    app = FastAPI(title="bridge playground", lifespan=lifespan)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.get("/", response_class=HTMLResponse)
    async def page(
        request: Request, shop: OptionalId = "", conversation: OptionalId = ""
    ) -> Response:
        return templates.TemplateResponse(
            request,
            "playground.html",
            {
                "shop": shop or default_shop,
                "conversation": conversation or default_conversation,
                "links": links,
                "styles": list(ReplyStyle),
            },
        )

    @app.get("/samples/{name}")
    async def sample(name: str) -> Response:
        if name in SAMPLES:
            return Response(SAMPLES[name], media_type="image/png")
        if name.endswith(".mp4"):  # the video's "view" button lands here
            return HTMLResponse("<p>(the buyer's video would play here)</p>")
        raise HTTPException(404, f"no sample named {name}")

    @app.get("/api/conversations/{shop}/{conversation}")
    async def state(request: Request, shop: ShopId, conversation: ConversationId) -> JSONResponse:
        """Everything the three panes show, in one poll."""
        resp = await request.app.state.http.get(f"/sandbox/conversations/{conversation}/buyer_view")
        received = resp.json().get("received", []) if resp.status_code == 200 else []
        chat = list(sent.messages.get(conversation, []))
        for part in received:
            content = part.get("content") or {}
            chat.append(
                {
                    "from": "seller",
                    "kind": str(part.get("type", "TEXT")).lower(),
                    "text": content.get("content") or content.get("url") or "",
                    "at": part.get("received_at", 0),
                    "part": part.get("idempotency_key", ""),
                }
            )
        chat.sort(key=lambda m: m["at"])
        users = await access.users.activated(shop) if access.users else ()
        return JSONResponse(
            {
                "chat": chat,
                "mails": [_mail_doc(sink, n) for n in mails.numbers(shop, conversation)],
                "timeline": [asdict(e) for e in timeline.of(conversation_key(shop, conversation))],
                "users": [{"email": u.email, "role": u.role} for u in users],
                "timeline_on": bool(access.kafka_bootstrap),
            }
        )

    @app.post("/api/conversations/{shop}/{conversation}/buyer")
    async def buyer_says(
        request: Request, shop: ShopId, conversation: ConversationId, body: BuyerMessageIn
    ) -> JSONResponse:
        if body.kind in ("text",) and not body.text.strip():
            raise HTTPException(422, "text: write something for the buyer to send")
        msg_type, content, label = buyer_content(body.kind, body.text, str(request.base_url))
        resp = await request.app.state.http.post(
            "/sandbox/buyer_messages",
            json={
                "shop_id": shop,
                "conversation_id": conversation,
                "buyer_name": body.buyer_name,
                "type": msg_type,
                "text": body.text,
                "content": content,
            },
        )
        if resp.status_code != 200:
            return JSONResponse(
                {"error": f"the sandbox refused the message: {resp.text}"}, status_code=502
            )
        sent.add(conversation, body.kind, label)
        return JSONResponse(resp.json())

    def digest(shop: str, conversation: str, n: int) -> Any:
        if n not in mails.numbers(shop, conversation):
            raise HTTPException(404, f"mail: no digest {n} in this conversation")
        return sink.mails[n].message

    async def send(message: Any) -> dict[str, Any]:
        async def smtp() -> str:
            response = await aiosmtplib.send(
                message, hostname=inbound_host, port=inbound_port, timeout=30
            )
            return str(response[1])

        try:
            if access.kafka_bootstrap is None:
                return {"smtp": await smtp(), "summary": "Queued by the reply front."}
            said, result = await inbound_verdict(access.kafka_bootstrap, smtp)
        except aiosmtplib.SMTPException as exc:
            return {"smtp": str(exc), "summary": f"Refused by the reply front: {exc}"}
        return {
            "smtp": said,
            "summary": verdict_text(result),
            "classification": result.classification if result else "",
        }

    @app.post("/api/conversations/{shop}/{conversation}/reply")
    async def seller_replies(
        shop: ShopId, conversation: ConversationId, body: SellerReplyIn
    ) -> JSONResponse:
        reply = build_reply(
            body.style, digest(shop, conversation, body.mail), body.text, body.from_address
        )
        return JSONResponse(await send(reply))

    @app.post("/api/conversations/{shop}/{conversation}/out-of-office")
    async def out_of_office(
        shop: ShopId, conversation: ConversationId, body: OutOfOfficeIn
    ) -> JSONResponse:
        answer = out_of_office_reply(digest(shop, conversation, body.mail), body.from_address)
        return JSONResponse(await send(answer))

    @app.get("/api/mails/{n}/html")
    async def mail_html(n: int) -> Response:
        if not 0 <= n < len(sink.mails):
            raise HTTPException(404, f"no mail number {n}")
        body = sink.mails[n].message.get_body(("html", "plain"))
        content = "" if body is None else str(body.get_content())
        if body is not None and body.get_content_subtype() != "html":
            content = f"<pre>{html.escape(content)}</pre>"
        # Shown in an <iframe sandbox="">; the header keeps it sandboxed if opened alone.
        return HTMLResponse(content, headers={"Content-Security-Policy": "sandbox"})

    @app.get("/healthz")
    async def healthz() -> dict[str, bool]:
        return {"ok": True}

    return app


def _mail_doc(sink: SinkState, n: int) -> dict[str, Any]:
    mail = sink.mails[n]
    msg = mail.message
    return {
        "n": n,
        "subject": mail.summary.subject,
        "from": str(msg.get("From", "")),
        "to": str(msg.get("To", "")),
        "date": str(msg.get("Date", "")),
        "reply_to": mail.summary.reply_to,
        "html": f"/api/mails/{n}/html",
    }


async def serve_playground(
    port: int,
    *,
    sink: SinkState,
    env: Mapping[str, str],
    ports: Ports,
    links: PlaygroundLinks,
    default_conversation: str = DEMO_CONVERSATION_ID,
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve the playground on ``port`` in this loop, next to the sink whose mail it shows."""
    app = create_playground(
        sink=sink,
        access=reply_access(env, ports),
        inbound_host="127.0.0.1",
        inbound_port=ports.inbound_smtp,
        links=links,
        default_shop=DEMO_SHOP_ID,
        default_conversation=default_conversation,
    )
    return await serve_in_loop(app, port)
