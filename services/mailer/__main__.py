"""Entry point: ``python -m mailer``."""

import asyncio

from mailer.app import main
from shared.config import get_settings
from shared.logging import setup_logging

if __name__ == "__main__":
    setup_logging("mailer", get_settings().log_level)
    asyncio.run(main())
