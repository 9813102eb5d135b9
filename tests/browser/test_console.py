"""The seller console in Chromium on the real local stack: every flow end to end, axe-core
(no serious or critical violation), 1280 and 375 px wide, keyboard only, JavaScript off.

Debian's /usr/bin/chromium through Playwright's ``executable_path`` (never a browser
download). The stack is the session's (tests/conftest.py: every service a process, the
sandbox and the mail sink in this loop), so the async Playwright API keeps that loop
serving while the browser waits. Screenshots of each page, desktop and phone, go to
``$CONSOLE_SCREENSHOT_DIR`` (``scripts/console-screenshots.sh`` sets docs/screenshots),
else to pytest's temporary directory.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

from ingest.admin_signing import parse_signing_keys, sign
from tests.conftest import WINDOW_S, Stack
from tests.polling import eventually

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page

pytestmark = pytest.mark.integration

DESKTOP, PHONE = 1280, 375
SERIOUS = ("serious", "critical")


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("CONSOLE_SCREENSHOT_DIR")
    path = Path(configured) if configured else tmp_path_factory.mktemp("console-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Console:
    """The stack's ingest as a browser sees it, with the checks every page gets."""

    def __init__(self, stack: Stack, shots: Path) -> None:
        self.stack = stack
        self.url = f"http://127.0.0.1:{stack.ports.ingest}"
        self.shots = shots
        self.operator = stack.env.get("BRIDGE_ADMIN_OPERATOR_TOKEN", "dev-only-operator-token")

    async def check(self, page: Page, name: str) -> None:
        """axe-core on the page, then a screenshot at 1280 and 375 px, neither scrolling
        sideways."""
        from axe_playwright_python.async_playwright import Axe

        results = await Axe().run(page)
        bad = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
        assert not bad, f"{name}: " + "; ".join(
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in bad
        )
        for width in (DESKTOP, PHONE):
            await page.set_viewport_size({"width": width, "height": 900})
            wide = await page.evaluate("document.documentElement.scrollWidth")
            assert wide <= width, f"{name} scrolls sideways at {width} px ({wide} px wide)"
            suffix = "desktop" if width == DESKTOP else "phone"
            await page.screenshot(
                path=str(self.shots / f"console-{name}-{suffix}.png"), full_page=True
            )
        await page.set_viewport_size({"width": DESKTOP, "height": 900})

    def activation_link(self, email: str, nth: int = -1) -> str | None:
        mails = [
            m.message
            for m in self.stack.platforms.sink.mails
            if email in m.rcpt_tos and m.message["X-Bridge-Notice"] == "activation"
        ]
        if len(mails) < (1 if nth == -1 else nth + 1):
            return None
        found = re.search(
            r"(http\S+/console/activate\?token=\S+)", mails[nth].get_body(("plain",)).get_content()
        )
        return found.group(1) if found else None

    async def link_for(self, email: str, nth: int = -1) -> str:
        return await eventually(
            lambda: self.activation_link(email, nth),
            timeout_s=30,
            what=f"activation mail for {email}",
        )

    async def onboard_by_api(self) -> tuple[str, str]:
        shop = str(7_500_000_000_000_000_000 + uuid.uuid4().int % 10**18)
        main = f"main-{shop}@shop.test"
        resp = await self.stack.http.post(
            f"{self.url}/admin/shops",
            headers={"Authorization": f"Bearer {self.operator}"},
            json={"shop_id": shop, "main_account_email": main, "shop_name": "Browser shop"},
        )
        assert resp.status_code == 201, resp.text
        return shop, main

    async def signed_in(self, context: BrowserContext, email: str) -> Page:
        page = await context.new_page()
        await page.goto(await self.link_for(email))
        await page.get_by_role("button", name="Activate and sign in").click()
        await page.wait_for_url(re.compile(r"/settings"))
        return page


@pytest.fixture(scope="module")
def console(stack: Stack, shots: Path) -> Console:
    return Console(stack, shots)


async def test_operator_signs_in_onboards_a_shop_and_sees_its_state(
    chromium: Browser, console: Console
) -> None:
    context = await chromium.new_context(viewport={"width": DESKTOP, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"{console.url}/console/")
        await page.wait_for_url(re.compile(r"/console/sign-in"))
        await console.check(page, "sign-in")
        await page.get_by_label("Token").fill("wrong")
        await page.get_by_role("button", name="Sign in").click()
        await page.locator("#token-error").wait_for()
        await page.get_by_label("Token").fill(console.operator)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(r"/console/shops$"))
        shop = str(7_600_000_000_000_000_000 + uuid.uuid4().int % 10**18)
        await page.get_by_label("Shop id").fill("not an id")
        await page.get_by_role("button", name="Onboard shop").click()
        assert "expected 1-64 ASCII letters" in await page.locator("#shop_id-error").inner_text()
        await page.get_by_label("Shop id").fill(shop)
        await page.get_by_label("Main account email").fill(f"main-{shop}@shop.test")
        await page.get_by_label("Shop name").fill("Sunny Socks")
        await page.get_by_role("button", name="Onboard shop").click()
        await page.wait_for_url(re.compile(r"done=onboarded"))
        row = page.locator("tr", has_text=shop)
        assert "Sunny Socks" in await row.inner_text() and "invited" in await row.inner_text()
        await console.check(page, "shops")
    finally:
        await context.close()


