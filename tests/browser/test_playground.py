"""The local playground (devstack/playground.py) and the mail sink's reply page, in Debian's
Chromium, on the real local stack: buyer messages in, a digest in the seller's pane, a reply
as a helpdesk or mail client writes it back in the buyer's chat in parts and in order, an
out-of-office answer that never reaches the buyer, and the sink answering as the shop's
activated users.

Playwright drives /usr/bin/chromium (``executable_path``; no browser download). With
``PLAYGROUND_SCREENSHOT_DIR`` set (``scripts/screenshots.sh`` sets ``docs/screenshots``),
the playground is photographed at desktop and phone width.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from axe_playwright_python.async_playwright import Axe

from devstack.broker import free_port
from devstack.demo_shop import DEMO_AGENT, DEMO_SHOP_ID, DemoShop, onboard_demo_shop
from devstack.playground import PlaygroundLinks, serve_playground
from tests.conftest import SETTINGS_APPLY_S, WINDOW_S, Stack
from tests.polling import eventually

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = pytest.mark.integration

DESKTOP, PHONE = (1280, 900), (375, 800)
DIGEST_WAIT_MS = (WINDOW_S + 25) * 1000
# Longer than one chat message (2,000 characters): the buyer gets it in two parts.
LONG_ANSWER = (
    "Yes, the merino socks are in stock in every size and ship tomorrow morning. " * 30
).strip()


def conversation() -> str:
    return str(576_460_602_000_000_000 + uuid.uuid4().int % 10**12)


@pytest_asyncio.fixture(scope="module")
async def demo(stack: Stack) -> DemoShop:
    shop = await onboard_demo_shop(
        f"http://127.0.0.1:{stack.ports.ingest}", stack.env, stack.platforms.sink
    )
    await asyncio.sleep(SETTINGS_APPLY_S)
    return shop


@pytest_asyncio.fixture(scope="module")
async def playground(stack: Stack, demo: DemoShop) -> AsyncIterator[str]:
    port = free_port()
    links = PlaygroundLinks(sink=stack.sink_url, sandbox=stack.sandbox_url, ingest="")
    server, task = await serve_playground(
        port, sink=stack.platforms.sink, env=stack.env, ports=stack.ports, links=links
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture(scope="module")
def screenshot_dir() -> Path | None:
    """Where the playground's pictures go (``PLAYGROUND_SCREENSHOT_DIR``), or None."""
    where = os.environ.get("PLAYGROUND_SCREENSHOT_DIR")
    if not where:
        return None
    Path(where).mkdir(parents=True, exist_ok=True)
    return Path(where)


@pytest.fixture(scope="module")
def browser(chromium: Browser) -> Browser:
    return chromium


async def open_conversation(browser: Browser, url: str, conv: str) -> Page:
    page = await browser.new_page(viewport={"width": DESKTOP[0], "height": DESKTOP[1]})
    await page.goto(f"{url}/?shop={DEMO_SHOP_ID}&conversation={conv}")
    return page


async def screenshot(page: Page, where: Path | None, name: str) -> None:
    """The whole page at each width. The viewport is made as tall as the page instead of a
    full-page capture: Chromium leaves a sandboxed frame outside the viewport blank."""
    if where is None:
        return
    for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size({"width": width, "height": height})
        tall = await page.evaluate("document.documentElement.scrollHeight")
        await page.set_viewport_size({"width": width, "height": max(height, int(tall))})
        for frame in page.frames:
            await frame.wait_for_load_state()
        await page.screenshot(path=str(where / f"{name}-{label}.png"))
    await page.set_viewport_size({"width": DESKTOP[0], "height": DESKTOP[1]})


