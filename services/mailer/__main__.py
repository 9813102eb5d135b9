"""Entry point: ``python -m mailer``."""

import asyncio

from shared.config import get_settings
from shared.logging import setup_logging
from mailer.app import main

if __name__ == "__main__":
    setup_logging("mailer", get_settings().log_level)
    asyncio.run(main())
