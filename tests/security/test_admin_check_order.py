"""The admin API checks who is asking before it reads what they sent.

Credentials first (401), then the caller's right to the shop in the path (403), then that
the shop is onboarded (404), and only then the body (415, 413, 400, 422): a stranger learns
nothing about the API's fields, the shops or their users from the answers to bad bodies.
Real stack: the running ingest's admin API.
"""

from __future__ import annotations

import pytest

from tests.conftest import Stack
from tests.security.seller_admin import SellerAdmin

pytestmark = pytest.mark.integration

BAD_BODIES = [
    ({"content-type": "text/plain"}, b"token=x"),  # 415 for a caller who may send
    ({"content-type": "application/json"}, b"{not json"),  # 400
    ({"content-type": "application/json"}, b"[]"),  # 400
    ({"content-type": "application/json"}, b'{"email": 5, "role": "king", "x": 1}'),  # 422
    ({"content-type": "application/json"}, b'{"a": "' + b"x" * 70_000 + b'"}'),  # 413
]


async def test_a_request_body_is_read_only_after_the_caller_may_act_on_the_shop(
    stack: Stack,
) -> None:
    admin = SellerAdmin(stack, f"http://127.0.0.1:{stack.ports.ingest}")
    shop, main = await admin.create_shop()
    other, _ = await admin.create_shop()
    users = f"/admin/shops/{shop}/users"
    for headers, body in BAD_BODIES:
        stranger = await stack.http.post(admin.url + users, headers=headers, content=body)
        assert stranger.status_code == 401, (body[:40], stranger.text)
        forged = await stack.http.post(
            admin.url + users,
            content=body,
            headers={**headers, "Authorization": "Bearer bat1.x.y.z"},
        )
        assert forged.status_code == 401, (body[:40], forged.text)
        elsewhere = await stack.http.post(
            f"{admin.url}/admin/shops/{other}/users",
            content=body,
            headers={**headers, "Authorization": f"Bearer {admin.tokens[main]}"},
        )
        assert elsewhere.status_code == 403, (body[:40], elsewhere.text)
        unknown = await stack.http.post(
            f"{admin.url}/admin/shops/nobody-{shop[-6:]}/users",
            content=body,
            headers={**headers, "Authorization": f"Bearer {admin.operator_token}"},
        )
        assert unknown.status_code == 404, (body[:40], unknown.text)
        own = await stack.http.post(
            admin.url + users,
            content=body,
            headers={**headers, "Authorization": f"Bearer {admin.tokens[main]}"},
        )
        assert own.status_code in (400, 413, 415, 422), (body[:40], own.text)


async def test_onboarding_is_the_operators_before_any_body_is_read(stack: Stack) -> None:
    admin = SellerAdmin(stack, f"http://127.0.0.1:{stack.ports.ingest}")
    _, main = await admin.create_shop()
    for headers, body in BAD_BODIES:
        seller = await stack.http.post(
            f"{admin.url}/admin/shops",
            content=body,
            headers={**headers, "Authorization": f"Bearer {admin.tokens[main]}"},
        )
        assert seller.status_code == 403, (body[:40], seller.text)
        assert "operator" in seller.json()["error"]
