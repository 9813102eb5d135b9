"""The digest the mailer sends, in headless Chromium: no horizontal scroll, button in view,
dark mode.

Needs the Debian ``chromium`` package at /usr/bin/chromium (``apt-get install -y chromium``)
and the PyPI ``playwright`` package; Playwright's own browser download is never used. The
page is loaded with ``set_content`` and every network request is answered locally (images
get a large generated PNG), so the test is offline and checks that big pictures shrink.

Screenshots go to ``$DIGEST_SCREENSHOT_DIR`` if set, else to pytest's temporary directory.
"""

from __future__ import annotations

import asyncio
import email
import os
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pytest

from shared.events import ChatContent, ContentKind, Digest, DigestMessage
from tests.chromium import CHROMIUM_ARGS, require_chromium
from tests.mailer_run import sent_by_mailer

if TYPE_CHECKING:  # imported lazily at run time so a missing package fails with a clear message
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

DESKTOP, PHONE = 1280, 375


def png(width: int, height: int) -> bytes:
    """A solid grey PNG of the given size, built without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x99" * width for _ in range(height))  # greyscale, 8-bit
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def digest_with_every_kind() -> Digest:
    contents = (
        ChatContent(text="Hello! Do you ship to Canada?\nThanks \U0001f60a"),
        ChatContent(text="https://example.com/" + "a" * 180),  # one unbreakable "word"
        ChatContent(kind=ContentKind.EMOJI, text="\U0001f44d\U0001f44d"),
        ChatContent(kind=ContentKind.IMAGE, url="https://cdn.example.com/p/big.png"),
        ChatContent(
            kind=ContentKind.PRODUCT_CARD,
            title="Merino wool socks, extra-long name for a product card " * 3,
            price="$12.99",
            url="https://shop.example.com/p/1",
            thumbnail_url="https://cdn.example.com/p/product.png",
        ),
        ChatContent(kind=ContentKind.ORDER_CARD, order_id="5764607523034234567", status="Shipped"),
        ChatContent(  # as the order lookup fills it in
            kind=ContentKind.ORDER_CARD,
            order_id="5764607523034234568",
            status="Awaiting shipment",
            item_names=("Merino wool socks, extra-long, " * 4, "Laundry bag"),
        ),
        ChatContent(kind=ContentKind.PRODUCT_CARD, product_id="1729384756"),  # by id only
        ChatContent(
            kind=ContentKind.RETURN_REFUND_CARD, order_id="5764607523034234569", sku_id="45678"
        ),
        ChatContent(
            kind=ContentKind.LOGISTICS_CARD, order_id="5764607523034234570", package_id="321"
        ),
        ChatContent(kind=ContentKind.COUPON_CARD, coupon_id="7262992004278206762"),
        ChatContent(kind=ContentKind.EMOTICON, text="\U0001f642", title="smile"),
        ChatContent(
            kind=ContentKind.EMOTICON,
            text="\U0001f60d",
            title="loveface",
            url="https://cdn.example.com/e/loveface.png",
        ),
        ChatContent(
            kind=ContentKind.VIDEO,
            url="https://cdn.example.com/v/clip.mp4",
            thumbnail_url="https://cdn.example.com/v/poster.png",
        ),
        ChatContent(kind=ContentKind.STICKER, url="https://cdn.example.com/s/1.png"),
        ChatContent(kind=ContentKind.NOTICE, text="The buyer has confirmed receipt"),
        ChatContent(kind="poll", platform_type="POLL"),
    )
    return Digest(
        digest_id="dg-browser",
        shop_id="shop-7",
        conversation_id="conv-42",
        buyer_id="buyer-9",
        buyer_name="Alexandra Konstantinopoulou-Vandermeer",
        shop_name="Sunny Socks",
        messages=tuple(
            DigestMessage(f"m{i}", 1_764_070_000_000 + i * 60_000, c)
            for i, c in enumerate(contents)
        ),
    )


@pytest.fixture(scope="module")
def digest_html(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The HTML part of the digest as the mailer sends it (``python -m mailer`` to a relay).

    On a thread of its own: Playwright's sync API holds this thread's event loop."""
    digest = replace(digest_with_every_kind(), destination_email="owner@sunnysocks.example")
    sending = sent_by_mailer(
        tmp_path_factory.mktemp("browser-sent"),
        [digest],
        {
            "BRIDGE_CHAT_DEEP_LINK_BASE": "https://seller.example.com/chat",
            "BRIDGE_SETTINGS_LINK_TEMPLATE": "https://seller.example.com/settings",
            # so the pictures' layout is tested (off these hosts a picture is a link)
            "BRIDGE_DIGEST_IMAGE_HOSTS": "cdn.example.com",
        },
    )
    with ThreadPoolExecutor(max_workers=1) as thread:
        raw = thread.submit(asyncio.run, sending).result()[digest.digest_id]
    mail = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(mail, EmailMessage)
    part = mail.get_body(preferencelist=("html",))
    assert part is not None, "the sent digest has no HTML part"
    html: str = part.get_content()
    return html


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the 'playwright' PyPI package is missing: pip install playwright")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("DIGEST_SCREENSHOT_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("digest-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def open_digest(
    browser: Browser, html: str, width: int, color_scheme: Literal["light", "dark"] = "light"
) -> Page:
    page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=color_scheme)
    image = png(1200, 800)  # larger than any slot: it must shrink, not overflow
    page.route(
        "**/*",
        lambda route: route.fulfill(status=200, content_type="image/png", body=image),
    )
    page.set_content(html, wait_until="load")
    return page


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop-1280", "phone-375"])
def test_digest_has_no_horizontal_scroll_and_the_button_is_in_view(
    browser: Browser, digest_html: str, screenshot_dir: Path, width: int
) -> None:
    page = open_digest(browser, digest_html, width)
    try:
        shot = screenshot_dir / f"digest-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.read_bytes().startswith(b"\x89PNG")

        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width, f"horizontal scroll at {width}px: {scroll_width}px wide"

        button = page.get_by_role("link", name="Reply in chat")
        assert button.is_visible()
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, box

        container = page.locator("table.container").first.bounding_box()
        assert container is not None
        assert container["width"] <= 600, container
        if width == PHONE:  # fluid: the card uses the phone's width, not a shrunk 600px
            assert container["width"] >= width - 40, container

        for image in page.locator("img").all():
            img_box = image.bounding_box()
            assert img_box is not None and img_box["x"] + img_box["width"] <= width
    finally:
        page.close()


