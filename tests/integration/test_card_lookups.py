"""Product and order cards looked up on the sandbox platform over HTTP (signed like the real
API, with its errors and rate limits), through the TikTok client and the mailer's cache;
then through the running mailer (``python -m mailer``) to a real SMTP relay: a found card
shows its name, a slow API costs the digest at most the budget and the card its id."""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from devstack.broker import free_port
from devstack.chat_sandbox import SandboxState, create_sandbox
from devstack.stack import serve_in_loop
from mailer.card_lookup import CardLookup
from shared.chat_platform.tiktok_client import TikTokShopClient
from shared.config import ChatPlatformSettings
from shared.events import ChatContent, ContentKind, Digest, DigestMessage
from tests.mailer_run import Mailers, Relay, produce
from tests.polling import eventually
from tests.private_broker import private_broker

pytestmark = pytest.mark.integration

PLATFORM = ChatPlatformSettings()


@dataclass
class Sandbox:
    url: str
    state: SandboxState
    http: httpx.AsyncClient

    async def faults(self, **faults: float) -> None:
        (await self.http.post(f"{self.url}/sandbox/faults", json=faults)).raise_for_status()

    async def seed(self, shop: str) -> None:
        for body in (
            {"shop_id": shop, "product_id": f"{shop}1", "title": "Merino socks <3-pack>"},
            {"shop_id": shop, "product_id": f"{shop}2", "title": "Laundry bag", "price": "4.50"},
        ):
            (await self.http.post(f"{self.url}/sandbox/products", json=body)).raise_for_status()
        order = {
            "shop_id": shop,
            "order_id": f"{shop}5",
            "status": "IN_TRANSIT",
            "item_names": ["Merino socks <3-pack>", "Merino socks <3-pack>", "Laundry bag"],
        }
        (await self.http.post(f"{self.url}/sandbox/orders", json=order)).raise_for_status()

    def answered(self) -> int:
        return sum(self.state.calls.values())


@pytest_asyncio.fixture(scope="module")
async def sandbox() -> AsyncIterator[Sandbox]:
    app = create_sandbox(
        PLATFORM.platform_app_key,
        PLATFORM.platform_app_secret.get_secret_value(),
        PLATFORM.platform_access_token.get_secret_value(),
        "http://127.0.0.1:9/unused",
    )
    port = free_port()
    server, task = await serve_in_loop(app, port)
    http = httpx.AsyncClient(timeout=10.0)
    try:
        yield Sandbox(f"http://127.0.0.1:{port}", app.state.sandbox, http)
    finally:
        await http.aclose()
        server.should_exit = True
        await task


@pytest_asyncio.fixture
async def clean_faults(sandbox: Sandbox) -> AsyncIterator[Sandbox]:
    await sandbox.faults()
    yield sandbox
    await sandbox.faults()


def client(url: str, secret: str = "") -> TikTokShopClient:
    return TikTokShopClient(
        url,
        PLATFORM.platform_app_key,
        secret or PLATFORM.platform_app_secret.get_secret_value(),
        {"*": PLATFORM.platform_access_token.get_secret_value()},
    )


def cards_digest(
    shop: str, digest_id: str = "dg", *, product: str = "1", order: str = "5"
) -> Digest:
    contents = (
        ChatContent(kind=ContentKind.PRODUCT_CARD, product_id=f"{shop}{product}"),
        ChatContent(kind=ContentKind.ORDER_CARD, order_id=f"{shop}{order}"),
        ChatContent(kind=ContentKind.RETURN_REFUND_CARD, order_id=f"{shop}{order}", sku_id="77"),
    )
    return Digest(
        digest_id=digest_id,
        shop_id=shop,
        conversation_id=f"conv-{digest_id}",
        buyer_id="b",
        buyer_name="Ana",
        messages=tuple(
            DigestMessage(f"{digest_id}-m{i}", 1_764_070_000_000 + i, c)
            for i, c in enumerate(contents)
        ),
        destination_email="owner@sunnysocks.example",
    )


async def test_cards_show_what_the_platform_says_and_a_cache_hit_asks_nothing(
    clean_faults: Sandbox,
) -> None:
    sandbox = clean_faults
    await sandbox.seed("70001")
    cards = CardLookup(client(sandbox.url), budget_s=5.0)
    try:
        filled = await cards.fill(cards_digest("70001"))
        product, order, refund = (m.content for m in filled.messages)
        assert (product.title, product.price) == ("Merino socks <3-pack>", "9.90 USD")
        assert product.thumbnail_url == f"{sandbox.url}/sandbox/images/product-700011.png"
        assert (order.status, order.item_names) == (
            "In transit",
            ("Merino socks <3-pack>", "Laundry bag"),
        )
        assert refund.kind == ContentKind.RETURN_REFUND_CARD and refund.status == "In transit"
        answered = sandbox.answered()
        again = await cards.fill(cards_digest("70001", "dg2"))
        assert [m.content for m in again.messages] == [m.content for m in filled.messages]
        assert sandbox.answered() == answered  # every card from the cache
    finally:
        await cards.aclose()


