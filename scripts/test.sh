#!/usr/bin/env bash
# Install the bridge with its test tools into .venv and run every test.
# System packages the browser and spam tests need (Chromium, SpamAssassin, promtool)
# are installed with apt when missing; everything else comes from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v spamassassin >/dev/null || need_apt+=(spamassassin)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v promtool >/dev/null || need_apt+=(prometheus)
fc-list 2>/dev/null | grep -qi "noto color emoji" || need_apt+=(fonts-noto-color-emoji)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test,bench,disk]'
# Lint first: a style break fails fast, before the slower integration tests.
.venv/bin/ruff check .
.venv/bin/mypy shared --ignore-missing-imports
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
