"""The seller console over HTTP on a real ingest (Tansu, the running services, the mail sink).

Every page calls the admin API's own functions: these tests check the pages say what the
API decides (field errors beside their fields, refusals as messages, roles) and that a
seller gets from an email's link to a signed-in page without ever seeing a token.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from urllib.parse import unquote

import pytest
import pytest_asyncio

from tests.conftest import WINDOW_S, Stack
from tests.console_client import ConsoleUser, text_of
from tests.integration.test_admin_api import HOUR_MS, Admin, serve_admin
from tests.polling import eventually

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def admin(stack: Stack) -> AsyncIterator[Admin]:
    """The ingest in development mode, as the local stack runs it: cookies without
    ``Secure`` over plain http (tests/security/test_console_session.py checks production)."""
    async with serve_admin(stack, dev_mode=True) as served:
        yield served


@pytest_asyncio.fixture
async def browser(admin: Admin) -> AsyncIterator[ConsoleUser]:
    user = ConsoleUser.new(admin)
    try:
        yield user
    finally:
        await user.close()


async def new_shop(admin: Admin) -> tuple[str, str]:
    """A shop the operator onboarded through the API, its main account not yet activated."""
    shop = str(7_300_000_000_000_000_000 + uuid.uuid4().int % 10**18)
    main = f"main-{shop}@shop.test"
    resp = await admin.call(
        "POST",
        "/admin/shops",
        body={"shop_id": shop, "main_account_email": main, "shop_name": "Console shop"},
    )
    assert resp.status_code == 201, resp.text
    return shop, main


async def test_activation_link_ends_signed_in_on_the_settings_page_without_a_token(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await new_shop(admin)
    token = await admin.activation_token(main)
    page = await browser.get("/console/activate", params={"token": token})
    assert page.status_code == 200
    words = text_of(page.text)
    assert "Activate your account" in words and main in words and "Main account" in words
    assert page.headers["referrer-policy"] == "same-origin"  # the token is in the URL
    done = await browser.post("/console/activate", {"token": token})
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/shops/{shop}/settings?done=activated"
    cookie = done.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
    assert "bat1." not in done.text and "api_token" not in done.text
    settings = await browser.get(done.headers["location"])
    assert settings.status_code == 200
    words = text_of(settings.text)
    assert "Your account is active and you are signed in" in words
    assert "Unread message email alerts" in words and f"Signed in as {main}" in words
    # the same link again: used, said in words, with a way on
    again = await browser.get("/console/activate", params={"token": token})
    assert "already active" in text_of(again.text) and "{" not in text_of(again.text)


async def test_expired_link_is_explained_and_a_new_one_can_be_sent_from_the_page(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await new_shop(admin)
    token = await admin.activation_token(main)
    admin.clock.offset_ms += 121 * HOUR_MS
    try:
        page = await browser.get("/console/activate", params={"token": token})
        words = text_of(page.text)
        assert "This link expired" in words and "120 hours" in words
        assert "Send me a new link" in words
        mark = len(admin.stack.platforms.sink.mails)
        sent = await browser.post("/console/activate/resend", {"token": token})
        assert sent.status_code == 200, sent.text
        assert "A new activation link was sent to " + main in text_of(sent.text)
        fresh = await admin.activation_token(main, mark)
        assert fresh != token
        old = await browser.get("/console/activate", params={"token": token})
        assert "A newer link was sent to you" in text_of(old.text)
        assert "Send me a new link" not in text_of(old.text)  # no resend from an old link
    finally:
        admin.clock.offset_ms -= 121 * HOUR_MS


async def test_settings_form_shows_field_errors_saves_nothing_then_saves(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await new_shop(admin)
    await browser.activate(main)
    page = f"/console/shops/{shop}/settings"
    bad = await browser.post(
        page,
        {
            "alerts_enabled": "on",
            "destination_email": "nobody@shop.test",
            "region": "U S",
            "time_zone": "Mars/Olympus",
        },
        csrf_from=page,
    )
    assert bad.status_code == 422
    words = text_of(bad.text)
    assert "Nothing was saved" in words
    assert "expected a region code such as 'us' or 'gb'" in words
    assert "nobody@shop.test is not a user of this shop" in words
    assert 'id="region" name="region" value="U S"' in bad.text  # what was typed stays
    assert 'id="time_zone" name="time_zone" value="Mars/Olympus"' in bad.text
    assert 'id="time_zone-error"' in bad.text
    api = (await admin.call("GET", f"/admin/shops/{shop}/settings")).json()
    assert api["alerts_enabled"] is False and api["region"] == "us"
    good = await browser.post(
        page,
        {
            "alerts_enabled": "on",
            "destination_email": main,
            "destination_kind": "zendesk",
            "region": "gb",
            "time_zone": "Asia/Jakarta",
        },
        csrf_from=page,
    )
    assert good.status_code == 303 and good.headers["location"].endswith("?done=saved")
    shown = text_of((await browser.get(good.headers["location"])).text)
    assert "Settings saved." in shown and f"Digests wait {WINDOW_S:g} seconds" in shown
    api = (await admin.call("GET", f"/admin/shops/{shop}/settings")).json()
    assert api["alerts_enabled"] is True and api["destination_kind"] == "zendesk"
    assert api["region"] == "gb" and api["destination_is_main_account"] is True
    assert api["time_zone"] == "Asia/Jakarta"
    # An empty zone follows the region again, and the form says which zone that is.
    await browser.post(
        page,
        {"alerts_enabled": "on", "destination_email": main, "region": "gb", "time_zone": ""},
        csrf_from=page,
    )
    assert (await admin.call("GET", f"/admin/shops/{shop}/settings")).json()[
        "time_zone"
    ] == "Europe/London"
    assert "digests now show times in Europe/London" in text_of((await browser.get(page)).text)


async def test_agent_sees_settings_read_only_with_the_reason_and_cannot_post(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await admin.onboard("agent-view")
    mark = len(admin.stack.platforms.sink.mails)
    agent = await admin.add_user(shop, main, "cs_agent", activate=False)
    await browser.activate(agent, mark)
    page = f"/console/shops/{shop}/settings"
    shown = await browser.get(page)
    assert "<fieldset disabled" in shown.text
    assert "role 'cs_agent' may not change notification settings" in text_of(shown.text)
    refused = await browser.post(page, {"alerts_enabled": ""}, csrf_from=page)
    assert refused.status_code == 403
    assert (await admin.call("GET", f"/admin/shops/{shop}/settings")).json()["alerts_enabled"]
    users = text_of((await browser.get(f"/console/shops/{shop}/users")).text)
    assert "may not add users" in users and "Add a user" not in users


async def test_user_management_shows_the_api_rules_as_messages(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await new_shop(admin)
    await browser.activate(main)
    page = f"/console/shops/{shop}/users"
    email = f"agent-{uuid.uuid4().hex[:6]}@shop.test"
    added = await browser.post(f"{page}/add", {"email": email, "role": "cs_agent"}, csrf_from=page)
    assert added.status_code == 303, added.text
    listing = text_of((await browser.get(page)).text)
    assert email in listing and "Customer-service agent" in listing and "invited" in listing
    again = await browser.post(f"{page}/add", {"email": email, "role": "cs_agent"}, csrf_from=page)
    assert again.status_code == 409
    assert f"{email} is already a user of shop {shop}" in text_of(again.text)
    bad = await browser.post(
        f"{page}/add", {"email": "not-an-address", "role": "owner"}, csrf_from=page
    )
    assert bad.status_code == 422
    assert "is not an email address" in text_of(bad.text)
    assert "expected 'administrator' or 'cs_agent'" in text_of(bad.text)
    main_gone = await browser.post(f"{page}/remove", {"email": main}, csrf_from=page)
    assert main_gone.status_code == 422
    assert "the main account cannot be removed" in text_of(main_gone.text)
    mark = len(admin.stack.platforms.sink.mails)
    resent = await browser.post(f"{page}/resend", {"email": email}, csrf_from=page)
    assert resent.status_code == 303
    await admin.activation_token(email, mark)  # the new mail arrived
    removed = await browser.post(f"{page}/remove", {"email": email}, csrf_from=page)
    assert removed.status_code == 303
    assert email not in text_of((await browser.get(page)).text)


async def test_settings_link_from_a_digest_asks_to_sign_in_then_opens_the_page(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    """#17 point 8: the footer / List-Unsubscribe link opens the console, not a 401 JSON."""
    shop, main = await admin.onboard("link")
    conversation = str(5_100_000_000_000_000 + uuid.uuid4().int % 10**15)
    await admin.stack.buyer_says(shop, conversation, "Hello?")
    digest = (await eventually(lambda: admin.stack.mails_for(conversation), timeout_s=30))[0]
    link = str(digest["List-Unsubscribe"]).strip("<>")
    assert link.endswith(f"/console/shops/{shop}/settings"), link
    assert f'href="{link}"' in digest.get_body(("html",)).get_content()  # the footer link
    path = "/console/" + link.split("/console/", 1)[1]
    first = await browser.get(path)
    assert first.status_code == 303
    assert first.headers["location"].startswith("/console/sign-in?next=")
    sign_in = await browser.get(first.headers["location"])
    assert sign_in.status_code == 200 and "text/html" in sign_in.headers["content-type"]
    signed = await browser.post("/console/sign-in", {"token": admin.tokens[main], "next": path})
    assert signed.status_code == 303 and signed.headers["location"] == path
    shown = await browser.get(path)
    assert shown.status_code == 200 and "Unread message email alerts" in text_of(shown.text)


