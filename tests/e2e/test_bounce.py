"""A delivery report for a digest, over real parts: the relay took the digest, the seller's
mailbox later refused it, and the report comes back to the reply address (MAIL FROM:<>).

The parser classifies it as a bounce (so nothing reaches the buyer), names the digest on
``mail.inbound.results`` and counts it on ``bridge_digests_bounced_total``.
"""

from __future__ import annotations

import aiosmtplib
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.topic_reader import records_so_far
from shared.codec import decode
from shared.events import InboundResult
from shared.topics import MAIL_INBOUND_RESULTS
from tests.conftest import WINDOW_S, Stack
from tests.polling import eventually

pytestmark = pytest.mark.integration


def delivery_report(digest_headers: str, reply_address: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.sunnysocks.example>\r\n"
        f"To: {reply_address}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-e2e@mx.sunnysocks.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.sunnysocks.example\r\n\r\n"
        "Final-Recipient: rfc822; owner@sunnysocks.example\r\nAction: failed\r\n"
        "Status: 5.2.2\r\nDiagnostic-Code: smtp; 552 5.2.2 mailbox full\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{digest_headers}\r\n--B--\r\n"
    ).encode()


async def bounced_total(stack: Stack) -> float:
    resp = await stack.http.get(f"http://127.0.0.1:{stack.ports.reply_parser}/metrics")
    resp.raise_for_status()
    return sum(
        s.value
        for fam in text_string_to_metric_families(resp.text)
        for s in fam.samples
        if s.name == "bridge_digests_bounced_total" and s.labels.get("kind") == "failed"
    )


async def test_a_bounced_digest_is_named_and_counted(
    stack: Stack, unique_conversation: tuple[str, str]
) -> None:
    shop, conv = unique_conversation
    await stack.onboard(shop)
    await stack.buyer_says(shop, conv, "Is the green teapot back?", buyer_name="Dee")
    digest = (await eventually(lambda: stack.mails_for(conv), timeout_s=WINDOW_S + 20))[0]
    digest_id = str(digest["X-Bridge-Digest-Id"])
    reply_address = str(digest["Reply-To"]).rpartition("<")[2].rstrip(">")
    headers = "".join(
        f"{k}: {v}\r\n"
        for k, v in digest.items()
        if k in ("From", "To", "Subject", "Message-ID", "X-Bridge-Digest-Id")
    )
    before = await bounced_total(stack)

    async with aiosmtplib.SMTP(
        hostname="127.0.0.1", port=stack.ports.inbound_smtp, timeout=10
    ) as smtp:
        await smtp.sendmail("", [reply_address], delivery_report(headers, reply_address))

    async def result() -> InboundResult | None:
        records = await records_so_far(
            stack.env["KAFKA_BOOTSTRAP"], MAIL_INBOUND_RESULTS.name, MAIL_INBOUND_RESULTS.partitions
        )
        for rec in (r for part in records.values() for r in part):
            found = decode(InboundResult, rec.value or b"")
            if found.conversation_id == conv and found.digest_id:
                return found
        return None

    found = await eventually(result, timeout_s=30, interval_s=0.5)
    assert found.classification == "bounce"
    assert found.digest_id == digest_id and found.bounce_final
    assert "5.2.2" in found.reason and "mailbox full" in found.reason
    assert await bounced_total(stack) == before + 1
