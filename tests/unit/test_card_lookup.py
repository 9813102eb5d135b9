"""Card lookups: which ids a digest names, how details fill its cards, and the cache rules
(hits cost no call; unknown ids, failures, timeouts and 429s are not asked again for a
while; the budget bounds the wait). The platform here is an in-memory stand-in for the
pure cache logic; tests/integration/test_card_lookups.py runs the same against the sandbox
over HTTP and through the running mailer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import pytest

from mailer.card_lookup import CardLookup, card_ids, with_details
from shared.chat_platform.base import OrderDetails, PlatformError, ProductDetails
from shared.chat_platform.tiktok_catalog import (
    order_details_from_platform,
    product_from_platform,
    readable_status,
)
from shared.events import ChatContent, ContentKind, Digest, DigestMessage

SHOP = "shop-7"


def digest(*contents: ChatContent, shop: str = SHOP) -> Digest:
    return Digest(
        digest_id="dg",
        shop_id=shop,
        conversation_id="c",
        buyer_id="b",
        buyer_name="Ana",
        messages=tuple(DigestMessage(f"m{i}", 1 + i, c) for i, c in enumerate(contents)),
    )


def product(pid: str) -> ChatContent:
    return ChatContent(kind=ContentKind.PRODUCT_CARD, product_id=pid)


def order(oid: str, kind: str = ContentKind.ORDER_CARD) -> ChatContent:
    return ChatContent(kind=kind, order_id=oid)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Catalogue:
    """Answers like a platform: known ids found, unknown absent; can fail or be slow."""

    products: dict[str, ProductDetails] = field(default_factory=dict)
    orders: dict[str, OrderDetails] = field(default_factory=dict)
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    fail: PlatformError | None = None
    delay_s: float = 0.0

    async def product_details(self, shop_id: str, ids: list[str]) -> dict[str, ProductDetails]:
        self.calls.append(("product", tuple(ids)))
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise self.fail
        return {i: self.products[i] for i in ids if i in self.products}

    async def order_details(self, shop_id: str, ids: list[str]) -> dict[str, OrderDetails]:
        self.calls.append(("order", tuple(ids)))
        await asyncio.sleep(self.delay_s)
        if self.fail:
            raise self.fail
        return {i: self.orders[i] for i in ids if i in self.orders}

    async def aclose(self) -> None:
        pass


SOCKS = ProductDetails("1", "Wool socks", "https://cdn.example.com/1.png", "9.90 USD")
ORDER_5 = OrderDetails("5", "Awaiting shipment", ("Wool socks",))


def lookup(catalogue: Catalogue, clock: Clock, **kw: float) -> CardLookup:
    return CardLookup(
        catalogue,  # type: ignore[arg-type]
        budget_s=kw.get("budget_s", 1.0),
        ttl_s=kw.get("ttl_s", 600.0),
        failure_ttl_s=kw.get("failure_ttl_s", 60.0),
        timer=clock,
    )


def test_card_ids_names_each_product_and_order_once_including_refund_and_logistics() -> None:
    d = digest(
        product("1"),
        product("1"),
        ChatContent(kind=ContentKind.PRODUCT_CARD, title="Product 2", text="2"),  # older record
        order("5"),
        order("6", ContentKind.RETURN_REFUND_CARD),
        order("7", ContentKind.LOGISTICS_CARD),
        order("5"),
        ChatContent(kind=ContentKind.COUPON_CARD, coupon_id="9"),
        ChatContent(text="5"),
    )
    assert card_ids(d) == (["1", "2"], ["5", "6", "7"])


def test_only_id_shaped_values_are_looked_up_never_buyer_text_or_paths() -> None:
    d = digest(
        ChatContent(kind=ContentKind.PRODUCT_CARD, text="../../authorization/token?x=1"),
        ChatContent(kind=ContentKind.PRODUCT_CARD, text="look at this one"),
        ChatContent(kind=ContentKind.PRODUCT_CARD, product_id="1,2"),
        order("5,6"),
        order("7/../8"),
        product("ok_1-A"),
    )
    assert card_ids(d) == (["ok_1-A"], [])


def test_card_ids_of_an_older_record_use_the_product_id_kept_in_text() -> None:
    d = digest(ChatContent(kind=ContentKind.PRODUCT_CARD, title="", text="2"))
    assert card_ids(d) == (["2"], [])


def test_with_details_fills_cards_and_keeps_the_rest() -> None:
    d = digest(product("1"), product("3"), order("5"), order("5", ContentKind.RETURN_REFUND_CARD))
    filled = with_details(d, {"1": SOCKS}, {"5": ORDER_5})
    first, unknown, card, refund = (m.content for m in filled.messages)
    assert (first.title, first.price, first.thumbnail_url) == (
        "Wool socks",
        "9.90 USD",
        "https://cdn.example.com/1.png",
    )
    assert unknown == product("3")
    assert (card.status, card.item_names) == ("Awaiting shipment", ("Wool socks",))
    assert refund.kind == ContentKind.RETURN_REFUND_CARD and refund.status == "Awaiting shipment"
    assert with_details(d, {}, {}) is d


async def test_a_cache_hit_makes_no_platform_call() -> None:
    catalogue = Catalogue({"1": SOCKS}, {"5": ORDER_5})
    cards = lookup(catalogue, Clock())
    first = await cards.fill(digest(product("1"), order("5")))
    assert first.messages[0].content.title == "Wool socks"
    assert len(catalogue.calls) == 2  # one call per card kind
    again = await cards.fill(digest(product("1"), order("5")))
    assert again.messages == first.messages
    assert len(catalogue.calls) == 2


async def test_one_call_per_kind_carries_every_id_of_the_digest() -> None:
    catalogue = Catalogue({"1": SOCKS})
    await lookup(catalogue, Clock()).fill(digest(product("1"), product("2"), product("1")))
    assert catalogue.calls == [("product", ("1", "2"))]


async def test_an_unknown_id_is_not_asked_again_until_the_failure_ttl_passes() -> None:
    catalogue, clock = Catalogue(), Clock()
    cards = lookup(catalogue, clock, failure_ttl_s=60)
    d = digest(product("404"))
    assert (await cards.fill(d)) is d
    clock.now += 30
    await cards.fill(d)
    assert len(catalogue.calls) == 1
    clock.now += 31
    await cards.fill(d)
    assert len(catalogue.calls) == 2


async def test_a_failed_lookup_pauses_the_shops_lookups_and_cards_show_ids() -> None:
    catalogue, clock = Catalogue(fail=PlatformError("down", status=503, retryable=True)), Clock()
    cards = lookup(catalogue, clock, failure_ttl_s=60)
    d = digest(product("1"))
    assert (await cards.fill(d)) is d
    assert (await cards.fill(digest(product("2")))).messages[0].content == product("2")
    assert len(catalogue.calls) == 1  # paused: the second digest did not ask
    other_shop = digest(product("2"), shop="shop-8")
    await cards.fill(other_shop)
    assert len(catalogue.calls) == 2  # other shops are not paused
    clock.now += 61
    await cards.fill(d)
    assert len(catalogue.calls) == 3


async def test_a_429_pauses_for_its_retry_after_when_longer_than_the_failure_ttl() -> None:
    limited = PlatformError("rate limited", status=429, retryable=True, retry_after_s=300)
    catalogue, clock = Catalogue(fail=limited), Clock()
    cards = lookup(catalogue, clock, failure_ttl_s=60)
    await cards.fill(digest(order("5")))
    clock.now += 120  # past the failure TTL, not past Retry-After
    await cards.fill(digest(order("5")))
    assert len(catalogue.calls) == 1
    clock.now += 200
    await cards.fill(digest(order("5")))
    assert len(catalogue.calls) == 2


async def test_a_slow_lookup_is_cut_at_the_budget_and_the_digest_keeps_its_ids() -> None:
    catalogue = Catalogue({"1": SOCKS}, delay_s=5.0)
    cards = CardLookup(catalogue, budget_s=0.2, failure_ttl_s=60)  # type: ignore[arg-type]
    d = digest(product("1"), order("5"))
    started = time.monotonic()
    filled = await cards.fill(d)
    assert time.monotonic() - started < 1.0
    assert filled is d
    await cards.fill(d)  # paused after the timeout: no second wait
    assert time.monotonic() - started < 1.5
    assert len(catalogue.calls) == 2


async def test_a_digest_without_cards_asks_nothing() -> None:
    catalogue = Catalogue()
    d = digest(ChatContent(text="hi"))
    assert (await lookup(catalogue, Clock()).fill(d)) is d
    assert catalogue.calls == []


def test_get_product_answer_gives_name_first_picture_and_price_range() -> None:
    data = {
        "id": "1",
        "title": "Wool socks",
        "main_images": [{"urls": ["https://cdn.example.com/a.png"], "thumb_urls": []}],
        "skus": [
            {"price": {"sale_price": "12.90", "currency": "USD"}},
            {"price": {"tax_exclusive_price": "9.90", "currency": "USD"}},
        ],
    }
    assert product_from_platform(data, "1") == ProductDetails(
        "1", "Wool socks", "https://cdn.example.com/a.png", "9.90-12.90 USD"
    )
    assert product_from_platform({"title": ""}, "1") is None


def test_get_product_answer_with_a_non_http_picture_is_refused() -> None:
    data = {"title": "x", "main_images": [{"urls": ["javascript:alert(1)"]}]}
    with pytest.raises(ValueError, match="main_images"):
        product_from_platform(data, "1")


def test_get_order_detail_names_each_item_once_and_skips_a_bad_order() -> None:
    data = {
        "orders": [
            {
                "id": "5",
                "status": "AWAITING_SHIPMENT",
                "line_items": [{"product_name": "Socks"}, {"product_name": "Socks"}, {}],
            },
            {"id": "6", "status": ["not", "text"]},
            "junk",
        ]
    }
    assert order_details_from_platform(data) == {
        "5": OrderDetails("5", "Awaiting shipment", ("Socks",))
    }
    assert readable_status("IN_TRANSIT") == "In transit"
