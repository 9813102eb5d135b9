"""Entry point: ``python -m fanout``."""

from shared.chat_platform.from_settings import CHAT_PLATFORM_SECRETS
from shared.config import Settings
from shared.service_runtime import run_service

SECRETS = CHAT_PLATFORM_SECRETS  # the configured platform's credentials, nothing else

if __name__ == "__main__":
    cfg = Settings()
    from fanout.app import main

    run_service("fanout", cfg, SECRETS, lambda runtime: main(runtime, cfg))
