"""Show what the bridge would do with one inbound email.

Usage (from the repo root)::

    python bench/inspect_reply.py FILE.eml

Prints ONE JSON object: ``class`` (reply / auto_reply / bounce / loop / rejected), ``reason``,
``text`` (what the buyer would receive), ``parts`` (the chat messages ``split_for_chat`` makes),
plus ``source``, ``inline_images`` and ``withheld`` for context.
"""

from __future__ import annotations

import argparse
import email
import json
import sys
from email import policy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reply_parser.classify import classify_mail  # noqa: E402
from reply_parser.extract import extract_new_text  # noqa: E402
from reply_parser.split import split_for_chat  # noqa: E402


def inspect(raw: bytes) -> dict[str, object]:
    """The JSON-ready verdict for one raw message."""
    msg = email.message_from_bytes(raw, policy=policy.default)
    verdict = classify_mail(msg)
    extraction = extract_new_text(msg)  # type: ignore[arg-type]
    deliver = verdict.cls == "reply"
    return {
        "class": verdict.cls,
        "reason": verdict.reason,
        "text": extraction.text if deliver else "",
        "parts": split_for_chat(extraction.text) if deliver else [],
        "source": extraction.source,
        "inline_images": [
            {"content_type": i.content_type, "filename": i.filename, "content_id": i.content_id,
             "bytes": len(i.data)}
            for i in extraction.inline_images
        ],
        "withheld": list(extraction.withheld),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path)
    ns = parser.parse_args(argv)
    print(json.dumps(inspect(ns.file.read_bytes()), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
