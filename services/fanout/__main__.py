"""Entry point: ``python -m fanout``."""

from fanout.fanout_settings import FanoutSettings
from shared.chat_platform.from_settings import CHAT_PLATFORM_SECRETS
from shared.service_runtime import run_service

SECRETS = CHAT_PLATFORM_SECRETS  # the configured platform's credentials, nothing else
SETTINGS = FanoutSettings  # the one settings class this service reads


if __name__ == "__main__":
    cfg = SETTINGS()
    from fanout.app import main

    run_service("fanout", cfg, SECRETS, lambda runtime: main(runtime, cfg))