async def test_seller_activates_sets_up_notifications_and_manages_users(
    chromium: Browser, console: Console
) -> None:
    shop, main = await console.onboard_by_api()
    context = await chromium.new_context(viewport={"width": DESKTOP, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(await console.link_for(main))
        assert "Activate your account" in await page.locator("h1").inner_text()
        assert "token" not in (await page.locator("main").inner_text()).lower()
        await console.check(page, "activate")
        await page.get_by_role("button", name="Activate and sign in").click()
        await page.wait_for_url(re.compile(rf"/console/shops/{shop}/settings"))
        await console.check(page, "settings")
        # the destination inbox is behind a pencil; a wrong one is a field message
        inbox = page.get_by_label("Destination inbox", exact=True)
        assert await inbox.get_attribute("readonly") is not None
        assert await inbox.input_value() == main
        await page.get_by_role("button", name="Edit destination inbox").click()
        await inbox.fill("nobody@shop.test")
        await page.get_by_label("Unread message email alerts").check()
        await page.get_by_label("The inbox is").select_option("zendesk")
        assert f"{WINDOW_S:g} seconds" in await page.locator("#kind-hint").inner_text()
        assert (
            await page.get_by_role("link", name="Set-up guide for this inbox").get_attribute("href")
            or ""
        ).endswith("setup-zendesk")
        await page.get_by_role("button", name="Save").click()
        error = page.locator("#destination_email-error")
        assert "is not a user of this shop" in await error.inner_text()
        await console.check(page, "settings-errors")
        inbox = page.get_by_label("Destination inbox", exact=True)
        assert await inbox.get_attribute("readonly") is None  # a field in error stays open
        await inbox.fill(main)
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_url(re.compile(r"done=saved"))
        assert "Settings saved." in await page.get_by_role("status").first.inner_text()
        assert await page.get_by_label("Unread message email alerts").is_checked()
        # users: add, rules as messages, resend, remove
        await page.get_by_role("link", name="Users").click()
        agent = f"agent-{uuid.uuid4().hex[:6]}@shop.test"
        await page.get_by_label("Email", exact=True).fill(agent)
        await page.get_by_label("Role").select_option("cs_agent")
        await page.get_by_role("button", name="Add user").click()
        await page.wait_for_url(re.compile(r"done=added"))
        assert "invited" in await page.locator("tr", has_text=agent).inner_text()
        await page.get_by_label("Email", exact=True).fill(agent)
        await page.get_by_role("button", name="Add user").click()
        assert "already a user" in await page.get_by_role("alert").inner_text()
        await console.check(page, "users")
        first_link = await console.link_for(agent)
        await page.get_by_role("button", name=f"Resend activation to {agent}").click()
        await page.wait_for_url(re.compile(r"done=resent"))
        await console.link_for(agent, 1)
        # the old link now explains itself, with no resend button
        old = await context.new_page()
        await old.goto(first_link)
        assert "A newer link was sent to you" in await old.locator("h1").inner_text()
        await console.check(old, "activate-superseded")
        await old.close()
        await page.get_by_role("button", name=f"Remove {agent}").click()
        await page.wait_for_url(re.compile(r"done=removed"))
        assert await page.locator("tr", has_text=agent).count() == 0
        # API access: a token made on request, shown once
        await page.get_by_role("link", name="API access").click()
        await page.get_by_role("button", name="Create an API token").click()
        token = await page.get_by_label("Your new API token").input_value()
        assert token.startswith("bat1.")
        await console.check(page, "api-access")
    finally:
        await context.close()


async def test_expired_link_explains_itself_and_sends_a_new_one(
    chromium: Browser, console: Console
) -> None:
    _, main = await console.onboard_by_api()
    link = await console.link_for(main)
    token = httpx.URL(link).params["token"]
    # the same link, its expiry in the past, signed with the stack's (development) key
    body = token.split(".")[2]
    claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    keys = parse_signing_keys(
        console.stack.env.get("BRIDGE_ADMIN_TOKEN_KEYS", "1:dev-only-admin-key-change-me")
    )
    expired = sign("act1", {**claims, "x": claims["x"] - 200 * 3_600_000}, keys)
    context = await chromium.new_context(viewport={"width": DESKTOP, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(f"{console.url}/console/activate?{httpx.QueryParams({'token': expired})}")
        assert "This link expired" in await page.locator("h1").inner_text()
        await console.check(page, "activate-expired")
        await page.get_by_role("button", name="Send me a new link").click()
        assert "Check your inbox" in await page.locator("h1").inner_text()
        await console.link_for(main, 1)
    finally:
        await context.close()


async def test_simulation_steps_update_live_until_the_reply_reaches_the_buyer(
    chromium: Browser, console: Console
) -> None:
    shop, main = await console.onboard_by_api()
    context = await chromium.new_context(viewport={"width": DESKTOP, "height": 900})
    try:
        page = await console.signed_in(context, main)
        await page.get_by_label("Unread message email alerts").check()
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_url(re.compile(r"done=saved"))
        await page.get_by_role("link", name="Simulate").click()
        await console.check(page, "simulate")
        await page.get_by_role("button", name="Start a simulation").click()
        await page.wait_for_url(re.compile(r"/simulations/sim-"))
        sim_id = page.url.rsplit("/", 1)[1]
        digest_step = page.locator('[data-step="digest_sent"] .step-state')
        await digest_step.filter(has_text="Done").wait_for(timeout=60_000)  # live, no reload
        await console.check(page, "simulation")
        digests = await eventually(
            lambda: console.stack.mails_for(sim_id), timeout_s=30, what="the simulation's digest"
        )
        n = console.stack.sink_number(str(digests[0]["Message-ID"]))
        resp = await console.stack.http.post(
            f"{console.stack.sink_url}/messages/{n}/reply",
            json={"text": "Simulated answer", "from_address": main},
        )
        assert resp.status_code == 200, resp.text
        last = page.locator('[data-step="delivered_to_chat"] .step-state')
        await last.filter(has_text="Done").wait_for(timeout=60_000)
        assert "the set-up works" in await page.locator("#overall").inner_text()
        await console.check(page, "simulation-done")
    finally:
        await context.close()


async def test_keyboard_only_sign_in_and_settings_save(chromium: Browser, console: Console) -> None:
    shop, main = await console.onboard_by_api()
    context = await chromium.new_context(viewport={"width": DESKTOP, "height": 900})
    page = await context.new_page()
    try:
        await page.goto(await console.link_for(main))
        await page.keyboard.press("Tab")  # skip link
        await page.keyboard.press("Tab")  # the button
        assert await page.evaluate("document.activeElement.textContent") == "Activate and sign in"
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"/settings"))
        seen: list[str] = []
        for _ in range(25):
            await page.keyboard.press("Tab")
            focused: dict[str, Any] = await page.evaluate(
                "({id: document.activeElement.id, text: document.activeElement.textContent})"
            )
            seen.append(focused["id"] or focused["text"])
            if focused["id"] == "alerts_enabled":
                await page.keyboard.press("Space")
            if focused["text"] == "Save":
                await page.keyboard.press("Enter")
                break
        await page.wait_for_url(re.compile(r"done=saved"))
        assert await page.get_by_label("Unread message email alerts").is_checked(), seen
        outline = await page.evaluate(
            "(() => { const b = document.querySelector('.nav a'); b.focus();"
            " return getComputedStyle(b).outlineStyle; })()"
        )
        assert outline != "none"  # focus is visible
    finally:
        await context.close()


async def test_forms_work_with_javascript_off(chromium: Browser, console: Console) -> None:
    shop, main = await console.onboard_by_api()
    context = await chromium.new_context(
        viewport={"width": PHONE, "height": 900}, java_script_enabled=False
    )
    try:
        page = await console.signed_in(context, main)
        inbox = page.get_by_label("Destination inbox", exact=True)
        assert await inbox.get_attribute("readonly") is None  # no pencil needed
        await page.get_by_label("Unread message email alerts").check()
        await page.get_by_label("Region").fill("gb")
        await page.get_by_role("button", name="Save").click()
        await page.wait_for_url(re.compile(r"done=saved"))
        assert await page.get_by_label("Region").input_value() == "gb"
        await page.get_by_role("link", name="Users").click()
        await page.get_by_label("Email", exact=True).fill(f"admin-{uuid.uuid4().hex[:6]}@shop.test")
        await page.get_by_label("Role").select_option("administrator")
        await page.get_by_role("button", name="Add user").click()
        await page.wait_for_url(re.compile(r"done=added"))
        await page.get_by_role("link", name="Simulate").click()
        await page.get_by_role("button", name="Start a simulation").click()
        await page.wait_for_url(re.compile(r"/simulations/sim-"))
        refresh = await page.locator("noscript").count()
        assert refresh >= 1 or "Every step" in await page.locator("#overall").inner_text()
        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(re.compile(r"/console/sign-in"))
        await page.goto(f"{console.url}/console/shops/{shop}/settings")
        assert "/console/sign-in" in page.url
        # signing in again: a link by email
        mark = len(console.stack.platforms.sink.mails)
        await page.get_by_label("Shop id").fill(shop)
        await page.get_by_label("Your email").fill(main)
        await page.get_by_role("button", name="Email me a sign-in link").click()
        await page.get_by_role("status").filter(has_text="sign-in link is on its way").wait_for()

        def link() -> str | None:
            for mail in console.stack.platforms.sink.mails[mark:]:
                if mail.message["X-Bridge-Notice"] == "sign_in" and main in mail.rcpt_tos:
                    found = re.search(
                        r"(http\S+/console/sign-in/link\?token=\S+)",
                        mail.message.get_body(("plain",)).get_content(),
                    )
                    return found.group(1) if found else None
            return None

        await page.goto(await eventually(link, timeout_s=30, what="the sign-in mail"))
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(re.compile(rf"/console/shops/{shop}/settings"))
    finally:
        await context.close()
