"""The standing adversarial suite for webhooks: correctly SIGNED hostile payloads, posted over
real HTTP to a running ingest on the real broker.

For every body: the answer is never 5xx; a 4xx is JSON naming its reason (a 422 also its
field); and every event a 2xx put on ``chat.events`` is read back from the broker, decoded
with the consolidator's decoder, and composed into a digest email by the mailer's own
composer (render, MIME, reply address) without an error.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consolidator.chat_event_decoder import decode_chat_event
from ingest.webhook_events import chat_event_from_message
from mailer.digest_composer import DigestComposer
from mailer.mailer_settings import MailerSettings
from shared.chat_platform.generic_webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    GenericWebhookAdapter,
    signed_headers,
)
from shared.chat_platform.tiktok_signing import sign_webhook
from shared.chat_platform.tiktok_webhook import TikTokWebhookAdapter
from shared.events import ChatEvent, ChatEventKind, Digest, DigestMessage
from shared.topics import CHAT_EVENTS
from tests.integration.test_ingest_webhooks import KEY, SECRET

pytestmark = pytest.mark.integration
GENERIC_SECRET = "it-generic"  # what ingest_settings configures
FUZZ = settings(
    max_examples=100, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

# --- values ------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.sampled_from(
        [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), 10**30, 10**400]
    ),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
STRINGS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "²",
            "٣",
            "１２",
            "0",
            "-1",
            "9" * 3000,
            "9" * 21,
            "a/b",
            "x\x00y",
            "\u202e",
            "javascript:alert(1)",
            "https://",
            "https://x y",
            "//evil.example",
            "data:text/html,hi",
            "1e400",
            "null",
            "<b>",
            "\r\n",
        ]
    ),
    st.text(max_size=40),
    st.text(min_size=2000, max_size=12000, alphabet="é9 \n"),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
JSON = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE = st.one_of(LEAVES, JSON)

MESSAGE_TYPES = [
    "TEXT",
    "IMAGE",
    "EMOTICONS",
    "PRODUCT_CARD",
    "ORDER_CARD",
    "VIDEO",
    "STICKER",
    "NOTIFICATION",
    "ALLOCATED_SERVICE",
    "BUYER_ENTER_FROM_TRANSFER",
    "BUYER_ENTER_FROM_PRODUCT",
    "BUYER_ENTER_FROM_ORDER",
    "LOGISTICS_CARD",
    "RETURN_REFUND_CARD",
    "COUPON_CARD",
    "OTHER",
    "HOLOGRAM",
]
CONTENT_KEYS = [
    "content",
    "url",
    "product_id",
    "product_name",
    "price",
    "image_url",
    "cover",
    "order_id",
    "order_status",
    "status",
    "coupon_id",
    "emoji",
    "width",
    "height",
]
DIGITS = st.integers(min_value=1, max_value=10**19 - 1).map(str)
URLS = st.sampled_from(
    ["https://cdn.example/a.png", "http://img.example:8080/p?q=1#f", "HTTPS://CDN.EXAMPLE/V.MP4"]
)


def _dumps(value: Any) -> bytes:
    """JSON as a hostile sender writes it: the stdlib writes integers beyond 64 bits too."""
    return json.dumps(value, ensure_ascii=False).encode()


def _set(obj: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


@st.composite
def tiktok_bodies(draw: st.DrawFn) -> bytes:
    """The documented type-14 webhook with valid random values, then up to three fields
    (envelope, message, sender, or inside the content string) replaced by hostile ones."""
    msg_type = draw(st.sampled_from(MESSAGE_TYPES))
    content: dict[str, Any] = {
        "content": draw(st.text(max_size=300)),
        "url": draw(URLS),
        "product_id": draw(DIGITS),
        "order_id": draw(DIGITS),
        "product_name": draw(st.text(max_size=60)),
        "cover": draw(URLS),
    }
    for key in draw(st.lists(st.sampled_from(CONTENT_KEYS), max_size=2, unique=True)):
        content[key] = draw(HOSTILE)
    n = uuid.uuid4().int  # fresh ids: the ingest drops redelivered message ids
    payload: dict[str, Any] = {
        "type": 14,
        "tts_notification_id": str(n % 10**19),
        "shop_id": draw(DIGITS),
        "timestamp": int(time.time()),
        "data": {
            "content": _dumps(content).decode(),
            "conversation_id": draw(DIGITS),
            "create_time": int(time.time()) - draw(st.integers(0, 10**8)),
            "is_visible": draw(st.booleans()),
            "message_id": str(n % 10**20),
            "index": draw(DIGITS),
            "type": msg_type,
            "sender": {
                "im_user_id": draw(DIGITS),
                "role": draw(
                    st.sampled_from(
                        ["BUYER", "BUYER", "SHOP", "CUSTOMER_SERVICE", "SYSTEM", "robot"]
                    )
                ),
                "nickname": draw(st.text(max_size=30)),
            },
        },
    }
    paths = [
        ("type",),
        ("shop_id",),
        ("tts_notification_id",),
        ("timestamp",),
        ("data",),
        ("data", "content"),
        ("data", "conversation_id"),
        ("data", "create_time"),
        ("data", "is_visible"),
        ("data", "message_id"),
        ("data", "index"),
        ("data", "type"),
        ("data", "sender"),
        ("data", "sender", "role"),
        ("data", "sender", "im_user_id"),
        ("data", "sender", "nickname"),
    ]
    for path in draw(st.lists(st.sampled_from(paths), max_size=3, unique=True)):
        if path[0] == "data" and len(path) > 1 and not isinstance(payload["data"], dict):
            continue
        if len(path) > 2 and not isinstance(payload["data"].get("sender"), dict):
            continue
        _set(payload, path, draw(HOSTILE))
    return _dumps(payload)


@st.composite
def generic_bodies(draw: st.DrawFn) -> bytes:
    """The generic platform's documented shape with hostile values in up to three places."""
    n = uuid.uuid4().int
    event: dict[str, Any] = {
        "type": draw(st.sampled_from(["message", "message", "read"])),
        "conversation_id": draw(DIGITS),
        "message_id": f"g-{n % 10**20}",
        "create_time": int(time.time()) - draw(st.integers(0, 10**8)),
        "sender": {
            "role": draw(st.sampled_from(["buyer", "seller", "agent", "system"])),
            "id": draw(DIGITS),
            "name": draw(st.text(max_size=30)),
        },
        "content": {
            "kind": draw(
                st.sampled_from(
                    [
                        "text",
                        "image",
                        "product_card",
                        "order_card",
                        "video",
                        "sticker",
                        "notice",
                        "poll",
                    ]
                )
            ),
            "text": draw(st.text(max_size=200)),
            "url": draw(URLS),
            "title": draw(st.text(max_size=40)),
            "order_id": draw(DIGITS),
        },
    }
    payload: dict[str, Any] = {"shop_id": draw(DIGITS), "events": [event]}
    paths = [
        ("shop_id",),
        ("events",),
        ("type",),
        ("conversation_id",),
        ("message_id",),
        ("create_time",),
        ("sender",),
        ("sender", "role"),
        ("sender", "id"),
        ("sender", "name"),
        ("content",),
        ("content", "kind"),
        ("content", "text"),
        ("content", "url"),
        ("content", "thumbnail_url"),
        ("content", "order_id"),
    ]
    for path in draw(st.lists(st.sampled_from(paths), max_size=3, unique=True)):
        if path[0] in ("shop_id", "events"):
            payload[path[0]] = draw(HOSTILE)
        elif len(path) == 1 or isinstance(event.get(path[0]), dict):
            _set(event, path, draw(HOSTILE))
    return _dumps(payload)


