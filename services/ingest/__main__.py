"""Entry point: ``python -m ingest``."""

import uvicorn

from ingest.admin_signing import parse_signing_keys
from shared.chat_platform.from_settings import WEBHOOK_SECRETS, tiktok_client_secrets
from shared.config import get_settings
from shared.logging import setup_logging
from shared.secrets_policy import Origin, SecretSetting, refuse_weak_secrets

# Webhook signatures, the platform client (buyer names), the admin API's keys.
SECRETS = (
    *WEBHOOK_SECRETS,
    *tiktok_client_secrets(),
    SecretSetting("admin_token_keys", Origin.GENERATED, ring=parse_signing_keys),
    SecretSetting("admin_operator_token", Origin.GENERATED),
)

if __name__ == "__main__":
    cfg = get_settings()
    setup_logging("ingest", cfg.log_level)
    refuse_weak_secrets(cfg, SECRETS, "ingest")  # before a port is opened or Kafka touched
    from ingest.app import create_app

    uvicorn.run(create_app(cfg), host=cfg.http_host, port=cfg.ingest_port, log_level="warning",
                access_log=False)
