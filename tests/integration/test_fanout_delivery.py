"""Fan-out over real parts: ChatReply records on the real broker, the real fan-out process
(``python -m fanout``), the sandbox platform with failure injection over HTTP.

The rig runs its own fan-out on its own replies topic and consumer group, so the
session stack's fan-out (if running) never takes these replies, and a kill -9
here never disturbs other tests."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devstack.broker import free_port
from devstack.chat_sandbox import create_sandbox
from devstack.stack import Ports, ServiceProcesses, serve_in_loop, stack_env, wait_healthy
from fanout.app import FanOut
from fanout.delivery_log import marker_key
from fanout.fanout_settings import FanoutSettings
from shared.chat_platform.tiktok_client import TikTokShopClient
from shared.codec import encode
from shared.events import ChatReply, DeliveryStatus, PartDelivery, ReplyPart
from shared.kafka import default_partition, ensure_topics, start_producer
from shared.topics import CHAT_DELIVERIES, CHAT_REPLIES, TopicSpec


@dataclass
class Rig:
    """A sandbox platform in the test loop and one fan-out process pointed at it."""

    ports: Ports
    services: ServiceProcesses
    http: httpx.AsyncClient
    replies_topic: str
    log_dir: Path

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.sandbox}"

    async def buyer_view(self, conversation_id: str) -> list[dict[str, object]]:
        resp = await self.http.get(
            f"{self.sandbox_url}/sandbox/conversations/{conversation_id}/buyer_view"
        )
        resp.raise_for_status()
        return resp.json()["received"]

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.log_dir.glob("*.log"))


@pytest_asyncio.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Rig]:
    root = tmp_path_factory.mktemp("fanout-rig")
    topic = f"chat.replies.it-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [TopicSpec(topic, CHAT_REPLIES.partitions)])
    ports = Ports()
    env = stack_env(
        kafka_bootstrap,
        ports,
        window_s=3,
        data_dir=root,
        extra={
            "BRIDGE_FANOUT_GROUP": f"it-fanout-{uuid.uuid4().hex[:8]}",
            "BRIDGE_FANOUT_REPLIES_TOPIC": topic,
            "BRIDGE_FANOUT_BACKOFF_BASE_S": "0.05",
            "BRIDGE_FANOUT_BACKOFF_MAX_S": "1",
            "BRIDGE_FANOUT_MAX_ATTEMPTS": "20",
        },
    )
    sandbox = create_sandbox(
        "sandbox-app-key",
        "sandbox-app-secret",
        "sandbox-access-token",
        f"http://127.0.0.1:{free_port()}/unused",
    )
    server, task = await serve_in_loop(sandbox, ports.sandbox)
    services = ServiceProcesses(env, root / "logs")
    services.start("fanout")
    http = httpx.AsyncClient(timeout=10.0)
    try:
        await wait_healthy({"fanout": ports.fanout}, timeout_s=60)
        yield Rig(ports, services, http, topic, root / "logs")
    finally:
        services.stop_all()
        await http.aclose()
        server.should_exit = True
        await task


pytestmark = pytest.mark.integration
STORM = {"rate_5xx": 0.2, "rate_5xx_after_commit": 0.1, "rate_429": 0.1, "retry_after_s": 0.05}


def conversations(n: int) -> list[tuple[str, str]]:
    base = uuid.uuid4().int
    return [(f"71{base % 10**12:012d}{i:03d}", f"51{base % 10**12:012d}{i:03d}") for i in range(n)]


async def open_conversations(stack: Rig, convs: list[tuple[str, str]]) -> None:
    for shop, conv in convs:
        resp = await stack.http.post(
            f"{stack.sandbox_url}/sandbox/conversations",
            json={"shop_id": shop, "conversation_id": conv},
        )
        resp.raise_for_status()


async def produce(bootstrap: str, replies: list[ChatReply], topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for r in replies:
            await producer.send_and_wait(
                topic, encode(r), key=f"{r.shop_id}:{r.conversation_id}".encode()
            )
    finally:
        await producer.stop()


def replies_partition(reply: ChatReply) -> int:
    """The replies partition :func:`produce` puts ``reply`` on (the delivery log's records
    of it go to the partition of the same number)."""
    return default_partition(
        f"{reply.shop_id}:{reply.conversation_id}".encode(), CHAT_REPLIES.partitions
    )


def replies_for(
    convs: list[tuple[str, str]], replies_each: int, parts_each: int
) -> dict[str, list[str]]:
    """Expected texts per conversation, in the order the buyer must see them."""
    return {
        conv: [
            f"reply {r} part {p} of {conv[-3:]}"
            for r in range(replies_each)
            for p in range(parts_each)
        ]
        for _, conv in convs
    }


def build(convs: list[tuple[str, str]], replies_each: int, parts_each: int) -> list[ChatReply]:
    out = []
    for r in range(replies_each):  # replies interleaved across conversations, as in production
        for shop, conv in convs:
            rid = f"it-{uuid.uuid4().hex}"
            out.append(
                ChatReply(
                    reply_id=rid,
                    shop_id=shop,
                    conversation_id=conv,
                    parts=tuple(
                        ReplyPart(p, f"reply {r} part {p} of {conv[-3:]}")
                        for p in range(parts_each)
                    ),
                    sender="seller@x.test",
                )
            )
    return out


async def buyer_texts(stack: Rig, conv: str) -> list[str]:
    return [str(m["content"]["content"]) for m in await stack.buyer_view(conv)]


async def wait_all(stack: Rig, expected: dict[str, list[str]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = [len(await stack.buyer_view(c)) for c in expected]
        if all(n >= len(expected[c]) for n, c in zip(counts, expected, strict=True)):
            await asyncio.sleep(1.0)  # a late duplicate would show up now
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not all parts arrived in {timeout_s}s\n{stack.logs()}")


async def set_faults(stack: Rig, **faults: float) -> dict[str, object]:
    resp = await stack.http.post(f"{stack.sandbox_url}/sandbox/faults", json=faults)
    resp.raise_for_status()
    return (await stack.http.get(f"{stack.sandbox_url}/sandbox/stats")).json()


async def test_storm_of_5xx_and_429_delivers_every_part_once_and_in_order(
    stack: Rig, kafka_bootstrap: str
) -> None:
    convs = conversations(8)
    await open_conversations(stack, convs)
    expected = replies_for(convs, replies_each=3, parts_each=3)
    before = await set_faults(stack, **STORM)
    try:
        await produce(kafka_bootstrap, build(convs, 3, 3), stack.replies_topic)
        await wait_all(stack, expected, timeout_s=60)
    finally:
        after = await set_faults(stack)
    for _, conv in convs:
        assert await buyer_texts(stack, conv) == expected[conv], conv
    calls_before, calls_after = before["calls"], after["calls"]  # type: ignore[index]
    assert calls_after.get("5xx_after_commit", 0) > calls_before.get("5xx_after_commit", 0), (
        "the storm never produced the ambiguous case; the test proves nothing about it"
    )
    assert (
        sum(calls_after.get(s, 0) - calls_before.get(s, 0) for s in ("429", "500", "502", "503"))
        > 0
    )


async def test_fanout_killed_mid_reply_and_restarted_posts_no_part_twice(
    stack: Rig, kafka_bootstrap: str
) -> None:
    convs = conversations(6)
    await open_conversations(stack, convs)
    expected = replies_for(convs, replies_each=2, parts_each=8)
    await set_faults(stack, rate_5xx_after_commit=0.1, rate_429=0.05, retry_after_s=0.05)
    try:
        await produce(kafka_bootstrap, build(convs, 2, 8), stack.replies_topic)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill once posting is under way, not finished
            done = sum([len(await stack.buyer_view(c)) for _, c in convs])
            if done >= 10:
                break
            await asyncio.sleep(0.02)
        stack.services.kill("fanout")
        stack.services.start("fanout")
        await wait_healthy({"fanout": stack.ports.fanout}, timeout_s=60)
        await wait_all(stack, expected, timeout_s=60)
    finally:
        await set_faults(stack)
    for _, conv in convs:
        assert await buyer_texts(stack, conv) == expected[conv], conv


async def records(bootstrap: str, topic: str, match: bytes, timeout_s: float = 20) -> list[dict]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not found and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=300)).values():
                found += [orjson.loads(r.value) for r in recs if r.value and match in r.value]
    finally:
        await consumer.stop()
    return found


async def test_unknown_conversation_dead_letters_with_reason_and_emails_the_seller(
    stack: Rig, kafka_bootstrap: str
) -> None:
    ((shop, conv),) = conversations(1)  # never opened on the platform
    reply = ChatReply(
        reply_id=f"it-{uuid.uuid4().hex}",
        shop_id=shop,
        conversation_id=conv,
        parts=(ReplyPart(0, "first"), ReplyPart(1, "second")),
        sender="owner@shop.test",
    )
    await produce(kafka_bootstrap, [reply], stack.replies_topic)
    letters = await records(kafka_bootstrap, "bridge.deadletter", reply.reply_id.encode())
    assert letters and "Conversation not found" in letters[0]["reason"], letters
    notices = await records(kafka_bootstrap, "mail.notices", reply.reply_id.encode())
    assert notices[0]["kind"] == "delivery_failed"
    assert notices[0]["to_address"] == "owner@shop.test"
    assert await stack.buyer_view(conv) == []


async def test_a_delivered_reply_marks_the_conversation_read(
    stack: Rig, kafka_bootstrap: str
) -> None:
    convs = conversations(1)
    await open_conversations(stack, convs)
    await produce(kafka_bootstrap, build(convs, 1, 1), stack.replies_topic)
    await wait_all(stack, replies_for(convs, 1, 1), timeout_s=30)
    stats = (await stack.http.get(f"{stack.sandbox_url}/sandbox/stats")).json()
    assert stats["read_marks"].get(convs[0][1], 0) >= 1


async def test_inline_picture_is_uploaded_and_sent_as_an_image_between_its_text_parts(
    stack: Rig, kafka_bootstrap: str
) -> None:
    def png(width: int, height: int) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data))
            )

        raw = b"".join(b"\x00" + b"\x7f\x00\x00" * width for _ in range(height))
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b"")
        )

    picture = png(3, 2)
    ((shop, conv),) = conversations(1)
    await open_conversations(stack, [(shop, conv)])
    reply = ChatReply(
        reply_id=f"it-{uuid.uuid4().hex}",
        shop_id=shop,
        conversation_id=conv,
        parts=(
            ReplyPart(0, "see the photo"),
            ReplyPart(
                1,
                image_b64=base64.b64encode(picture).decode(),
                image_content_type="image/png",
                image_filename="a.png",
            ),
            ReplyPart(2, "thanks"),
        ),
        sender="seller@x.test",
    )
    await produce(kafka_bootstrap, [reply], stack.replies_topic)
    deadline = time.monotonic() + 30
    while len(seen := await stack.buyer_view(conv)) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert [m["type"] for m in seen] == ["TEXT", "IMAGE", "TEXT"], stack.logs()
    image = seen[1]
    assert image["image"]["sha256"] == hashlib.sha256(picture).hexdigest()
    assert image["image"]["content_type"] == "image/png"
    assert (image["content"]["width"], image["content"]["height"]) == (3, 2)
    fetched = await stack.http.get(str(image["content"]["url"]))
    assert fetched.content == picture


async def test_picture_the_platform_cannot_take_fails_its_part_after_the_text_before_it(
    stack: Rig, kafka_bootstrap: str
) -> None:
    ((shop, conv),) = conversations(1)
    await open_conversations(stack, [(shop, conv)])
    reply = ChatReply(
        reply_id=f"it-{uuid.uuid4().hex}",
        shop_id=shop,
        conversation_id=conv,
        parts=(
            ReplyPart(0, "before"),
            ReplyPart(
                1,
                image_b64=base64.b64encode(b"BM" + b"\0" * 64).decode(),
                image_content_type="image/bmp",
            ),
            ReplyPart(2, "after"),
        ),
        sender="owner@shop.test",
    )
    await produce(kafka_bootstrap, [reply], stack.replies_topic)
    letters = await records(kafka_bootstrap, "bridge.deadletter", reply.reply_id.encode())
    assert letters and "picture type 'image/bmp' not accepted" in letters[0]["reason"], letters
    assert [m["content"]["content"] for m in await stack.buyer_view(conv)] == ["before"]


async def test_replayed_reply_with_a_picture_already_posted_is_neither_uploaded_nor_posted_again(
    stack: Rig, kafka_bootstrap: str
) -> None:
    """A crash after the marker and the first two posts: the replay finds text and picture
    (by the url kept in the marker) on the platform and posts only the last part."""
    picture = b"GIF89a\x02\x00\x01\x00" + b"\x00" * 16
    ((shop, conv),) = conversations(1)
    await open_conversations(stack, [(shop, conv)])
    reply = ChatReply(
        reply_id=f"it-{uuid.uuid4().hex}",
        shop_id=shop,
        conversation_id=conv,
        parts=(
            ReplyPart(0, "here it is"),
            ReplyPart(
                1, image_b64=base64.b64encode(picture).decode(), image_content_type="image/gif"
            ),
            ReplyPart(2, "anything else?"),
        ),
        sender="seller@x.test",
    )
    # What the crashed instance did: upload, marker (with the url), post parts 0 and 1.
    client = TikTokShopClient(
        stack.sandbox_url,
        "sandbox-app-key",
        "sandbox-app-secret",
        {"*": "sandbox-access-token"},
        qps_per_api=0,
    )
    try:
        image = await client.upload_image(shop, picture, "image/gif")
        marker = PartDelivery(
            reply_id=reply.reply_id,
            shop_id=shop,
            conversation_id=conv,
            index=-1,
            status=DeliveryStatus.ATTEMPTING,
            at_ms=int(time.time() * 1000) - 1000,
            image_urls={"1": image.url},
        )
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            # Where the crashed instance wrote it: the partition of the reply's.
            await producer.send_and_wait(
                CHAT_DELIVERIES.name,
                encode(marker),
                key=marker_key(reply.reply_id).encode(),
                partition=replies_partition(reply),
            )
        finally:
            await producer.stop()
        await client.send(shop, conv, client.outgoing_text("here it is"))
        await client.send(shop, conv, client.outgoing_image(image.url, image.width, image.height))
    finally:
        await client.aclose()
    uploads_before = (await stack.http.get(f"{stack.sandbox_url}/sandbox/stats")).json()[
        "images_uploaded"
    ]
    stack.services.kill("fanout")  # the restart reads the marker from chat.deliveries
    stack.services.start("fanout")
    await wait_healthy({"fanout": stack.ports.fanout}, timeout_s=60)
    await produce(kafka_bootstrap, [reply], stack.replies_topic)
    deadline = time.monotonic() + 30
    while len(await stack.buyer_view(conv)) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # a late double would show up now
    seen = await stack.buyer_view(conv)
    assert [m["type"] for m in seen] == ["TEXT", "IMAGE", "TEXT"], (seen, stack.logs())
    assert seen[1]["content"]["url"] == image.url
    stats = (await stack.http.get(f"{stack.sandbox_url}/sandbox/stats")).json()
    assert stats["images_uploaded"] == uploads_before, "the picture was uploaded again"


async def test_reply_handed_out_before_the_delivery_log_is_read_waits_for_it_and_posts_no_part_twice(
    stack: Rig, kafka_bootstrap: str
) -> None:
    """The consumer hands out a new assignment's records while the rebalance listener is
    still reading ``chat.deliveries``: a reply handled then must wait for the marker the
    crashed instance wrote, find its parts on the platform and post only the rest."""
    ((shop, conv),) = conversations(1)
    await open_conversations(stack, [(shop, conv)])
    reply = ChatReply(
        reply_id=f"it-{uuid.uuid4().hex}",
        shop_id=shop,
        conversation_id=conv,
        parts=(ReplyPart(0, "one"), ReplyPart(1, "two"), ReplyPart(2, "three")),
        sender="seller@x.test",
    )
    cfg = FanoutSettings(kafka_bootstrap=kafka_bootstrap, fanout_mark_read=False)
    client = TikTokShopClient(
        stack.sandbox_url,
        "sandbox-app-key",
        "sandbox-app-secret",
        {"*": "sandbox-access-token"},
        qps_per_api=0,
    )
    producer = await start_producer(cfg)
    fanout = FanOut(cfg, producer, client)
    try:
        # What the crashed instance did: marker acknowledged, parts 0 and 1 posted.
        marker = PartDelivery(
            reply_id=reply.reply_id,
            shop_id=shop,
            conversation_id=conv,
            index=-1,
            status=DeliveryStatus.ATTEMPTING,
            at_ms=int(time.time() * 1000) - 1000,
        )
        partition = replies_partition(reply)
        await producer.send_and_wait(
            CHAT_DELIVERIES.name,
            encode(marker),
            key=marker_key(reply.reply_id).encode(),
            partition=partition,
        )
        for text in ("one", "two"):
            await client.send(shop, conv, client.outgoing_text(text))
        handling = asyncio.create_task(fanout.deliver_reply(reply, partition))
        await asyncio.sleep(1.0)  # time enough to post, were it not waiting
        assert await buyer_texts(stack, conv) == ["one", "two"], "posted before the log was read"
        await fanout.delivered.hold({partition})  # what the listener does on assignment
        await asyncio.wait_for(handling, timeout=30)
    finally:
        await fanout.delivered.stop()
        await producer.stop()
        await client.aclose()
    assert await buyer_texts(stack, conv) == ["one", "two", "three"]