async def test_an_id_the_platform_does_not_know_keeps_its_card_by_id(clean_faults: Sandbox) -> None:
    sandbox = clean_faults
    cards = CardLookup(client(sandbox.url), budget_s=5.0)
    try:
        digest = cards_digest("70002")  # nothing seeded for this shop: 404 / no order
        assert await cards.fill(digest) == digest
        answered = sandbox.answered()
        await cards.fill(digest)
        assert sandbox.answered() == answered  # unknown ids are not asked again at once
    finally:
        await cards.aclose()


async def test_an_api_error_or_a_bad_signature_falls_back_to_ids_and_pauses_the_shop(
    clean_faults: Sandbox,
) -> None:
    sandbox = clean_faults
    await sandbox.seed("70003")
    await sandbox.faults(rate_5xx=1.0)
    cards = CardLookup(client(sandbox.url), budget_s=5.0, failure_ttl_s=60)
    try:
        digest = cards_digest("70003")
        assert await cards.fill(digest) == digest
        answered = sandbox.answered()
        assert await cards.fill(cards_digest("70003", "dg2")) == cards_digest("70003", "dg2")
        assert sandbox.answered() == answered  # the shop's lookups are paused
    finally:
        await cards.aclose()
    await sandbox.faults()
    forged = CardLookup(client(sandbox.url, secret="not-the-app-secret"), budget_s=5.0)
    try:
        assert await forged.fill(digest) == digest  # 401 (106001): ids only
        assert sandbox.state.calls.get("401", 0) >= 1
    finally:
        await forged.aclose()


async def test_a_slow_api_costs_the_digest_at_most_the_budget(clean_faults: Sandbox) -> None:
    sandbox = clean_faults
    await sandbox.seed("70004")
    await sandbox.faults(lookup_delay_s=5.0)
    cards = CardLookup(client(sandbox.url), budget_s=0.5)
    try:
        digest = cards_digest("70004")
        started = time.monotonic()
        assert await cards.fill(digest) == digest
        assert await cards.fill(cards_digest("70004", "dg2")) == cards_digest("70004", "dg2")
        assert time.monotonic() - started < 2.0  # one budget, then paused: no second wait
    finally:
        await cards.aclose()


async def test_a_429_is_honoured_for_its_retry_after(clean_faults: Sandbox) -> None:
    sandbox = clean_faults
    await sandbox.seed("70005")
    await sandbox.faults(rate_429=1.0, retry_after_s=30)
    cards = CardLookup(client(sandbox.url), budget_s=5.0, failure_ttl_s=0.1)
    try:
        digest = cards_digest("70005")
        assert await cards.fill(digest) == digest
        limited = sandbox.state.calls.get("429", 0)
        assert limited >= 1
        await sandbox.faults()  # the platform would answer now, but Retry-After said 30 s
        await asyncio.sleep(0.3)  # past the failure TTL
        answered = sandbox.answered()
        assert await cards.fill(digest) == digest  # still ids: not asked
        assert sandbox.answered() == answered
    finally:
        await cards.aclose()


# --- through the running mailer, to a real SMTP relay -----------------------------------


def bodies(raw: bytes) -> tuple[str, str]:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def test_the_mailer_sends_cards_with_names_and_within_budget_when_the_api_is_slow(
    clean_faults: Sandbox, tmp_path: Path
) -> None:
    sandbox = clean_faults
    await sandbox.seed("70006")
    broker = private_broker(tmp_path / "broker")
    await broker.start_with_topics()
    relay = Relay()
    await relay.start()
    mailers = Mailers(
        broker.bootstrap,
        relay,
        tmp_path,
        {
            "BRIDGE_PLATFORM_BASE_URL": sandbox.url,
            "BRIDGE_CARD_LOOKUP_BUDGET_S": "1.0",
            "BRIDGE_DIGEST_IMAGE_HOSTS": "127.0.0.1",
        },
    )
    try:
        await mailers.start()
        found = cards_digest("70006", "dg-found")
        await produce(broker.bootstrap, [found])
        await eventually(lambda: "dg-found" in relay.raw, timeout_s=60, what="the first mail")
        text, html = bodies(relay.raw["dg-found"])
        assert "[Product: Merino socks <3-pack> \u2014 9.90 USD]" in text
        # escaped as text; inside an attribute a "<" is only a character
        assert "Merino socks &lt;3-pack&gt;" in html
        assert "<3-pack>" not in html.replace('alt="Merino socks <3-pack>"', "")
        assert f'src="{sandbox.url}/sandbox/images/product-700061.png"' in html
        assert "Items: Merino socks <3-pack>, Laundry bag" in text
        assert "[Return/refund request: Order 700065]" in text

        await sandbox.faults(lookup_delay_s=8.0)
        slow = cards_digest("70006", "dg-slow", product="2", order="9")
        sent = time.monotonic()
        await produce(broker.bootstrap, [slow])
        await eventually(lambda: "dg-slow" in relay.raw, timeout_s=60, what="the slow-API mail")
        took = time.monotonic() - sent
        text, _ = bodies(relay.raw["dg-slow"])
        assert "[Product: Product 700062]" in text  # the id: the name came too late
        assert took < 6.0, f"the digest waited {took:.1f} s for an API that answers in 8 s"
        print(f"digest sent {took:.2f} s after it was produced, lookup budget 1.0 s")
    finally:
        mailers.procs.stop_all()
        await relay.stop()
        broker.stop()