async def test_buyer_messages_become_a_digest_and_a_zendesk_reply_reaches_the_buyer_in_order(
    stack: Stack, playground: str, browser: Browser, screenshot_dir: Path | None
) -> None:
    conv = conversation()
    page = await open_conversation(browser, playground, conv)
    try:
        await page.get_by_label("Message").fill("Hi! Are these in stock? 🧦")
        await page.get_by_role("button", name="Send text").click()
        await page.get_by_role("button", name="Product card").click()
        chat = page.locator("#chat li.buyer")
        await chat.nth(1).wait_for()
        assert "Are these in stock? 🧦" in await chat.nth(0).inner_text()
        assert "[product card]" in await chat.nth(1).inner_text()

        mail = page.locator("#mails article.mail")
        await mail.first.wait_for(timeout=DIGEST_WAIT_MS)
        head = await mail.first.locator(".mail-head").inner_text()
        assert DEMO_AGENT in head and "A new message from TikTok Shop customer Ana" in head
        frame = mail.first.locator("iframe")
        assert await frame.get_attribute("sandbox") == ""
        digest_text = await page.frame_locator("#mails iframe").first.locator("body").inner_text()
        assert "Are these in stock?" in digest_text and "Merino wool socks" in digest_text

        await page.get_by_label("Answer as").select_option(DEMO_AGENT)
        await page.get_by_label("Written with").select_option("zendesk")
        await page.get_by_label("Reply", exact=True).fill(LONG_ANSWER)
        await page.get_by_role("button", name="Send reply").click()
        verdict = page.locator("#verdict")
        await verdict.filter(has_text="Delivered: 2 chat message(s)").wait_for(timeout=30_000)

        seller = page.locator("#chat li.seller")
        await seller.nth(1).wait_for(timeout=30_000)
        labels = [await s.locator(".who").inner_text() for s in await seller.all()]
        assert [label.split(" · ")[1] for label in labels] == ["part 1", "part 2"]
        received = await stack.buyer_view(conv)
        texts = [str(r["content"]["content"]) for r in received]  # type: ignore[index]
        assert len(texts) == 2 and all(len(t) <= 2000 for t in texts)
        assert " ".join(texts).split() == LONG_ANSWER.split()

        timeline = await page.locator("#timeline").inner_text()
        for topic in ("chat.events", "mail.digests", "mail.outcomes", "mail.inbound"):
            assert topic in timeline
        await page.locator("#timeline li[data-topic='chat.deliveries']").first.wait_for()
        await screenshot(page, screenshot_dir, "playground")
        # The page's own controls (the digest inside the frame is the mailer's, tested apart).
        axe = await Axe().run(page, context={"exclude": [["#mails iframe"]]})
        assert axe.violations_count == 0, axe.generate_report()
    finally:
        await page.close()


async def test_out_of_office_answer_never_reaches_the_buyer_and_the_timeline_says_why(
    stack: Stack, playground: str, browser: Browser
) -> None:
    conv = conversation()
    page = await open_conversation(browser, playground, conv)
    try:
        await page.get_by_label("Message").fill("Where is my parcel?")
        await page.get_by_role("button", name="Send text").click()
        await page.locator("#mails article.mail").first.wait_for(timeout=DIGEST_WAIT_MS)
        await page.get_by_role("button", name="Out-of-office auto-reply").click()
        verdict = page.locator("#verdict")
        await verdict.filter(has_text="Not delivered to the buyer (auto_reply)").wait_for(
            timeout=30_000
        )
        why = page.locator("#timeline li[data-topic='mail.inbound.results']")
        await why.first.wait_for(timeout=10_000)
        assert "auto_reply" in await why.first.inner_text()
        assert await stack.buyer_view(conv) == []
        assert await page.locator("#timeline li[data-topic='chat.replies']").count() == 0
        assert await page.locator("#chat li.seller").count() == 0
    finally:
        await page.close()


async def test_sink_replies_as_the_chosen_activated_user_and_shows_a_refusal_as_refused(
    stack: Stack, demo: DemoShop, browser: Browser
) -> None:
    """An onboarded shop whose main account is not the sink's default sender: the sink
    answers as one of the shop's activated users, and a stranger's refusal is shown."""
    shop = str(7_494_049_000_000_000_000 + uuid.uuid4().int % 10**12)
    owner = f"owner-{shop[-6:]}@shop.test"
    await onboard_demo_shop(
        f"http://127.0.0.1:{stack.ports.ingest}",
        {**stack.env, "BRIDGE_DEFAULT_DESTINATION_EMAIL": owner},
        stack.platforms.sink,
        shop_id=shop,
    )
    await asyncio.sleep(SETTINGS_APPLY_S)
    conv = conversation()
    await stack.buyer_says(shop, conv, "Do you gift-wrap?")
    digest = (await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 20))[0]
    n = stack.sink_number(digest["Message-ID"])

    page = await browser.new_page()
    try:
        await page.goto(f"{stack.sink_url}/messages/{n}")
        options = await page.get_by_label("Answer as").locator("option").all_inner_texts()
        assert options == [owner, DEMO_AGENT]  # the shop's activated users, main account first
        await page.get_by_label("reply to the buyer").fill("Yes, for free 🎁")
        await page.get_by_role("button", name="Reply").click()
        said = await page.locator("strong").inner_text()
        assert said == "Delivered: 1 chat message(s) on their way to the buyer.", said
    finally:
        await page.close()
    received = await eventually(lambda: stack.buyer_view(conv), timeout_s=30)
    assert [r["content"]["content"] for r in received] == ["Yes, for free 🎁"]  # type: ignore[index]

    refused = await stack.http.post(
        f"{stack.sink_url}/messages/{n}/reply-form",
        data={"text": "hello", "from_address": "stranger@shop.test"},
        timeout=40,
    )
    assert "Not delivered to the buyer (rejected)" in refused.text, refused.text
    assert "not a registered, activated user" in refused.text
    assert "Reply sent" not in refused.text
