"""What ``python -m devstack`` prints: the playground's address first, then how to sign in."""

from __future__ import annotations

from devstack.__main__ import BANNER, sign_in_lines
from devstack.demo_shop import DemoShop


def test_the_playground_url_is_the_first_line_printed() -> None:
    first = BANNER.strip().splitlines()[0]
    assert first.startswith("Playground: http://127.0.0.1:{playground}/")


def test_the_main_account_signs_in_with_the_mailed_link_else_its_token() -> None:
    page = "http://127.0.0.1:8000/console/sign-in"
    link = "http://127.0.0.1:8000/console/sign-in/link?token=abc"
    shop = DemoShop("1", "main@shop.localhost", "a@shop.localhost", "a@shop.localhost", "bat1.x")
    assert sign_in_lines(shop, page, link).endswith(f"\n  {link}")
    assert "paste it on the sign-in page" in sign_in_lines(shop, page, "")
    assert "a bearer token for /admin" in sign_in_lines(shop, "", "")
    earlier = DemoShop("1", "main@shop.localhost", "a@shop.localhost", "a@shop.localhost")
    assert sign_in_lines(earlier, page, link).endswith(link)
    assert "earlier run" in sign_in_lines(earlier, "", "")
