#!/usr/bin/env bash
# Photograph the playground (desktop 1280 px and phone 375 px) into docs/screenshots/ by
# running its browser test on a real local stack (Debian's chromium; never a download),
# then store the pictures with a 256-colour palette (a fifth of the size; needs Pillow,
# which the bench extra installs).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${PLAYGROUND_SCREENSHOT_DIR:-docs/screenshots}"
PLAYGROUND_SCREENSHOT_DIR="$out" .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/browser/test_playground.py -k "zendesk_reply_reaches_the_buyer" "$@"
.venv/bin/python - "$out" <<'PY'
import sys
from pathlib import Path

try:
    from PIL import Image
except ImportError:
    sys.exit("screenshots kept as taken (Pillow missing: pip install -e '.[bench]')")
for path in sorted(Path(sys.argv[1]).glob("playground-*.png")):
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(path, path.stat().st_size // 1024, "KiB")
PY
