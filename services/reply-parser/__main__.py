"""Entry points: ``python -m reply_parser front`` (SMTP) or ``python -m reply_parser parser``."""

import asyncio
import sys

from shared.config import get_settings
from shared.logging import setup_logging

if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role not in ("front", "parser"):
        sys.exit("usage: python -m reply_parser front|parser")
    setup_logging(f"reply-parser-{role}", get_settings().log_level)
    if role == "front":
        from reply_parser.front_app import main
    else:
        from reply_parser.parser_app import main
    asyncio.run(main())
