"""Entry point: ``python -m mailer``."""

from mailer.mailer_settings import MailerSettings
from shared.chat_platform.from_settings import tiktok_client_secrets
from shared.secrets_policy import REPLY_TOKEN_KEYS, Origin, SecretSetting
from shared.service_runtime import run_service

# Reply addresses are signed here; the relay password only when the relay wants a login;
# the platform's credentials for card lookups (TikTok; the generic platform has none).
SECRETS = (
    REPLY_TOKEN_KEYS,
    *tiktok_client_secrets(
        lambda cfg: getattr(cfg, "card_lookups", False) and cfg.chat_platform == "tiktok"
    ),
    SecretSetting("smtp_password", Origin.ISSUED, needed=lambda cfg: bool(cfg.smtp_username)),
)
SETTINGS = MailerSettings  # the one settings class this service reads


if __name__ == "__main__":
    cfg = SETTINGS()
    from mailer.app import main

    run_service("mailer", cfg, SECRETS, lambda runtime: main(runtime, cfg))
