"""Finding 6: signed webhooks with values out of range are refused at the door (422 naming the
field), and a message that cannot be rendered costs only itself, never its digest.

Ingest runs over real HTTP on a real broker; the digest case runs the whole stack (broker,
consolidator, mailer with its compose helper, mail sink) and injects the poison the way an
older producer could, straight onto ``chat.events``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from consolidator.chat_event_decoder import decode_chat_event
from mailer.render import DigestLinks, render_digest
from shared.codec import DecodeError, encode
from shared.events import (
    ChatContent,
    ChatEvent,
    ChatEventKind,
    Digest,
    DigestMessage,
    conversation_key,
)
from shared.topics import CHAT_EVENTS
from tests.conftest import WINDOW_S, Stack
from tests.integration.test_ingest_webhooks import post
from tests.polling import eventually

pytestmark = pytest.mark.integration

SHOP = "7494049642642441621"


def webhook(**data: Any) -> bytes:
    """A documented type-14 new-message webhook, with ``data`` fields overridden."""
    n = uuid.uuid4().int
    return orjson.dumps(
        {
            "type": 14,
            "tts_notification_id": str(n % 10**19),
            "shop_id": SHOP,
            "timestamp": int(time.time()),
            "data": {
                "content": orjson.dumps({"content": "hi"}).decode(),
                "conversation_id": str(5_000_000_000_000_000 + n % 10**17),
                "create_time": int(time.time()),
                "is_visible": True,
                "message_id": str(7_000_000_000_000_000_000 + n % 10**18),
                "index": "7494560109732334274",
                "type": "TEXT",
                "sender": {"im_user_id": "707885565181165594", "role": "BUYER"},
                **data,
            },
        }
    )


@pytest.mark.parametrize(
    ("name", "data", "field"),
    [
        ("index_superscript_two", {"index": "²"}, "body.data.index"),
        ("index_3000_digits", {"index": "9" * 3000}, "body.data.index"),
        ("create_time_2_63_minus_1", {"create_time": 2**63 - 1}, "body.data.create_time"),
        (
            "create_time_far_future",
            {"create_time": int(time.time()) + 10 * 365 * 86400},
            "body.data.create_time",
        ),
        (
            "create_time_in_milliseconds",
            {"create_time": int(time.time() * 1000)},
            "body.data.create_time",
        ),
        (
            "conversation_id_3000_digits",
            {"conversation_id": "9" * 3000},
            "body.data.conversation_id",
        ),
    ],
)
async def test_signed_webhook_with_a_value_out_of_range_is_422_naming_the_field(
    ingest: str, name: str, data: dict[str, Any], field: str
) -> None:
    resp = await post(ingest, webhook(**data))
    assert resp.status_code == 422, (name, resp.status_code, resp.text)
    body = resp.json()
    assert body["field"] == field
    assert body["reason"] and field in body["error"]


async def test_refused_field_is_counted_by_reason(ingest: str) -> None:
    await post(ingest, webhook(index="²"))
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{ingest}/metrics")).text
    counts = {
        s.labels["reason"]: s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "bridge_webhooks_refused_total"
    }
    assert counts.get("bad_characters", 0) >= 1


async def test_a_message_that_cannot_be_rendered_leaves_the_rest_of_its_digest_sent(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    """An older producer's event with a time no calendar holds (year ~292 million) sits in
    the same digest as a normal message: the digest goes out with the normal message and a
    placeholder, and the mailer counts it."""
    shop, conv = unique_conversation
    await stack.onboard(shop)
    now = int(time.time() * 1000)

    def event(message_id: str, sent_at_ms: int, text: str, received_at_ms: int = now) -> ChatEvent:
        return ChatEvent(
            kind=ChatEventKind.BUYER_MESSAGE,
            shop_id=shop,
            conversation_id=conv,
            message_id=message_id,
            sent_at_ms=sent_at_ms,
            buyer_id="b1",
            buyer_name="Ana",
            content=ChatContent(text=text),
            received_at_ms=received_at_ms,
        )

    producer = AIOKafkaProducer(bootstrap_servers=stack.env["KAFKA_BOOTSTRAP"])
    await producer.start()
    try:
        key = conversation_key(shop, conv).encode()
        for ev in (
            event(f"{conv}-ok", now, "Is the poison-proof kettle in stock?"),
            event(f"{conv}-bad", 2**63 - 1, "from a producer without range checks"),
            # arrival beyond what a deadline can hold: dead-lettered by the consolidator
            event(f"{conv}-late", now, "arrived in year 292 million", 2**63 - 1),
        ):
            await producer.send_and_wait(CHAT_EVENTS.name, encode(ev), key=key)
    finally:
        await producer.stop()

    (mail,) = await eventually(
        lambda: stack.mails_for(conv),
        timeout_s=WINDOW_S + 30,
        interval_s=0.2,
        what="the digest with the other message",
    )
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Is the poison-proof kettle in stock?" in text
    assert "[a message that could not be shown]" in text
    assert "from a producer without range checks" not in text
    assert "arrived in year 292 million" not in text
    assert "2 new messages" in text

    async def counted() -> float:
        resp = await stack.http.get(f"http://127.0.0.1:{stack.ports.mailer}/metrics")
        return sum(
            s.value
            for f in text_string_to_metric_families(resp.text)
            for s in f.samples
            if s.name == "bridge_digest_messages_unshown_total"
        )

    assert await eventually(counted, timeout_s=10, what="the unshown message counted") >= 1


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("received_at_ms", {"received_at_ms": 2**63 - 1}),
        ("received_at_ms", {"received_at_ms": -1}),
        ("sent_at_ms", {"received_at_ms": 0, "sent_at_ms": 2**64 - 1}),
    ],
)
def test_chat_event_whose_arrival_overflows_a_deadline_is_refused_by_the_decoder(
    field: str, values: dict[str, int]
) -> None:
    """Such an event failed every consolidator batch of its partition (the deadline is kept
    in a signed 64-bit header); refused by the decoder, it is dead-lettered alone."""
    event = ChatEvent(
        kind=ChatEventKind.BUYER_MESSAGE,
        shop_id="1",
        conversation_id="2",
        message_id="3",
        content=ChatContent(text="hi"),
        **{"sent_at_ms": 1_700_000_000_000, **values},
    )  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match=field):
        decode_chat_event(encode(event))


def test_render_shows_an_unrenderable_message_as_a_placeholder_in_both_bodies() -> None:
    """Pure: the guard in render, without the stack."""
    digest = Digest(
        digest_id="d1",
        shop_id="1",
        conversation_id="2",
        buyer_id="b",
        buyer_name="Ana",
        messages=(
            DigestMessage("m-bad", 2**63 - 1, ChatContent(text="never shown")),
            DigestMessage("m-ok", 1_700_000_000_000, ChatContent(text="kettle?")),
        ),
    )
    rendered = render_digest(
        digest, DigestLinks("https://c.example/1", "https://s.example/1", "TikTok Shop")
    )
    for body in (rendered.text, rendered.html):
        assert "kettle?" in body and "[a message that could not be shown]" in body
        assert "never shown" not in body
