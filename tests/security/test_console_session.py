"""The seller console's session: cookie flags, no fixation, sign-out, revocation, no
open redirect; on a real ingest over HTTP (the stack's broker, sink and sandbox)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from ingest.console.session import COOKIE_NAME
from tests.conftest import Stack
from tests.console_client import ConsoleUser, text_of
from tests.integration.test_admin_api import Admin, serve_admin

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def admin(stack: Stack) -> AsyncIterator[Admin]:
    async with serve_admin(stack, dev_mode=True) as served:
        yield served


async def signed_in_manager(admin: Admin) -> tuple[str, str, ConsoleUser]:
    shop, main = await admin.onboard(f"session-{uuid.uuid4().hex[:4]}")
    user = ConsoleUser.new(admin)
    resp = await user.post("/console/sign-in", {"token": admin.tokens[main]})
    assert resp.status_code == 303, resp.text
    return shop, main, user


async def test_session_cookie_is_secure_httponly_and_lax_outside_development_mode(
    stack: Stack,
) -> None:
    async with serve_admin(stack) as production:  # dev_mode off, as in production
        user = ConsoleUser.new(production)
        try:
            resp = await user.post("/console/sign-in", {"token": "test-operator-token"})
            assert resp.status_code == 303
            cookie = resp.headers["set-cookie"].lower()
            for flag in ("secure", "httponly", "samesite=lax", "path=/console"):
                assert flag in cookie, cookie
        finally:
            await user.close()


async def test_each_sign_in_gets_a_new_session_and_a_planted_cookie_is_not_kept(
    admin: Admin,
) -> None:
    shop, main, user = await signed_in_manager(admin)
    try:
        first = user.http.cookies[COOKIE_NAME]
        user.http.cookies.set(COOKIE_NAME, "cs1.1.planted.value", path="/console")
        page = await user.get(f"/console/shops/{shop}/settings")
        assert page.status_code == 303  # a cookie we did not sign opens nothing
        again = await user.post("/console/sign-in", {"token": admin.tokens[main]})
        assert again.status_code == 303
        second = again.cookies[COOKIE_NAME]
        assert second != first and "planted" not in second
    finally:
        await user.close()


async def test_signed_out_session_opens_nothing_even_if_the_cookie_is_replayed(
    admin: Admin,
) -> None:
    shop, _, user = await signed_in_manager(admin)
    try:
        cookie = user.http.cookies[COOKIE_NAME]
        page = f"/console/shops/{shop}/settings"
        out = await user.post("/console/sign-out", {}, csrf_from=page)
        assert out.status_code == 303 and out.headers["location"].startswith("/console/sign-in")
        assert 'bridge_console=""' in out.headers["set-cookie"] or "max-age=0" in (
            out.headers["set-cookie"].lower()
        )
        user.http.cookies.set(COOKIE_NAME, cookie, path="/console")
        assert (await user.get(page)).status_code == 303
    finally:
        await user.close()


async def test_removing_a_user_ends_their_console_session_at_once(admin: Admin) -> None:
    shop, main = await admin.onboard("revoke")
    mark = len(admin.stack.platforms.sink.mails)
    agent = await admin.add_user(shop, main, "administrator", activate=False)
    user = ConsoleUser.new(admin)
    try:
        await user.activate(agent, mark)
        page = f"/console/shops/{shop}/settings"
        assert (await user.get(page)).status_code == 200
        resp = await admin.call("DELETE", f"/admin/shops/{shop}/users/{agent}", main)
        assert resp.status_code == 204, resp.text
        assert (await user.get(page)).status_code == 303
    finally:
        await user.close()


async def test_session_cookie_is_not_an_api_token(admin: Admin) -> None:
    shop, _, user = await signed_in_manager(admin)
    try:
        cookie = user.http.cookies[COOKIE_NAME]
        resp = await admin.http.get(
            f"{admin.url}/admin/shops/{shop}/settings",
            headers={"Authorization": f"Bearer {cookie}"},
        )
        assert resp.status_code == 401 and "not a bat1 token" in resp.json()["error"]
    finally:
        await user.close()


@pytest.mark.parametrize(
    "next_page", ["https://evil.example/x", "//evil.example/x", "/\\evil.example", "/admin/x"]
)
async def test_sign_in_never_redirects_off_the_console(admin: Admin, next_page: str) -> None:
    user = ConsoleUser.new(admin)
    try:
        resp = await user.post(
            "/console/sign-in", {"token": "test-operator-token", "next": next_page}
        )
        assert resp.status_code == 303
        assert resp.headers["location"] == "/console/shops"
    finally:
        await user.close()


async def test_a_wrong_token_is_refused_on_the_form_with_the_reason(admin: Admin) -> None:
    user = ConsoleUser.new(admin)
    try:
        resp = await user.post("/console/sign-in", {"token": "bat1.nope"})
        assert resp.status_code == 401 and COOKIE_NAME not in resp.headers.get("set-cookie", "")
        assert "API token not valid" in text_of(resp.text)
    finally:
        await user.close()
