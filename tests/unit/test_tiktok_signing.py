"""TikTok Shop signatures against the platform's own published test vectors."""

from __future__ import annotations

from shared.chat_platform.tiktok_signing import sign_request, sign_webhook, verify_webhook

# "Sign your API request" guide: app_secret e59af819cc, GET /authorization/202309/shops.
API_SECRET = "e59af819cc"
API_SIGN = "b596b73e0cc6de07ac26f036364178ab16b0a907af13d43f0a0cd2345f582dc8"

# Webhooks overview: app_key abcdef, app_secret 123.
WEBHOOK_BODY = (
    b'{"type":1,"tts_notification_id":"7380066284010030890","shop_id":'
    b'"7495540735365777507","timestamp":1718305585,"data":{"is_on_hold_order":true,'
    b'"order_id":"576653688135258178","order_status":"UNPAID","update_time":1718305585}}'
)
WEBHOOK_SIGN = "5dec0f11ec2f6783b8deee53c9ffbf8d024302f7c7e7fa55a35d17629031ac05"


def test_api_request_signature_matches_the_official_vector() -> None:
    query = {"app_key": "29a39d", "timestamp": "1623812664"}
    assert sign_request("/authorization/202309/shops", query, b"", API_SECRET) == API_SIGN


def test_sign_and_access_token_query_parameters_are_not_signed() -> None:
    query = {"app_key": "29a39d", "timestamp": "1623812664", "sign": "x", "access_token": "t"}
    assert sign_request("/authorization/202309/shops", query, b"", API_SECRET) == API_SIGN


def test_json_body_is_signed_but_a_multipart_body_is_not() -> None:
    query = {"app_key": "68xu9ks5p4i8", "shop_cipher": "ROW_x", "timestamp": "1696909648"}
    body = b'{"address":"https://partner.tiktokshop.com","event_type":"PACKAGE_UPDATE"}'
    with_body = sign_request("/event/202309/webhooks", query, body, "s")
    assert with_body != sign_request("/event/202309/webhooks", query, b"", "s")
    assert sign_request("/event/202309/webhooks", query, body, "s", multipart=True) == sign_request(
        "/event/202309/webhooks", query, b"", "s"
    )


def test_webhook_signature_matches_the_official_vector() -> None:
    assert sign_webhook("abcdef", WEBHOOK_BODY, "123") == WEBHOOK_SIGN
    assert verify_webhook("abcdef", WEBHOOK_BODY, "123", WEBHOOK_SIGN)


def test_webhook_with_one_changed_byte_or_no_header_is_not_verified() -> None:
    assert not verify_webhook(
        "abcdef", WEBHOOK_BODY.replace(b"UNPAID", b"PAID!!"), "123", WEBHOOK_SIGN
    )
    assert not verify_webhook("abcdef", WEBHOOK_BODY, "123", None)
    assert not verify_webhook("abcdef", WEBHOOK_BODY, "123", "Bearer " + WEBHOOK_SIGN)
