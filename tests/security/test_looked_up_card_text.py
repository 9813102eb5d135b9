"""Finding 9 (and rule 1) for looked-up cards: a product name or order item from the
platform's product and order APIs is outside text. It is escaped like buyer text, never
becomes a header, and its picture shows inline only from the platform's image hosts."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy

from mailer.card_lookup import with_details
from mailer.compose import ComposeContext, compose_digest_bytes
from mailer.render import DigestLinks, render_digest
from shared.chat_platform.base import OrderDetails, ProductDetails
from shared.events import ChatContent, ContentKind, Digest, DigestMessage

LINKS = DigestLinks(
    "https://seller.example.com/chat/1",
    "https://seller.example.com/settings",
    "TikTok Shop",
    image_hosts=frozenset({"cdn.example.com"}),
)
HOSTILE = 'Socks\r\nBcc: victim@example.net\r\n\r\n<img src="https://tracker.example.net/p.gif">'


def cards() -> Digest:
    return Digest(
        "dg-sec",
        "shop-7",
        "conv-1",
        "b",
        "Ana",
        (
            DigestMessage("m1", 1, ChatContent(kind=ContentKind.PRODUCT_CARD, product_id="1")),
            DigestMessage("m2", 2, ChatContent(kind=ContentKind.ORDER_CARD, order_id="5")),
        ),
    )


def filled() -> Digest:
    return with_details(
        cards(),
        {"1": ProductDetails("1", HOSTILE, "https://tracker.example.net/p.gif", "1 USD")},
        {"5": OrderDetails("5", "Shipped\r\nX-Evil: 1", (HOSTILE,))},
    )


def test_a_looked_up_product_name_cannot_add_a_header_or_markup() -> None:
    ctx = ComposeContext(
        "TikTok Shop",
        "tok@chat-seller-us.bridge.example",
        "owner@sunnysocks.example",
        "digest.bridge.example",
        LINKS,
        LINKS.settings_url,
        datetime(2026, 12, 2, tzinfo=UTC),
    )
    raw = compose_digest_bytes(filled(), ctx)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head and b"X-Evil" not in head
    message = email.message_from_bytes(raw, policy=policy.default)
    assert message["Bcc"] is None and message["X-Evil"] is None
    html = render_digest(filled(), LINKS).html
    # the name's markup is text, the picture is not fetched or linked
    assert not re.search(r"<img[^>]+tracker\.example\.net", html)
    assert 'href="https://tracker' not in html
    assert "&lt;img src=" in html


def test_a_looked_up_picture_off_the_image_hosts_is_never_an_img() -> None:
    digest = with_details(
        cards(), {"1": ProductDetails("1", "Socks", "https://tracker.example.net/p.gif")}, {}
    )
    html = render_digest(digest, LINKS).html
    assert "<img" not in html.split("</style>", 1)[1]
    assert "Socks" in html
