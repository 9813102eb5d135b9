"""TikTok Shop product and order answers -> what a card shows. Pure.

Get Product (``GET /product/202309/products/{product_id}``) answers one product:
``title``, ``main_images[].urls``/``thumb_urls``, ``skus[].price`` (``sale_price`` or
``tax_exclusive_price`` with ``currency``). Get Order Detail (``GET /order/202309/orders``,
``ids`` up to 50) answers ``orders[]`` with ``id``, ``status`` and ``line_items[]`` (one per
unit, each with ``product_name``). Sources and what is our assumption:
docs/tiktok-shop-contract.md s.7. Every field read is checked (payload_fields): names are
outside text, bounded, and rendered escaped like buyer text; picture URLs are http(s)
and go through the digest's image-host policy.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from shared.chat_platform import payload_fields as fields
from shared.chat_platform.base import OrderDetails, PayloadError, ProductDetails

__all__ = ["ORDER_IDS_PER_CALL", "order_details_from_platform", "product_from_platform"]

ORDER_IDS_PER_CALL = 50  # Get Order Detail: "ids" holds at most 50 order ids
ITEM_NAMES_SHOWN = 5  # an order card lists at most this many distinct items


def _first_url(images: Any, where: str) -> str:
    if not isinstance(images, list):
        return ""
    for image in images:
        if not isinstance(image, dict):
            continue
        for key in ("thumb_urls", "urls"):
            urls = image.get(key)
            if isinstance(urls, list) and urls and isinstance(urls[0], str):
                return fields.url_field({"url": urls[0]}, "url", f"{where}.{key}[0]")
    return ""


def _price(skus: Any, where: str) -> str:
    """ "12.90 USD", or "9.90-12.90 USD" when the SKUs differ; "" when none is readable."""
    amounts: list[Decimal] = []
    currency = ""
    for sku in skus if isinstance(skus, list) else []:
        price = sku.get("price") if isinstance(sku, dict) else None
        if not isinstance(price, dict):
            continue
        raw = fields.text_field(price, "sale_price", where, max_chars=32) or fields.text_field(
            price, "tax_exclusive_price", where, max_chars=32
        )
        try:
            amount = Decimal(raw)
        except InvalidOperation:
            continue
        if not amount.is_finite():
            continue
        amounts.append(amount)
        currency = currency or fields.text_field(price, "currency", where, max_chars=8)
    if not amounts:
        return ""
    low, high = min(amounts), max(amounts)
    shown = f"{low}" if low == high else f"{low}-{high}"
    return f"{shown} {currency}".strip()


def product_from_platform(data: dict[str, Any], product_id: str) -> ProductDetails | None:
    """One Get Product ``data``; None when it names no product. Raises PayloadError on a
    field out of range (the caller treats the product as unknown)."""
    where = "data"
    name = fields.text_field(data, "title", where, max_chars=fields.LABEL_MAX_CHARS).strip()
    if not name:
        return None
    return ProductDetails(
        product_id=product_id,
        name=name,
        image_url=_first_url(data.get("main_images"), f"{where}.main_images"),
        price=_price(data.get("skus"), f"{where}.skus[].price"),
        url=fields.url_field(data, "product_url", where),
    )


def readable_status(status: str) -> str:
    """``AWAITING_SHIPMENT`` -> ``Awaiting shipment`` (the platform's enum, for people)."""
    words = status.strip().replace("_", " ").lower()
    return words[:1].upper() + words[1:]


def order_details_from_platform(data: dict[str, Any]) -> dict[str, OrderDetails]:
    """Get Order Detail ``data`` -> {order id: details}; an order with a bad field is left
    out (its card shows the id), never the whole answer."""
    found: dict[str, OrderDetails] = {}
    orders = data.get("orders")
    for i, order in enumerate(orders if isinstance(orders, list) else []):
        where = f"data.orders[{i}]"
        if not isinstance(order, dict):
            continue
        try:
            order_id = fields.id_field(order, "id", where)
            status = fields.text_field(order, "status", where, max_chars=fields.NAME_MAX_CHARS)
            names: list[str] = []
            items = order.get("line_items")
            for j, item in enumerate(items if isinstance(items, list) else []):
                if not isinstance(item, dict):
                    continue
                name = fields.text_field(
                    item,
                    "product_name",
                    f"{where}.line_items[{j}]",
                    max_chars=fields.LABEL_MAX_CHARS,
                ).strip()
                if name and name not in names:  # one line item per unit: name each once
                    names.append(name)
        except PayloadError:
            continue
        found[order_id] = OrderDetails(
            order_id, readable_status(status), tuple(names[:ITEM_NAMES_SHOWN])
        )
    return found