async def test_operator_lists_and_onboards_shops(admin: Admin, browser: ConsoleUser) -> None:
    signed = await browser.post("/console/sign-in", {"token": "test-operator-token"})
    assert signed.status_code == 303 and signed.headers["location"] == "/console/shops"
    shop = str(7_400_000_000_000_000_000 + uuid.uuid4().int % 10**18)
    bad = await browser.post(
        "/console/shops", {"shop_id": "a b", "main_account_email": "x"}, csrf_from="/console/shops"
    )
    assert bad.status_code == 422
    assert "expected 1-64 ASCII letters" in text_of(bad.text)
    made = await browser.post(
        "/console/shops",
        {"shop_id": shop, "main_account_email": f"m-{shop}@shop.test", "shop_name": "Op shop"},
        csrf_from="/console/shops",
    )
    assert made.status_code == 303
    listing = await admin.call("GET", "/admin/shops?limit=500")
    assert listing.status_code == 200
    assert shop in [s["shop_id"] for s in listing.json()["shops"]]
    page = text_of((await browser.get(f"/console/shops?after={int(shop) - 1}")).text)
    assert "Op shop" in page and f"m-{shop}@shop.test" in page and "invited" in page
    assert (await admin.call("GET", "/admin/shops?limit=0")).status_code == 422


