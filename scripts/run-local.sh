#!/usr/bin/env bash
# Install the bridge into .venv and run the whole system locally (Ctrl-C stops it). The first
# line it prints is the playground's address (devstack/playground.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[disk]'  # ingest's admin directory is on disk
# The services run in development mode (BRIDGE_DEV_MODE=true, set by devstack/stack.py
# stack_env): they accept the default secrets, which production refuses.
exec .venv/bin/python -m devstack "$@"
