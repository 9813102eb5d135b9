"""A stranger cannot make the console read an unbounded body: forms are URL-encoded and at
most 64 KB, refused before anything else (real ingest over HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.conftest import Stack
from tests.integration.test_admin_api import Admin, serve_admin

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def admin(stack: Stack) -> AsyncIterator[Admin]:
    async with serve_admin(stack, dev_mode=True) as served:
        yield served


async def test_an_oversized_sign_in_form_is_refused_with_413(admin: Admin) -> None:
    body = b"token=" + b"a" * (65 * 1024)
    resp = await admin.http.post(
        f"{admin.url}/console/sign-in",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 413 and "at most 65536 bytes" in resp.text


async def test_a_multipart_form_is_refused_with_415(admin: Admin) -> None:
    resp = await admin.http.post(
        f"{admin.url}/console/sign-in", files={"token": ("t.txt", b"x" * 10)}
    )
    assert resp.status_code == 415
