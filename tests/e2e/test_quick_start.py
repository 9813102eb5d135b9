"""The README's quick start on the test stack: the local run's demo shop, onboarded through
the admin API, gets the digest of the first curl, and the sink's Reply reaches the buyer."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from devstack.demo_shop import DEMO_AGENT, DEMO_SHOP_ID, onboard_demo_shop
from tests.conftest import SETTINGS_APPLY_S, WINDOW_S, Stack
from tests.polling import eventually

pytestmark = pytest.mark.integration


async def test_the_demo_shop_gets_the_first_digest_and_the_sink_reply_reaches_the_buyer(
    stack: Stack,
) -> None:
    shop = await onboard_demo_shop(
        f"http://127.0.0.1:{stack.ports.ingest}", stack.env, stack.platforms.sink
    )
    assert shop.main_account == stack.seller
    await asyncio.sleep(SETTINGS_APPLY_S)
    conv = str(576_460_602_530_000_000 + uuid.uuid4().int % 10**6)
    await stack.buyer_says(DEMO_SHOP_ID, conv, "Hi! Is this in stock?")
    digest = (await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 20))[0]
    assert digest["To"] == DEMO_AGENT  # the destination the main account chose
    n = stack.sink_number(digest["Message-ID"])
    resp = await stack.http.post(
        f"{stack.sink_url}/messages/{n}/reply", json={"text": "Yes, it ships tomorrow."}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["from"] == shop.main_account  # the shop's main account answers
    assert resp.json()["summary"].startswith("Delivered: 1 chat message(s)"), resp.text
    received = await eventually(lambda: stack.buyer_view(conv), timeout_s=30)
    assert [r["content"]["content"] for r in received] == ["Yes, it ships tomorrow."]
    # run again (a kept Kafka): already onboarded, nothing to do
    again = await onboard_demo_shop(
        f"http://127.0.0.1:{stack.ports.ingest}", stack.env, stack.platforms.sink
    )
    assert again.main_account == shop.main_account and again.main_api_token == ""
