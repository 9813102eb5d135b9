"""Delivery reports (RFC 3464) about our digests: which digest, final or delayed, and why."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reply_parser.bounce_report import read_bounce
from reply_parser.inbound_pipeline import OwnIdentity, decide
from shared.events import InboundEnvelope, ShopSettings

DOMAIN = "digest.bridge.example"
OWN = OwnIdentity(DOMAIN, "bridge.example")
ENV = InboundEnvelope(
    mail_id="m1",
    shop_id="7",
    conversation_id="5",
    mail_from="",
    rcpt_to="tok@chat-seller-us.bridge.example",
    received_at_ms=1000,
    peer="192.0.2.10",
)
ORIGINAL_HEADERS = (
    "From: TikTok Shop <tok@chat-seller-us.bridge.example>\r\n"
    "To: owner@sunnysocks.example\r\n"
    "Subject: A new message from TikTok Shop customer Ana\r\n"
    "Message-ID: <digest-4f2a9c@digest.bridge.example>\r\n"
    "X-Bridge-Digest-Id: 4f2a9c\r\n"
)


def dsn(
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <owner@sunnysocks.example>: user unknown",
    returned: str = "text/rfc822-headers",
    headers: str = ORIGINAL_HEADERS,
) -> bytes:
    if returned == "text/rfc822-headers":
        third = f"Content-Type: text/rfc822-headers\r\n\r\n{headers}"
    else:
        third = f"Content-Type: message/rfc822\r\n\r\n{headers}\r\nIs it wool?\r\n"
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.sunnysocks.example>\r\n"
        "To: tok@chat-seller-us.bridge.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn-1@mx.sunnysocks.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.sunnysocks.example\r\n\r\n"
        "Final-Recipient: rfc822; owner@sunnysocks.example\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: {diagnostic}\r\n"
        f"--B\r\n{third}\r\n--B--\r\n"
    ).encode()


def parse(raw: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(raw, policy=policy.default)


@pytest.mark.parametrize("returned", ["text/rfc822-headers", "message/rfc822"])
def test_a_failed_delivery_report_names_the_digest_the_code_and_the_recipient(
    returned: str,
) -> None:
    bounce = read_bounce(parse(dsn(returned=returned)), DOMAIN)
    assert bounce is not None
    assert (
        bounce.digest_id,
        bounce.permanent,
        bounce.status,
        bounce.smtp_code,
        bounce.recipient,
    ) == ("4f2a9c", True, "5.1.1", 550, "owner@sunnysocks.example")
    assert "user unknown" in bounce.reason and "owner@sunnysocks.example" in bounce.reason


def test_a_delay_warning_is_not_final() -> None:
    bounce = read_bounce(
        parse(dsn(action="delayed", status="4.4.1", diagnostic="smtp; 451 4.4.1 try again later")),
        DOMAIN,
    )
    assert bounce is not None and not bounce.permanent and bounce.smtp_code == 451


def test_without_our_header_the_message_id_names_the_digest() -> None:
    headers = ORIGINAL_HEADERS.replace("X-Bridge-Digest-Id: 4f2a9c\r\n", "")
    bounce = read_bounce(parse(dsn(headers=headers)), DOMAIN)
    assert bounce is not None and bounce.digest_id == "4f2a9c"


def test_a_message_id_of_another_domain_is_not_ours() -> None:
    headers = ORIGINAL_HEADERS.replace("X-Bridge-Digest-Id: 4f2a9c\r\n", "").replace(
        "digest.bridge.example>", "elsewhere.example>"
    )
    assert read_bounce(parse(dsn(headers=headers)), DOMAIN) is None


def test_a_plain_text_bounce_that_quotes_the_original_is_read_too() -> None:
    raw = (
        "From: MAILER-DAEMON@mx.example\r\nTo: tok@chat-seller-us.bridge.example\r\n"
        "Subject: failure notice\r\nContent-Type: text/plain; charset=x-no-such-charset\r\n"
        "\r\nSorry, we were unable to deliver your message to the following address.\r\n"
        "<owner@sunnysocks.example>:\r\n550 mailbox unavailable\r\n\r\n"
        "--- Below this line is a copy of the message.\r\n\r\n" + ORIGINAL_HEADERS
    ).encode()
    bounce = read_bounce(parse(raw), DOMAIN)
    assert bounce is not None and bounce.digest_id == "4f2a9c" and bounce.permanent


def test_a_bounce_of_mail_that_is_not_ours_names_no_digest() -> None:
    headers = "From: someone@else.example\r\nMessage-ID: <x1@else.example>\r\n"
    assert read_bounce(parse(dsn(headers=headers)), DOMAIN) is None


def test_the_pipeline_reports_which_digest_bounced_and_delivers_nothing() -> None:
    decision = decide(dsn(), ENV, ShopSettings(shop_id="7"), OWN)
    assert decision.classification == "bounce"
    assert decision.reply is None
    assert decision.bounce is not None and decision.bounce.digest_id == "4f2a9c"
    assert "digest 4f2a9c not delivered: 5.1.1" in decision.reason


def test_a_bounce_that_names_no_digest_of_ours_is_still_a_bounce() -> None:
    headers = "From: someone@else.example\r\nMessage-ID: <x1@else.example>\r\n"
    decision = decide(dsn(headers=headers), ENV, ShopSettings(shop_id="7"), OWN)
    assert decision.classification == "bounce" and decision.bounce is None


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(
        [
            "text/rfc822-headers",
            "message/rfc822",
            "message/delivery-status",
            "text/plain; charset=bogus-8",
        ]
    ),
    st.text(max_size=300),
    st.text(max_size=200),
)
def test_any_report_body_is_read_without_raising(
    content_type: str, block: str, headers: str
) -> None:
    raw = (
        "From: MAILER-DAEMON@mx.example\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        f"--B\r\nContent-Type: {content_type}\r\n\r\n{block}\r\n"
        f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n--B--\r\n"
    )
    bounce = read_bounce(parse(raw.encode("utf-8", "surrogateescape")), DOMAIN)
    assert bounce is None or bounce.digest_id
