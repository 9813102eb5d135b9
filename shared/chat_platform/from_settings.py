"""Build the configured chat-platform adapters from
:class:`~shared.config.ChatPlatformSettings` (the wiring, no logic)."""

from __future__ import annotations

from collections.abc import Callable

from shared.chat_platform.base import ChatPlatform, WebhookAdapter
from shared.chat_platform.generic_webhook import GenericChatPlatform, GenericWebhookAdapter
from shared.chat_platform.tiktok_client import TikTokShopClient, parse_token_map
from shared.chat_platform.tiktok_webhook import TikTokWebhookAdapter
from shared.config import ChatPlatformSettings
from shared.secrets_policy import Origin, SecretSetting


def _fallback_token_in_use(cfg: ChatPlatformSettings) -> bool:
    return not parse_token_map(cfg.platform_access_tokens.get_secret_value())


def _per_shop_tokens(spec: str) -> list[tuple[object, bytes]]:
    return [(f"for shop {shop}", token.encode()) for shop, token in parse_token_map(spec).items()]


def _generic_platform(cfg: ChatPlatformSettings) -> bool:
    return cfg.chat_platform == "generic"


def _generic_configured(cfg: ChatPlatformSettings) -> bool:
    return bool(cfg.generic_webhook_secret.get_secret_value())


def tiktok_client_secrets(
    when: Callable[[ChatPlatformSettings], bool] = lambda cfg: True,
) -> tuple[SecretSetting, ...]:
    """The secrets a TikTok Shop client built here reads, needed when ``when`` holds: the app
    secret and the per-shop tokens, or the one fallback token when there are none."""
    return (
        SecretSetting("platform_app_secret", Origin.ISSUED, needed=when),
        SecretSetting(
            "platform_access_token",
            Origin.ISSUED,
            needed=lambda cfg: when(cfg) and _fallback_token_in_use(cfg),
        ),
        SecretSetting(
            "platform_access_tokens",
            Origin.ISSUED,
            ring=_per_shop_tokens,
            needed=lambda cfg: when(cfg) and not _fallback_token_in_use(cfg),
        ),
    )


# What chat_platform_from_settings reads (the sender), and webhook_adapters_from_settings
# (the receiver: the generic route only when its secret is set). Checked at start-up.
CHAT_PLATFORM_SECRETS = (
    *tiktok_client_secrets(lambda cfg: not _generic_platform(cfg)),
    SecretSetting("generic_webhook_secret", Origin.GENERATED, needed=_generic_platform),
)
WEBHOOK_SECRETS = (
    SecretSetting("webhook_secret", Origin.ISSUED),
    SecretSetting("generic_webhook_secret", Origin.GENERATED, needed=_generic_configured),
)


def access_tokens(cfg: ChatPlatformSettings) -> dict[str, str]:
    """Per-shop tokens from the secret, else the single fallback token for every shop."""
    tokens = parse_token_map(cfg.platform_access_tokens.get_secret_value())
    if not tokens:
        tokens = {"*": cfg.platform_access_token.get_secret_value()}
    return tokens


def chat_platform_from_settings(cfg: ChatPlatformSettings) -> ChatPlatform:
    if cfg.chat_platform == "generic":
        return GenericChatPlatform(
            cfg.generic_platform_base_url, cfg.generic_webhook_secret.get_secret_value()
        )
    return TikTokShopClient(
        cfg.platform_base_url,
        cfg.platform_app_key,
        cfg.platform_app_secret.get_secret_value(),
        access_tokens(cfg),
        shop_ciphers=parse_token_map(cfg.platform_shop_ciphers),
        qps_per_api=cfg.platform_qps_per_api,
        max_connections=cfg.platform_max_connections,
    )


def webhook_adapters_from_settings(cfg: ChatPlatformSettings) -> dict[str, WebhookAdapter]:
    """Adapters by route name: ``/webhooks/{name}``; the generic one only when its secret
    is configured (otherwise its route answers 404)."""
    tokens = access_tokens(cfg)
    served = None if "*" in tokens else frozenset(tokens)
    adapters: dict[str, WebhookAdapter] = {
        "tiktok": TikTokWebhookAdapter(
            cfg.platform_app_key, cfg.webhook_secret.get_secret_value(), served
        ),
    }
    if generic_secret := cfg.generic_webhook_secret.get_secret_value():
        adapters["generic"] = GenericWebhookAdapter(generic_secret)
    return adapters
