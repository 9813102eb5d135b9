"""Product and order cards with what the platform says about their ids, within a budget.

A product card carries only ``product_id`` and an order card only ``order_id`` (contract
s.2). Before a digest is composed the mailer asks the chat platform once per card kind
(``product_details`` / ``order_details``, every id of the digest in one call), through a
per-shop cache, and waits at most ``budget_s`` for both together. Whatever is not known by
then (slow API, error, unknown id, a shop paused after a 429) renders from the id alone:
a lookup never fails a digest and never delays it past the budget.

Caches (cachetools ``TTLCache``, bounded): details found, by (shop, id), for
``ttl_s``; ids the platform did not know, for ``failure_ttl_s``; and shops whose lookups
failed, timed out or were rate limited, paused for ``failure_ttl_s`` (or the 429's
Retry-After when longer), so a down API costs one budget per pause, not one per digest.

:func:`card_ids` and :func:`with_details` are pure; :class:`CardLookup` is the I/O edge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import fields
from typing import TypeVar

from cachetools import TTLCache

from mailer.mailer_metrics import CARD_LOOKUP_SECONDS, CARD_LOOKUPS
from shared.chat_platform.base import ChatPlatform, OrderDetails, PlatformError, ProductDetails
from shared.chat_platform.payload_fields import is_id
from shared.events import ChatContent, ContentKind, Digest, DigestMessage

__all__ = ["CardLookup", "card_ids", "with_details"]

log = logging.getLogger("mailer.card_lookup")

PRODUCT, ORDER = "product", "order"
# Cards whose order the order API describes: the order card, and the return/refund and
# logistics cards, which name an order too.
_ORDER_KINDS = frozenset(
    {ContentKind.ORDER_CARD, ContentKind.RETURN_REFUND_CARD, ContentKind.LOGISTICS_CARD}
)
MAX_IDS_PER_DIGEST = 20  # per card kind; a digest naming more shows the rest by id

T = TypeVar("T", ProductDetails, OrderDetails)
_OUTCOMES = ("hit", "miss", "not_found", "error", "timeout", "skipped")
# Bound once: labels() per card costs more than the cache lookup it counts.
_COUNT = {
    (card, outcome): CARD_LOOKUPS.labels(card, outcome)
    for card in (PRODUCT, ORDER)
    for outcome in _OUTCOMES
}


def product_id_of(content: ChatContent) -> str:
    """The card's product id (records written before ``product_id`` kept it in ``text``)."""
    return content.product_id or (content.text if content.kind == ContentKind.PRODUCT_CARD else "")


def card_ids(digest: Digest) -> tuple[list[str], list[str]]:
    """(product ids, order ids) the digest's cards name, each once, in order, bounded."""
    products: dict[str, None] = {}
    orders: dict[str, None] = {}
    for message in digest.messages:
        content = message.content
        # Only id-shaped values go to the platform: an old record's product id is buyer
        # text, which must never become part of a signed API path or query.
        if content.kind == ContentKind.PRODUCT_CARD and is_id(pid := product_id_of(content)):
            products[pid] = None
        elif content.kind in _ORDER_KINDS and is_id(content.order_id):
            orders[content.order_id] = None
    return list(products)[:MAX_IDS_PER_DIGEST], list(orders)[:MAX_IDS_PER_DIGEST]


_CONTENT_FIELDS = tuple(f.name for f in fields(ChatContent))
_DIGEST_FIELDS = tuple(f.name for f in fields(Digest))


def _content_with(content: ChatContent, **changes: object) -> ChatContent:
    # Positional construction: dataclasses.replace costs several times as much per call
    # (docs/performance.md), and a cache hit should cost next to nothing over rendering.
    return ChatContent(*[changes.get(name, getattr(content, name)) for name in _CONTENT_FIELDS])  # type: ignore[arg-type]


def _with_product(content: ChatContent, found: ProductDetails) -> ChatContent:
    return _content_with(
        content,
        product_id=found.product_id,
        title=found.name,
        thumbnail_url=found.image_url or content.thumbnail_url,
        price=found.price or content.price,
        url=found.url or content.url,
    )


def _with_order(content: ChatContent, found: OrderDetails) -> ChatContent:
    return _content_with(
        content, status=found.status or content.status, item_names=found.item_names
    )


def with_details(
    digest: Digest,
    products: Mapping[str, ProductDetails],
    orders: Mapping[str, OrderDetails],
) -> Digest:
    """``digest`` with its cards filled in from what was found; the same digest when
    nothing was. Pure."""
    if not products and not orders:
        return digest
    messages: list[DigestMessage] = []
    changed = False
    for message in digest.messages:
        content = message.content
        if content.kind == ContentKind.PRODUCT_CARD and (
            found_product := products.get(product_id_of(content))
        ):
            content = _with_product(content, found_product)
        elif content.kind in _ORDER_KINDS and (found_order := orders.get(content.order_id)):
            content = _with_order(content, found_order)
        if content is not message.content:
            changed = True
            message = DigestMessage(message.message_id, message.sent_at_ms, content, message.seq)
        messages.append(message)
    if not changed:
        return digest
    values = [getattr(digest, name) for name in _DIGEST_FIELDS]
    values[_DIGEST_FIELDS.index("messages")] = tuple(messages)
    return Digest(*values)


