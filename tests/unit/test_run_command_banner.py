"""What ``python -m devstack`` prints: the playground's address first, then how to sign in."""

from __future__ import annotations

from devstack.__main__ import BANNER, token_line
from devstack.demo_shop import DemoShop


def test_the_playground_url_is_the_first_line_printed() -> None:
    first = BANNER.strip().splitlines()[0]
    assert first.startswith("Playground: http://127.0.0.1:{playground}/")


def test_the_main_accounts_token_is_printed_for_the_sign_in_page() -> None:
    shop = DemoShop("1", "main@shop.localhost", "a@shop.localhost", "a@shop.localhost", "bat1.x")
    assert "paste it on the sign-in page" in token_line(
        shop, "http://127.0.0.1:8000/console/sign-in"
    )
    assert "a bearer token for /admin" in token_line(shop, "")
    earlier = DemoShop("1", "main@shop.localhost", "a@shop.localhost", "a@shop.localhost")
    assert "earlier run" in token_line(earlier, "")
