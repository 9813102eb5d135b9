"""Entry point: ``python -m mailer``."""

import asyncio

from shared.config import get_settings
from shared.logging import setup_logging
from shared.secrets_policy import REPLY_TOKEN_KEYS, Origin, SecretSetting, refuse_weak_secrets

# Reply addresses are signed here; the relay password only when the relay wants a login.
SECRETS = (
    REPLY_TOKEN_KEYS,
    SecretSetting("smtp_password", Origin.ISSUED, needed=lambda cfg: bool(cfg.smtp_username)),
)

if __name__ == "__main__":
    cfg = get_settings()
    setup_logging("mailer", cfg.log_level)
    refuse_weak_secrets(cfg, SECRETS, "mailer")  # before a port is opened or Kafka touched
    from mailer.app import main

    asyncio.run(main())
