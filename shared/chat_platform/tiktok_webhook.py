"""TikTok Shop webhooks: verification and parsing (the receive side of the adapter).

Followed: the official webhooks overview (partner.tiktokshop.com/docv2/page/
tts-webhooks-overview): ``Authorization`` = hex HMAC-SHA256 keyed by the app
secret over ``{app_key}{raw body}``; and "14 New message" (docv2/page/
14-new-message) for the event. See docs/tiktok-shop-contract.md s.4.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.chat_platform import payload_fields as fields
from shared.chat_platform.base import (
    WebhookBatch,
    WebhookRejected,
    json_object_body,
)
from shared.chat_platform.tiktok_messages import NEW_MESSAGE_WEBHOOK_TYPE, message_from_webhook
from shared.chat_platform.tiktok_signing import verify_webhook


class TikTokWebhookAdapter:
    """Verifies and parses TikTok Shop pushes for one app."""

    name = "tiktok"

    def __init__(
        self, app_key: str, app_secret: str, served_shops: frozenset[str] | None = None
    ) -> None:
        self._app_key = app_key
        self._secret = app_secret
        # None: every shop; otherwise only shops we hold an access token for.
        self._served = served_shops

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        # No timestamp is signed, so the signature gives no replay protection;
        # replays are harmless because events are deduplicated by message id.
        if not verify_webhook(self._app_key, body, self._secret, headers.get("authorization")):
            raise WebhookRejected(
                401,
                "Authorization header is not the HMAC-SHA256 of "
                "app_key + body under the app secret",
            )

    def parse(self, body: bytes, now_s: float | None = None) -> WebhookBatch:
        """The delivery's messages; every field is checked (payload_fields), so a value
        the bridge cannot carry is a 422 naming it, not a failure further on."""
        payload = json_object_body(body)
        event_type = fields.int_field(payload, "type", "body", maximum=fields.EVENT_TYPE_MAX)
        if event_type is None:
            raise fields.refuse(
                "body.type", "expected the webhook event type number", fields.Violation.MISSING
            )
        shop_id = fields.id_field(payload, "shop_id", "body")
        fields.id_field(payload, "tts_notification_id", "body", required=False)
        fields.int_field(payload, "timestamp", "body", maximum=fields.INDEX_MAX)
        if self._served is not None and shop_id not in self._served:
            raise WebhookRejected(
                403, f"shop {shop_id} is not served by this bridge (no access token configured)"
            )
        if event_type != NEW_MESSAGE_WEBHOOK_TYPE:
            return WebhookBatch(shop_id)  # other events: acknowledged, nothing read or published
        _, message = message_from_webhook(payload, now_s=now_s)
        return WebhookBatch(shop_id, (message,))