ARBITRARY_BODIES = st.one_of(
    JSON.map(_dumps),
    st.binary(max_size=300),  # invalid UTF-8, truncated JSON, nothing at all
    st.integers(1, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(1, 5000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
    st.sampled_from(
        [
            b'{"type":14,"shop_id":"1","data":{"index":1e400}}',
            b'{"type":18446744073709551616,"shop_id":"1"}',
            b'{"type":14,"shop_id":"1","data":"\\ud800"}',
            b"\xef\xbb\xbf{}",
        ]
    ),
)


# --- the running ingest and the topic it writes --------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


class Published:
    """``chat.events`` from the end as of the fixture's start, searched by message id."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.seen: dict[tuple[str, str, str], bytes] = {}

    async def record_of(self, event: ChatEvent, timeout_s: float = 10.0) -> bytes:
        key = (event.shop_id, event.kind, event.message_id)
        deadline = time.monotonic() + timeout_s
        while key not in self.seen and time.monotonic() < deadline:
            for recs in (await self.consumer.getmany(timeout_ms=200)).values():
                for rec in recs:
                    raw = orjson.loads(rec.value)
                    self.seen[(raw.get("shop_id"), raw.get("kind"), raw.get("message_id"))] = (
                        rec.value
                    )
        assert key in self.seen, f"a 2xx'd event is not on {CHAT_EVENTS.name}: {key}"
        return self.seen[key]


@pytest_asyncio.fixture(scope="module")
async def published(kafka_bootstrap: str) -> AsyncIterator[Published]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(CHAT_EVENTS.name, p) for p in range(CHAT_EVENTS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)  # resolve "end" now, before anything is posted
        yield Published(consumer)
    finally:
        await consumer.stop()


COMPOSER = DigestComposer(MailerSettings(), None)


def assert_composes(event: ChatEvent) -> None:
    """The event in a digest, through the mailer's composer (render, MIME, reply address)."""
    digest = Digest(
        digest_id=f"fuzz-{event.message_id}",
        shop_id=event.shop_id,
        conversation_id=event.conversation_id,
        buyer_id=event.buyer_id,
        buyer_name=event.buyer_name,
        messages=(DigestMessage(event.message_id, event.sent_at_ms, event.content, event.seq),),
    )
    _, _, raw = COMPOSER.compose(digest)
    assert b"[a message that could not be shown]" not in raw, "accepted but not renderable"


def assert_answer_names_its_reason(resp: httpx.Response) -> None:
    event(f"HTTP {resp.status_code}")  # --hypothesis-show-statistics: how many got through
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code >= 400:
        body = resp.json()
        assert isinstance(body.get("error"), str) and body["error"]
        if resp.status_code == 422:
            assert body["field"] and body["reason"], body


async def check_accepted(
    body: bytes, adapter: TikTokWebhookAdapter | GenericWebhookAdapter, published: Published
) -> None:
    """Every event the 2xx'd body carried is on the topic, decodes and composes."""
    batch = adapter.parse(body)
    for message in batch.messages:
        expected = chat_event_from_message(batch.shop_id, message, buyer_name="", received_at_ms=0)
        if expected is None:
            continue
        event = decode_chat_event(await published.record_of(expected))
        if event.kind == ChatEventKind.BUYER_MESSAGE:
            assert_composes(event)


TIKTOK = TikTokWebhookAdapter(KEY, SECRET)
GENERIC = GenericWebhookAdapter(GENERIC_SECRET)


async def post_tiktok(http: httpx.AsyncClient, url: str, body: bytes) -> httpx.Response:
    return await http.post(
        f"{url}/webhooks/tiktok",
        content=body,
        headers={
            "content-type": "application/json",
            "authorization": sign_webhook(KEY, body, SECRET),
        },
    )


@FUZZ
@given(body=tiktok_bodies())
async def test_signed_tiktok_webhook_with_hostile_values_is_never_5xx_and_2xx_events_render(
    ingest: str, http: httpx.AsyncClient, published: Published, body: bytes
) -> None:
    resp = await post_tiktok(http, ingest, body)
    assert_answer_names_its_reason(resp)
    if resp.status_code == 200:
        await check_accepted(body, TIKTOK, published)


@FUZZ
@given(body=ARBITRARY_BODIES)
async def test_signed_arbitrary_body_is_never_5xx_and_every_4xx_names_its_reason(
    ingest: str, http: httpx.AsyncClient, published: Published, body: bytes
) -> None:
    resp = await post_tiktok(http, ingest, body)
    assert_answer_names_its_reason(resp)
    if resp.status_code == 200:
        await check_accepted(body, TIKTOK, published)


@settings(FUZZ, max_examples=60)
@given(body=st.one_of(generic_bodies(), ARBITRARY_BODIES))
async def test_signed_generic_webhook_with_hostile_values_is_never_5xx_and_2xx_events_render(
    ingest: str, http: httpx.AsyncClient, published: Published, body: bytes
) -> None:
    resp = await http.post(
        f"{ingest}/webhooks/generic",
        content=body,
        headers={**signed_headers(GENERIC_SECRET, body), "content-type": "application/json"},
    )
    if resp.status_code == 404:  # the generic adapter is not mounted in this configuration
        return
    assert_answer_names_its_reason(resp)
    if resp.status_code == 200:
        await check_accepted(body, GENERIC, published)


# What a stranger can put in a header value (h11 refuses controls and outer whitespace).
HEADER_VALUES = (
    st.binary(min_size=1, max_size=120)
    .map(lambda b: b.strip(b" \t"))
    .filter(lambda b: b != b"" and not any(c < 0x20 or c == 0x7F for c in b))
)


@settings(FUZZ, max_examples=60)
@given(
    route=st.sampled_from(["tiktok", "generic"]),
    value=HEADER_VALUES,
    name=st.sampled_from(["authorization", TIMESTAMP_HEADER, SIGNATURE_HEADER]),
)
async def test_unsigned_webhook_with_any_signature_header_bytes_is_refused_never_5xx(
    ingest: str, http: httpx.AsyncClient, route: str, name: str, value: bytes
) -> None:
    """Signature headers are compared as bytes: a non-ASCII value is a plain mismatch (401),
    not a TypeError from hmac.compare_digest (a 500 for anyone, unsigned)."""
    body = b'{"type":14,"shop_id":"1","data":{}}'
    headers = {"content-type": "application/json", name: value}
    if name != TIMESTAMP_HEADER:
        headers[TIMESTAMP_HEADER] = str(int(time.time())).encode()
    resp = await http.post(f"{ingest}/webhooks/{route}", content=body, headers=headers)
    assert resp.status_code in ((401, 404) if route == "generic" else (401,)), resp.text


async def test_the_fuzzed_ingest_still_answers_a_plain_message(
    ingest: str, http: httpx.AsyncClient
) -> None:
    """After the fuzzing above, the same process still takes a normal delivery."""
    await asyncio.sleep(0)
    body = orjson.dumps(
        {
            "type": 14,
            "shop_id": "7494049642642441621",
            "data": {
                "content": '{"content":"still here"}',
                "conversation_id": "710688832392260838",
                "create_time": int(time.time()),
                "message_id": str(uuid.uuid4().int % 10**19),
                "type": "TEXT",
                "sender": {"im_user_id": "1", "role": "BUYER"},
            },
        }
    )
    assert (await post_tiktok(http, ingest, body)).status_code == 200
