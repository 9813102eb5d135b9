"""The admin API of a running ingest as an operator and a seller use it: onboard a shop,
open the activation link from the mail sink, act with the API token it returns."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx

from tests.conftest import Stack
from tests.polling import eventually


@dataclass
class SellerAdmin:
    stack: Stack
    url: str  # an ingest, e.g. http://127.0.0.1:<port>
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def operator_token(self) -> str:
        return self.stack.env.get("BRIDGE_ADMIN_OPERATOR_TOKEN", "dev-only-operator-token")

    async def call(
        self, method: str, path: str, who: str = "operator", body: Any = None, url: str = ""
    ) -> httpx.Response:
        token = self.operator_token if who == "operator" else self.tokens[who]
        return await self.stack.http.request(
            method,
            (url or self.url) + path,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )

    def activation_mails(self, email: str) -> list[EmailMessage]:
        return [
            m.message
            for m in self.stack.platforms.sink.mails
            if email in m.rcpt_tos and m.message["X-Bridge-Notice"] == "activation"
        ]

    async def link_token(self, email: str, nth: int = -1, *, at_least: int = 1) -> str:
        """The token of the ``nth`` activation mail the sink got for ``email``."""
        mails = await eventually(
            lambda: len(self.activation_mails(email)) >= at_least and self.activation_mails(email),
            timeout_s=30,
            what=f"{at_least} activation mail(s) for {email}",
        )
        text = mails[nth].get_body(("plain",)).get_content()
        found = re.search(r"\?token=(\S+)", text)
        assert found, text
        return httpx.URL("http://x/?token=" + found.group(1)).params["token"]

    async def activate(self, email: str) -> str:
        resp = await self.stack.http.post(
            f"{self.url}/admin/activate", json={"token": await self.link_token(email)}
        )
        assert resp.status_code == 200, resp.text
        self.tokens[email] = resp.json()["api_token"]
        return self.tokens[email]

    async def create_shop(self, shop_id: str = "") -> tuple[str, str]:
        """A shop onboarded by the operator whose main account activated: (shop, main)."""
        shop_id = shop_id or str(7_200_000_000_000_000_000 + uuid.uuid4().int % 10**18)
        main = f"main-{shop_id}@shop.test"
        resp = await self.call(
            "POST",
            "/admin/shops",
            body={
                "shop_id": shop_id,
                "main_account_email": main,
                "shop_name": "Security test shop",
            },
        )
        assert resp.status_code == 201, resp.text
        await self.activate(main)
        return shop_id, main
