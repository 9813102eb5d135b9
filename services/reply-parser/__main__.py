"""Entry points: ``python -m reply_parser front`` (SMTP) or ``python -m reply_parser parser``."""

import sys

from reply_parser.reply_parser_settings import ReplyParserSettings
from shared.secrets_policy import REPLY_TOKEN_KEYS, SecretSetting
from shared.service_runtime import run_service

# The front verifies reply addresses at RCPT time; the parser reads no secret.
SECRETS: dict[str, tuple[SecretSetting, ...]] = {"front": (REPLY_TOKEN_KEYS,), "parser": ()}
SETTINGS = ReplyParserSettings  # the one settings class this service reads


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role not in SECRETS:
        sys.exit("usage: python -m reply_parser front|parser")
    cfg = SETTINGS()
    if role == "front":
        from reply_parser.front_app import SERVICE, main
    else:
        from reply_parser.parser_app import SERVICE, main
    run_service(
        SERVICE,
        cfg,
        SECRETS[role],
        lambda runtime: main(runtime, cfg),
        process=f"reply-parser {role}",
    )
