"""A seller's browser without the browser: the console's pages over HTTP with a cookie jar.

Used by the console's page tests and its security tests; the admin API side (onboarding,
activation emails from the sink) comes from ``tests.integration.test_admin_api.Admin``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import httpx

from tests.integration.test_admin_api import Admin

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ConsoleUser:
    """One browser: its own cookie jar, no automatic redirects (the tests look at them)."""

    admin: Admin
    http: httpx.AsyncClient

    @classmethod
    def new(cls, admin: Admin) -> ConsoleUser:
        return cls(admin, httpx.AsyncClient(base_url=admin.url, timeout=10.0))

    async def close(self) -> None:
        await self.http.aclose()

    async def get(self, path: str, **kw: object) -> httpx.Response:
        return await self.http.get(path, **kw)  # type: ignore[arg-type]

    async def csrf(self, page: str) -> str:
        resp = await self.get(page)
        found = CSRF.search(resp.text)
        assert found, f"no CSRF token on {page}: {resp.status_code} {resp.text[:300]}"
        return html.unescape(found.group(1))

    async def post(
        self, path: str, data: dict[str, str], *, csrf_from: str = "", origin: str | None = None
    ) -> httpx.Response:
        """A form post, with the CSRF token of the page ``csrf_from`` when given."""
        fields = dict(data)
        if csrf_from:
            fields["csrf_token"] = await self.csrf(csrf_from)
        headers = {"Origin": origin} if origin else {"Origin": self.admin.url}
        return await self.http.post(path, data=fields, headers=headers)

    async def activate(self, email: str, after: int = 0) -> httpx.Response:
        """Open the newest activation link for ``email`` and press its button."""
        token = await self.admin.activation_token(email, after)
        page = await self.get("/console/activate", params={"token": token})
        assert page.status_code == 200 and "Activate and sign in" in page.text, page.text
        resp = await self.post("/console/activate", {"token": token})
        assert resp.status_code == 303, resp.text
        return resp


def text_of(page: str) -> str:
    """The page's words without tags, for asserting on what a person reads."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
