"""The local run's demo shop, onboarded the way a seller does it, through the admin API.

A shop nobody onboarded gets no digest, so ``python -m devstack`` onboards one: the
operator creates it with the main account ``BRIDGE_DEFAULT_DESTINATION_EMAIL``; the
activation link is taken from the mail sink and opened; the main account adds a
customer-service agent (``support@shop.localhost``), whose activation link is opened too,
picks the agent's inbox as the destination (a plain mailbox) and turns unread-message alerts
on. Digests then go to the agent's inbox, and replies from either activated user reach the
buyer (both addresses are on ``shop.localhost``, whose SPF record the local DNS publishes).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs

import httpx

from devstack.mail_sink import SinkState
from shared.errors import BridgeError
from shared.events import NoticeKind

DEMO_SHOP_ID = "7494049642642441621"
DEMO_SHOP_NAME = "Demo shop"
DEMO_AGENT = "support@shop.localhost"
DEMO_CONVERSATION_ID = "576460602530154245"


class DemoShopError(BridgeError, RuntimeError):
    """The demo shop could not be onboarded; the reason says which step failed."""


@dataclass(frozen=True)
class DemoShop:
    """What the run command prints about the demo shop."""

    shop_id: str
    main_account: str
    agent: str
    destination: str
    # The main account's API token (what the console's sign-in page and the admin API take);
    # "" when the shop was onboarded by an earlier run (a kept Kafka) and no link was opened.
    main_api_token: str = ""


async def onboard_demo_shop(
    ingest_url: str,
    env: Mapping[str, str],
    sink: SinkState,
    *,
    shop_id: str = DEMO_SHOP_ID,
    timeout_s: float = 30.0,
) -> DemoShop:
    """Onboard ``shop_id`` as a seller does (main account and agent activated, the agent's
    inbox the destination, alerts on). A shop already onboarded (a real Kafka kept it) is
    left as it is."""
    main = env.get("BRIDGE_DEFAULT_DESTINATION_EMAIL", "seller@shop.localhost")
    shop = DemoShop(shop_id, main, DEMO_AGENT, DEMO_AGENT)
    operator = env.get("BRIDGE_ADMIN_OPERATOR_TOKEN", "dev-only-operator-token")
    async with httpx.AsyncClient(base_url=ingest_url, timeout=10.0) as http:
        since = len(sink.mails)  # an address may hold older (used) links: only newer ones
        resp = await http.post(
            "/admin/shops",
            headers={"Authorization": f"Bearer {operator}"},
            json={"shop_id": shop_id, "main_account_email": main, "shop_name": DEMO_SHOP_NAME},
        )
        if resp.status_code == 409:
            return shop
        _check(resp, 201, "creating the demo shop")
        main_token = await _activate(http, sink, main, since, timeout_s)
        as_main = {"Authorization": f"Bearer {main_token}"}
        since = len(sink.mails)
        resp = await http.post(
            f"/admin/shops/{shop_id}/users",
            headers=as_main,
            json={"email": DEMO_AGENT, "role": "cs_agent"},
        )
        _check(resp, 201, f"adding the agent {DEMO_AGENT}")
        await _activate(http, sink, DEMO_AGENT, since, timeout_s)
        resp = await http.patch(
            f"/admin/shops/{shop_id}/settings",
            headers=as_main,
            json={
                "alerts_enabled": True,
                "destination_email": DEMO_AGENT,
                "destination_kind": "mailbox",
            },
        )
        _check(resp, 200, "choosing the destination and turning alerts on")
    return DemoShop(shop_id, main, DEMO_AGENT, DEMO_AGENT, main_token)


# The seller console (ingest, /console) mails an activated user a sign-in link on request:
# a notice of this kind, holding a link to this path.
_SIGN_IN_LINK = re.compile(r"https?://\S+?/sign-in/link\?token=[^\s\"'<>]+")


async def sign_in_link(
    ingest_url: str, sink: SinkState, shop_id: str, email: str, *, timeout_s: float = 15.0
) -> str:
    """Ask the console to mail ``email`` a sign-in link, as the sign-in page does, and return
    the link from the mail sink; "" when ingest serves no console or no link arrived (a
    send limit: the console answers the same either way)."""
    since = len(sink.mails)
    try:
        async with httpx.AsyncClient(base_url=ingest_url, timeout=10.0) as http:
            resp = await http.post(
                "/console/sign-in/email", data={"shop_id": shop_id, "email": email}
            )
    except httpx.HTTPError:
        return ""
    if resp.status_code != 200:
        return ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        for mail in sink.mails[since:]:
            if email in mail.rcpt_tos and mail.summary.notice == NoticeKind.SIGN_IN:
                body = mail.message.get_body(("plain",))
                found = _SIGN_IN_LINK.search(body.get_content()) if body else None
                if found:
                    return found.group(0)
        await asyncio.sleep(0.2)
    return ""


def _check(resp: httpx.Response, status: int, step: str) -> None:
    if resp.status_code != status:
        raise DemoShopError(f"{step}: HTTP {resp.status_code} {resp.text}")


async def _activate(
    http: httpx.AsyncClient, sink: SinkState, email: str, since: int, timeout_s: float
) -> str:
    """Open the activation link mailed to ``email`` as mail number ``since`` or later;
    returns the user's API token."""
    token = await _activation_token(sink, email, since, timeout_s)
    resp = await http.post("/admin/activate", json={"token": token})
    _check(resp, 200, f"activating {email}")
    return str(resp.json()["api_token"])


async def _activation_token(sink: SinkState, email: str, since: int, timeout_s: float) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        for mail in reversed(sink.mails[since:]):
            if email not in mail.rcpt_tos or mail.summary.notice != "activation":
                continue
            body = mail.message.get_body(("plain",))
            found = re.search(r"\?token=(\S+)", body.get_content()) if body else None
            if found:
                return parse_qs("token=" + found.group(1))["token"][0]
        await asyncio.sleep(0.2)
    raise DemoShopError(f"no activation mail for {email} reached the mail sink in {timeout_s} s")
