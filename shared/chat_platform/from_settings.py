"""Build the configured chat-platform adapters from :class:`Settings` (the wiring, no logic)."""

from __future__ import annotations

from shared.chat_platform.base import ChatPlatform, WebhookAdapter
from shared.chat_platform.generic_webhook import GenericChatPlatform, GenericWebhookAdapter
from shared.chat_platform.tiktok_client import TikTokShopClient, parse_token_map
from shared.chat_platform.tiktok_webhook import TikTokWebhookAdapter
from shared.config import Settings


def access_tokens(cfg: Settings) -> dict[str, str]:
    """Per-shop tokens from the secret, else the single fallback token for every shop."""
    tokens = parse_token_map(cfg.platform_access_tokens.get_secret_value())
    if not tokens:
        tokens = {"*": cfg.platform_access_token.get_secret_value()}
    return tokens


def chat_platform_from_settings(cfg: Settings) -> ChatPlatform:
    if cfg.chat_platform == "generic":
        return GenericChatPlatform(cfg.generic_platform_base_url,
                                   cfg.generic_webhook_secret.get_secret_value())
    return TikTokShopClient(cfg.platform_base_url, cfg.platform_app_key,
                            cfg.platform_app_secret.get_secret_value(), access_tokens(cfg),
                            shop_ciphers=parse_token_map(cfg.platform_shop_ciphers),
                            qps_per_api=cfg.platform_qps_per_api,
                            max_connections=cfg.platform_max_connections)


def webhook_adapters_from_settings(cfg: Settings) -> dict[str, WebhookAdapter]:
    """Adapters by route name: ``/webhooks/{name}``."""
    tokens = access_tokens(cfg)
    served = None if "*" in tokens else frozenset(tokens)
    return {
        "tiktok": TikTokWebhookAdapter(cfg.platform_app_key,
                                       cfg.webhook_secret.get_secret_value(), served),
        "generic": GenericWebhookAdapter(cfg.generic_webhook_secret.get_secret_value()),
    }
