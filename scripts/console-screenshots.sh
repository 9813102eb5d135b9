#!/usr/bin/env bash
# Screenshots of every seller-console page, desktop (1280 px) and phone (375 px), into
# docs/screenshots/console-*.png: the browser tests take them while they walk the flows.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONSOLE_SCREENSHOT_DIR="${CONSOLE_SCREENSHOT_DIR:-docs/screenshots}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider tests/browser/test_console.py "$@"
