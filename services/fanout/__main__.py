"""Entry point: ``python -m fanout``."""

import asyncio

from shared.chat_platform.from_settings import CHAT_PLATFORM_SECRETS
from shared.config import get_settings
from shared.logging import setup_logging
from shared.secrets_policy import refuse_weak_secrets

SECRETS = CHAT_PLATFORM_SECRETS  # the configured platform's credentials, nothing else

if __name__ == "__main__":
    cfg = get_settings()
    setup_logging("fanout", cfg.log_level)
    refuse_weak_secrets(cfg, SECRETS, "fanout")  # before a port is opened or Kafka touched
    from fanout.app import main

    asyncio.run(main())
