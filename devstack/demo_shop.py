"""The local run's demo shop, onboarded the way a real one is, through the admin API.

A shop nobody onboarded gets no digest, so ``python -m devstack`` onboards one: the
operator creates it with the main account ``BRIDGE_DEFAULT_DESTINATION_EMAIL`` (the
address the mail sink replies from), the activation link is taken from the sink and
opened, and the main account turns unread-message alerts on. Digests then go to that
address and replies from it reach the buyer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from urllib.parse import parse_qs

import httpx

from devstack.mail_sink import SinkState
from shared.errors import BridgeError

DEMO_SHOP_ID = "7494049642642441621"
DEMO_SHOP_NAME = "Demo shop"


class DemoShopError(BridgeError, RuntimeError):
    """The demo shop could not be onboarded; the reason says which step failed."""


async def onboard_demo_shop(
    ingest_url: str,
    env: Mapping[str, str],
    sink: SinkState,
    *,
    shop_id: str = DEMO_SHOP_ID,
    timeout_s: float = 30.0,
) -> str:
    """Onboard ``shop_id`` (alerts on, main account activated); returns the main account.
    A shop already onboarded (a real Kafka kept it) is left as it is."""
    main = env.get("BRIDGE_DEFAULT_DESTINATION_EMAIL", "seller@shop.localhost")
    operator = env.get("BRIDGE_ADMIN_OPERATOR_TOKEN", "dev-only-operator-token")
    async with httpx.AsyncClient(base_url=ingest_url, timeout=10.0) as http:
        resp = await http.post(
            "/admin/shops",
            headers={"Authorization": f"Bearer {operator}"},
            json={"shop_id": shop_id, "main_account_email": main, "shop_name": DEMO_SHOP_NAME},
        )
        if resp.status_code == 409:
            return main
        if resp.status_code != 201:
            raise DemoShopError(f"creating the demo shop: HTTP {resp.status_code} {resp.text}")
        token = await _activation_token(sink, main, timeout_s)
        resp = await http.post("/admin/activate", json={"token": token})
        if resp.status_code != 200:
            raise DemoShopError(f"activating {main}: HTTP {resp.status_code} {resp.text}")
        api_token = resp.json()["api_token"]
        resp = await http.patch(
            f"/admin/shops/{shop_id}/settings",
            headers={"Authorization": f"Bearer {api_token}"},
            json={"alerts_enabled": True},
        )
        if resp.status_code != 200:
            raise DemoShopError(f"turning alerts on: HTTP {resp.status_code} {resp.text}")
    return main


async def _activation_token(sink: SinkState, email: str, timeout_s: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        for mail in reversed(sink.mails):
            msg = mail.message
            body = msg.get_body(("plain",))
            if email in mail.rcpt_tos and msg["X-Bridge-Notice"] == "activation" and body:
                found = re.search(r"\?token=(\S+)", body.get_content())
                if found:
                    return parse_qs("token=" + found.group(1))["token"][0]
        await asyncio.sleep(0.2)
    raise DemoShopError(f"no activation mail for {email} reached the mail sink in {timeout_s} s")
