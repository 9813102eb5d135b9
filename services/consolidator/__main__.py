"""Entry point: ``python -m consolidator`` (a faust worker)."""

from shared.config import get_settings
from shared.logging import setup_logging
from shared.secrets_policy import SecretSetting, refuse_weak_secrets

SECRETS: tuple[SecretSetting, ...] = ()  # it reads no secret; checked like every service

if __name__ == "__main__":
    cfg = get_settings()
    setup_logging("consolidator", cfg.log_level)
    refuse_weak_secrets(cfg, SECRETS, "consolidator")
    from consolidator.app import app

    app.main()
