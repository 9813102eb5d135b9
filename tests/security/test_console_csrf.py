"""Console forms are CSRF-protected: a post without this session's token, or from another
site, is refused with a page saying why, and changes nothing (real ingest over HTTP)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conftest import Stack
from tests.console_client import ConsoleUser, text_of
from tests.integration.test_admin_api import Admin, serve_admin

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def admin(stack: Stack) -> AsyncIterator[Admin]:
    async with serve_admin(stack, dev_mode=True) as served:
        yield served


async def manager(admin: Admin) -> tuple[str, ConsoleUser]:
    shop, main = await admin.onboard("csrf")
    user = ConsoleUser.new(admin)
    assert (await user.post("/console/sign-in", {"token": admin.tokens[main]})).status_code == 303
    return shop, user


async def alerts(admin: Admin, shop: str) -> bool:
    resp = await admin.call("GET", f"/admin/shops/{shop}/settings")
    return bool(resp.json()["alerts_enabled"])


async def test_settings_post_without_the_csrf_token_is_refused_and_changes_nothing(
    admin: Admin,
) -> None:
    shop, user = await manager(admin)
    try:
        page = f"/console/shops/{shop}/settings"
        resp = await user.post(page, {"destination_email": ""})  # alerts box unticked: off
        assert resp.status_code == 403
        assert "this form expired or was not sent from this page" in text_of(resp.text)
        assert await alerts(admin, shop)
    finally:
        await user.close()


async def test_csrf_token_of_another_session_is_refused(admin: Admin) -> None:
    shop, user = await manager(admin)
    other_shop, other = await manager(admin)
    try:
        page = f"/console/shops/{shop}/settings"
        theirs = await other.csrf(f"/console/shops/{other_shop}/settings")
        resp = await user.post(page, {"destination_email": "", "csrf_token": theirs})
        assert resp.status_code == 403 and await alerts(admin, shop)
    finally:
        await user.close()
        await other.close()


async def test_post_from_another_site_is_refused_even_with_a_valid_token(admin: Admin) -> None:
    shop, user = await manager(admin)
    try:
        page = f"/console/shops/{shop}/settings"
        resp = await user.post(
            page, {"destination_email": ""}, csrf_from=page, origin="https://evil.example"
        )
        assert resp.status_code == 403 and "another site" in text_of(resp.text)
        assert await alerts(admin, shop)
    finally:
        await user.close()


async def test_every_console_form_carries_the_csrf_token(admin: Admin) -> None:
    shop, user = await manager(admin)
    try:
        for page in ("settings", "users", "simulations"):
            body = (await user.get(f"/console/shops/{shop}/{page}")).text
            forms = re.findall(r"<form\b.*?</form>", body, flags=re.S)
            assert forms, page
            for form in forms:
                assert 'name="csrf_token"' in form, (page, form[:200])
    finally:
        await user.close()
