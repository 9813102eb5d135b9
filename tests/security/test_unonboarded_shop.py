"""Finding 9 (never-onboarded shops): a shop gets mail only after a manager turned alerts on,
and the default inbox is not an authorized sender for a shop nobody onboarded.

Real stack: sandbox webhook -> ingest -> consolidator -> mailer -> sink, and the real admin
API as an operator and a seller use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from devstack.topic_reader import records_so_far
from shared.codec import DecodeError, decode
from shared.events import InboundResult
from shared.topics import MAIL_INBOUND_RESULTS
from tests.conftest import WINDOW_S, Stack
from tests.integration.test_reply_parser import _mail, _reply_address, _send
from tests.polling import eventually
from tests.security.seller_admin import SellerAdmin

pytestmark = pytest.mark.integration


def new_ids() -> tuple[str, str]:
    n = uuid.uuid4().int
    return str(7_300_000_000_000_000_000 + n % 10**18), str(5_300_000_000_000_000 + n % 10**17)


async def not_onboarded_count(stack: Stack) -> float:
    text = (await stack.http.get(f"http://127.0.0.1:{stack.ports.consolidator}/metrics")).text
    line = next(
        (
            x
            for x in text.splitlines()
            if x.startswith('bridge_buyer_messages_not_emailed_total{reason="not_onboarded"} ')
        ),
        "",
    )
    return float(line.split()[1]) if line else 0.0


async def test_a_shop_never_onboarded_gets_no_digest_until_a_manager_turns_alerts_on(
    stack: Stack,
) -> None:
    shop, conv = new_ids()
    before = await not_onboarded_count(stack)
    await stack.buyer_says(shop, conv, "Hello? Is anyone there?", buyer_name="Ana")
    await asyncio.sleep(WINDOW_S + 4)
    assert stack.mails_for(conv) == []

    async def counted() -> bool:
        return await not_onboarded_count(stack) >= before + 1

    await eventually(counted, timeout_s=20, what="the message counted as not_onboarded")

    admin = SellerAdmin(stack, f"http://127.0.0.1:{stack.ports.ingest}")
    _, main = await admin.create_shop(shop)  # onboarded, main account activated
    resp = await admin.call("GET", f"/admin/shops/{shop}/settings", main)
    assert resp.status_code == 200 and resp.json()["alerts_enabled"] is False, resp.text
    await asyncio.sleep(1.5)  # every service's settings view applies the record
    not_yet = str(int(conv) + 1)
    await stack.buyer_says(shop, not_yet, "Still nobody?", buyer_name="Ana")
    await asyncio.sleep(WINDOW_S + 4)
    assert stack.mails_for(not_yet) == []  # onboarded, but nobody opted in yet

    resp = await admin.call(
        "PATCH", f"/admin/shops/{shop}/settings", main, {"alerts_enabled": True}
    )
    assert resp.status_code == 200 and resp.json()["alerts_enabled"] is True, resp.text
    await asyncio.sleep(1.5)
    later = str(int(conv) + 2)
    await stack.buyer_says(shop, later, "Now is anyone there?", buyer_name="Ana")
    digest = (await eventually(lambda: stack.mails_for(later), timeout_s=WINDOW_S + 20))[0]
    assert digest["To"] == main
    assert stack.mails_for(conv) == []  # the message from before the opt-in stays unsent


async def test_a_reply_from_the_default_inbox_is_refused_for_a_shop_never_onboarded(
    stack: Stack,
) -> None:
    shop, conv = new_ids()
    await stack.buyer_says(shop, conv, "Can I get a refund?", buyer_name="Bo")
    rcpt = _reply_address(stack, shop, conv)
    message_id = f"<{uuid.uuid4().hex}@shop.localhost>"
    await _send(
        stack,
        stack.seller,
        rcpt,
        _mail(stack.seller, rcpt, "Refund approved: see http://evil.test", message_id=message_id),
    )

    async def result() -> InboundResult | None:
        parts = await records_so_far(
            stack.env["KAFKA_BOOTSTRAP"], MAIL_INBOUND_RESULTS.name, MAIL_INBOUND_RESULTS.partitions
        )
        found = []
        for rec in (
            r for recs in parts.values() for r in recs if r.value and conv.encode() in r.value
        ):
            with contextlib.suppress(DecodeError):
                found.append(decode(InboundResult, rec.value))
        return next((f for f in found if f.conversation_id == conv), None)

    verdict = await eventually(result, timeout_s=30, interval_s=0.5)
    assert verdict.classification == "rejected", verdict
    assert f"not a registered, activated user of shop {shop}" in verdict.reason
    await asyncio.sleep(2.0)
    view = await stack.buyer_view(conv)
    assert view == [], view
