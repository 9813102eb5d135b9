"""Entry points: ``python -m reply_parser front`` (SMTP) or ``python -m reply_parser parser``."""

import asyncio
import sys

from shared.config import get_settings
from shared.logging import setup_logging
from shared.secrets_policy import REPLY_TOKEN_KEYS, SecretSetting, refuse_weak_secrets

# The front verifies reply addresses at RCPT time; the parser reads no secret.
SECRETS: dict[str, tuple[SecretSetting, ...]] = {"front": (REPLY_TOKEN_KEYS,), "parser": ()}

if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role not in SECRETS:
        sys.exit("usage: python -m reply_parser front|parser")
    cfg = get_settings()
    setup_logging(f"reply-parser-{role}", cfg.log_level)
    refuse_weak_secrets(cfg, SECRETS[role], f"reply-parser {role}")
    if role == "front":
        from reply_parser.front_app import main
    else:
        from reply_parser.parser_app import main
    asyncio.run(main())