class CardLookup:
    """Looks a digest's cards up through ``platform``, cached, within ``budget_s``."""

    def __init__(
        self,
        platform: ChatPlatform,
        *,
        budget_s: float = 1.5,
        cache_entries: int = 50_000,
        ttl_s: float = 600.0,
        failure_ttl_s: float = 60.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.platform = platform
        self.budget_s = budget_s
        self._failure_ttl_s = failure_ttl_s
        self._timer = timer
        self._found: TTLCache[Hashable, ProductDetails | OrderDetails] = TTLCache(
            cache_entries, ttl_s, timer=timer
        )
        self._unknown: TTLCache[Hashable, bool] = TTLCache(
            cache_entries, failure_ttl_s, timer=timer
        )
        # (card, shop) -> monotonic time until which that shop's lookups are not made.
        self._paused: TTLCache[Hashable, float] = TTLCache(
            cache_entries, max(failure_ttl_s, 3600.0), timer=timer
        )

    async def aclose(self) -> None:
        await self.platform.aclose()

    async def fill(self, digest: Digest) -> Digest:
        """``digest`` with its cards filled in from the cache and from one lookup per card
        kind, waiting at most the budget; never raises for a lookup."""
        product_ids, order_ids = card_ids(digest)
        if not product_ids and not order_ids:
            return digest
        started = self._timer()
        shop = digest.shop_id
        products: dict[str, ProductDetails] = {}
        orders: dict[str, OrderDetails] = {}
        missing_products = self._from_cache(PRODUCT, shop, product_ids, products)
        missing_orders = self._from_cache(ORDER, shop, order_ids, orders)
        calls: list[asyncio.Task[None]] = []
        if missing_products:
            calls.append(
                asyncio.create_task(
                    self._lookup(
                        PRODUCT, shop, missing_products, self.platform.product_details, products
                    )
                )
            )
        if missing_orders:
            calls.append(
                asyncio.create_task(
                    self._lookup(ORDER, shop, missing_orders, self.platform.order_details, orders)
                )
            )
        if calls:
            _done, late = await asyncio.wait(calls, timeout=self.budget_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)  # each records its own timeout as it is cancelled
            CARD_LOOKUP_SECONDS.observe(self._timer() - started)
        return with_details(digest, products, orders)

    def _from_cache(self, card: str, shop: str, ids: list[str], into: dict[str, T]) -> list[str]:
        """Put cached details of ``ids`` into ``into``; the ids to look up (none while the
        shop is paused; ids known to be unknown are not asked again)."""
        missing: list[str] = []
        for item_id in ids:
            found = self._found.get((card, shop, item_id))
            if found is not None:
                into[item_id] = found  # type: ignore[assignment]
                _COUNT[card, "hit"].inc()
            elif (card, shop, item_id) in self._unknown:
                _COUNT[card, "not_found"].inc()
            else:
                missing.append(item_id)
        if missing and self._paused.get((card, shop), 0.0) > self._timer():
            _COUNT[card, "skipped"].inc(len(missing))
            return []
        return missing

    def _pause(self, card: str, shop: str, seconds: float) -> None:
        self._paused[(card, shop)] = self._timer() + max(seconds, self._failure_ttl_s)

    async def _lookup(
        self,
        card: str,
        shop: str,
        ids: list[str],
        call: Callable[[str, list[str]], Awaitable[Mapping[str, T]]],
        into: dict[str, T],
    ) -> None:
        try:
            found = await call(shop, ids)
        except asyncio.CancelledError:
            _COUNT[card, "timeout"].inc(len(ids))
            self._pause(card, shop, 0.0)
            log.info(
                "card lookup past the digest's budget; cards show their ids",
                extra={"card": card, "shop_id": shop, "ids": len(ids)},
            )
            raise
        except Exception as exc:  # noqa: BLE001 - a lookup failure costs only the details
            _COUNT[card, "error"].inc(len(ids))
            retry_after = exc.retry_after_s if isinstance(exc, PlatformError) else None
            self._pause(card, shop, retry_after or 0.0)
            log.warning(
                "card lookup failed; cards show their ids",
                extra={
                    "card": card,
                    "shop_id": shop,
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                },
            )
            return
        for item_id in ids:
            details = found.get(item_id)
            if details is None:
                self._unknown[(card, shop, item_id)] = True
                _COUNT[card, "not_found"].inc()
            else:
                self._found[(card, shop, item_id)] = details
                into[item_id] = details
                _COUNT[card, "miss"].inc()
