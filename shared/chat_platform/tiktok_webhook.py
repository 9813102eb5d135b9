"""TikTok Shop webhooks: verification and parsing (the receive side of the adapter).

Followed: the official webhooks overview (partner.tiktokshop.com/docv2/page/
tts-webhooks-overview): ``Authorization`` = hex HMAC-SHA256 keyed by the app
secret over ``{app_key}{raw body}``; and "14 New message" (docv2/page/
14-new-message) for the event. See docs/tiktok-shop-contract.md s.4.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.chat_platform.base import (
    PayloadError,
    WebhookBatch,
    WebhookRejected,
    json_object_body,
)
from shared.chat_platform.tiktok_messages import NEW_MESSAGE_WEBHOOK_TYPE, message_from_webhook
from shared.chat_platform.tiktok_signing import verify_webhook


class TikTokWebhookAdapter:
    """Verifies and parses TikTok Shop pushes for one app."""

    name = "tiktok"

    def __init__(self, app_key: str, app_secret: str,
                 served_shops: frozenset[str] | None = None) -> None:
        self._app_key = app_key
        self._secret = app_secret
        # None: every shop; otherwise only shops we hold an access token for.
        self._served = served_shops

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        # No timestamp is signed, so the signature gives no replay protection;
        # replays are harmless because events are deduplicated by message id.
        if not verify_webhook(self._app_key, body, self._secret, headers.get("authorization")):
            raise WebhookRejected(401, "Authorization header is not the HMAC-SHA256 of "
                                       "app_key + body under the app secret")

    def parse(self, body: bytes) -> WebhookBatch:
        payload = json_object_body(body)
        event_type = payload.get("type")
        if not isinstance(event_type, int) or isinstance(event_type, bool):
            raise PayloadError("body.type: expected the webhook event type number")
        shop_id = payload.get("shop_id")
        if not isinstance(shop_id, str) or not shop_id:
            raise PayloadError("body.shop_id: missing")
        if self._served is not None and shop_id not in self._served:
            raise WebhookRejected(403, f"shop {shop_id} is not served by this bridge "
                                       "(no access token configured)")
        if event_type != NEW_MESSAGE_WEBHOOK_TYPE:
            return WebhookBatch(shop_id)  # other events: acknowledged, nothing to publish
        _, message = message_from_webhook(payload)
        return WebhookBatch(shop_id, (message,))