async def test_simulation_page_shows_each_step_and_its_json_for_polling(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await admin.onboard("simulate")
    signed = await browser.post("/console/sign-in", {"token": admin.tokens[main]})
    assert signed.status_code == 303
    page = f"/console/shops/{shop}/simulations"
    started = await browser.post(page, {}, csrf_from=page)
    assert started.status_code == 303, started.text
    status_page = started.headers["location"]
    shown = text_of((await browser.get(status_page)).text)
    for step in (
        "Buyer message sent",
        "Digest delivered",
        "Reply received",
        "Delivered to the buyer",
    ):
        assert step in shown

    async def accepted() -> bool:
        status = (await browser.get(status_page, headers={"Accept": "application/json"})).json()
        return status["steps"][0]["state"] == "ok"

    await eventually(accepted, timeout_s=30, what="the simulated buyer message accepted")


async def test_an_activated_user_signs_in_again_with_an_emailed_link(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await admin.onboard("sign-in-link")
    generic = "If that address is an activated user of the shop, a sign-in link is on its way"
    mark = len(admin.stack.platforms.sink.mails)
    stranger = await browser.post(
        "/console/sign-in/email", {"shop_id": shop, "email": "nobody@shop.test"}
    )
    asked = await browser.post("/console/sign-in/email", {"shop_id": shop, "email": main})
    assert generic in text_of(stranger.text) and generic in text_of(asked.text)

    def link() -> str | None:
        for mail in admin.stack.platforms.sink.mails[mark:]:
            if mail.message["X-Bridge-Notice"] == "sign_in":
                assert mail.rcpt_tos == [main]  # never to the address someone typed
                text = mail.message.get_body(("plain",)).get_content()
                return text.split("/console/sign-in/link?token=", 1)[1].split()[0]
        return None

    token = await eventually(link, timeout_s=30, what="the sign-in mail")
    page = await browser.get(f"/console/sign-in/link?token={token}")
    assert page.status_code == 200 and "Sign in" in text_of(page.text)
    assert browser.http.cookies.get("bridge_console") is None  # a GET signs nobody in
    done = await browser.post("/console/sign-in/link", {"token": unquote(token)})
    assert done.status_code == 303
    assert done.headers["location"] == f"/console/shops/{shop}/settings"
    shown = await browser.get(done.headers["location"])
    assert shown.status_code == 200 and f"Signed in as {main}" in text_of(shown.text)
    broken = await ConsoleUser.new(admin).post("/console/sign-in/link", {"token": "sil1.x.y.z"})
    assert broken.status_code == 410 and "does not work" in text_of(broken.text)


async def test_a_signed_in_user_creates_an_api_token_shown_once_that_the_api_accepts(
    admin: Admin,
    browser: ConsoleUser,
) -> None:
    shop, main = await new_shop(admin)
    await browser.activate(main)
    page = f"/console/shops/{shop}/api-token"
    before = await browser.get(page)
    assert before.status_code == 200 and "Create an API token" in text_of(before.text)
    assert 'id="api_token"' not in before.text
    made = await browser.post(page, {"go": "1"}, csrf_from=page)
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    token = made.text.split('id="api_token" class="token" value="', 1)[1].split('"', 1)[0]
    api = await admin.http.get(
        f"{admin.url}/admin/shops/{shop}/settings", headers={"Authorization": f"Bearer {token}"}
    )
    assert api.status_code == 200 and api.json()["shop_id"] == shop
    again = await browser.get(page)  # shown on the answer to the POST only
    assert token not in again.text
    # Without the form's CSRF token nothing is minted.
    forged = await browser.post(page, {"anything": "1"})
    assert forged.status_code == 403 and 'id="api_token"' not in forged.text