CARD_HEADINGS = ("Order", "Return/refund request", "Logistics", "Coupon")


@pytest.mark.parametrize("width", [DESKTOP, PHONE], ids=["desktop-1280", "phone-375"])
def test_each_card_kind_is_labelled_and_fits_the_width(
    browser: Browser, digest_html: str, width: int
) -> None:
    page = open_digest(browser, digest_html, width)
    try:
        boxes = page.locator("table.product")
        headings = set()
        for i in range(boxes.count()):
            box = boxes.nth(i)
            assert box.is_visible()
            bounds = box.bounding_box()
            assert bounds is not None and bounds["x"] + bounds["width"] <= width, bounds
            first = box.locator("p").first.inner_text()
            headings.add(first)
        assert set(CARD_HEADINGS) <= headings, headings
        assert page.get_by_text("Product 1729384756").is_visible()
        assert page.get_by_text("Item (SKU): 45678").is_visible()
        assert page.get_by_text("Package: 321").is_visible()
        emoticon = page.locator('img[alt="\U0001f60d"]')
        assert emoticon.is_visible() and (emoticon.bounding_box() or {}).get("width", 99) <= 48
        # only the poll (a type no card renders) is unsupported; the coupon has its card
        assert page.inner_text("body").count("Unsupported message type") == 1
    finally:
        page.close()


def test_dark_mode_rules_apply_after_inlining(
    browser: Browser, digest_html: str, screenshot_dir: Path
) -> None:
    def card_background(scheme: Literal["light", "dark"]) -> str:
        page = open_digest(browser, digest_html, PHONE, color_scheme=scheme)
        try:
            if scheme == "dark":
                page.screenshot(path=str(screenshot_dir / "digest-375-dark.png"), full_page=True)
            return str(
                page.evaluate(
                    "getComputedStyle(document.querySelector('table.card')).backgroundColor"
                )
            )
        finally:
            page.close()

    assert card_background("light") == "rgb(255, 255, 255)"
    assert card_background("dark") == "rgb(30, 31, 36)"
