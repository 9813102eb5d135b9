#!/usr/bin/env bash
# Type-check shared/, every service and devstack/. mypy takes packages by import name, and
# services/reply-parser is imported as reply_parser: so it runs in var/mypy (git-ignored),
# a folder of links named as the packages are imported. Settings: [tool.mypy] in pyproject.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var/mypy
for pkg in ingest consolidator mailer fanout; do ln -sfn "../../services/$pkg" "var/mypy/$pkg"; done
ln -sfn ../../services/reply-parser var/mypy/reply_parser
ln -sfn ../../shared var/mypy/shared
ln -sfn ../../devstack var/mypy/devstack
cd var/mypy
exec ../../.venv/bin/mypy --config-file ../../pyproject.toml \
  -p shared -p ingest -p consolidator -p mailer -p reply_parser -p fanout -p devstack
