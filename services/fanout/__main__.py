"""Entry point: ``python -m fanout``."""

import asyncio

from fanout.app import main
from shared.config import get_settings
from shared.logging import setup_logging

if __name__ == "__main__":
    setup_logging("fanout", get_settings().log_level)
    asyncio.run(main())
