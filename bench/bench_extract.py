"""Throughput of inbound reply handling, ours beside the off-the-shelf extractors.

Usage (from the repo root)::

    python bench/bench_extract.py [DIR ...]

Default corpora: tests/fixtures/replies and /work/shared/fixtures/reply when present (the
.eml cases: typical replies from mail clients and helpdesks). Rows, each on one core, median
emails/s over several rounds:

- ``ours: classify+extract`` -- the parser's whole per-mail work without DNS: parse, loop
  detection, classification, extraction, content policy, split (``inbound_pipeline.decide``);
- ``ours: extract only`` -- parse + extraction, comparable with the off-the-shelf rows;
- the off-the-shelf extractors -- parse + their extraction of the text body.

The header cache of our mail policy is cleared before every mail, so repeating the corpus
does not flatter the figure: each mail pays for its own header parsing as a fresh one would.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from score_replies import Case, load_cases, off_the_shelf  # noqa: E402

from reply_parser import mail_policy  # noqa: E402
from reply_parser.extract import extract_new_text  # noqa: E402
from reply_parser.inbound_pipeline import (  # noqa: E402
    OwnIdentity,
    PipelineConfig,
    decide,
    parse_mail,
)
from shared.events import InboundEnvelope, ShopSettings  # noqa: E402

ROUNDS = 7
MIN_ROUND_SECONDS = 0.3
SELLER = "seller@shop.example"
ENV = InboundEnvelope(
    mail_id="bench",
    shop_id="1",
    conversation_id="1",
    mail_from=SELLER,
    rcpt_to="t@chat-seller-us.bridge.localhost",
    received_at_ms=0,
)
SHOP = ShopSettings(shop_id="1", destination_email=SELLER, destination_kind="salesforce")
OWN = OwnIdentity("digest.bridge.localhost", "bridge.localhost")
# Sender authorization is a set lookup; switched off so every corpus mail (whatever its
# From) goes through extraction, the expensive part.
CONFIG = PipelineConfig(check_sender=False)


def classify_and_extract(case: Case) -> object:
    mail_policy.forget_parsed_headers()
    return decide(case.raw or b"", ENV, SHOP, OWN, config=CONFIG)


def extract_only(case: Case) -> object:
    mail_policy.forget_parsed_headers()
    return extract_new_text(parse_mail(case.raw or b"")).text


def emails_per_second(cases: list[Case], work: Callable[[Case], object]) -> float:
    """Median over ROUNDS of cases/s; each round repeats the corpus for MIN_ROUND_SECONDS."""
    rates = []
    for _ in range(ROUNDS):
        done = 0
        start = time.perf_counter()
        while True:
            for case in cases:
                work(case)
            done += len(cases)
            elapsed = time.perf_counter() - start
            if elapsed >= MIN_ROUND_SECONDS:
                break
        rates.append(done / elapsed)
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="*", type=Path)
    ns = parser.parse_args(argv)
    roots = ns.corpus or [
        p
        for p in (Path("tests/fixtures/replies"), Path("/work/shared/fixtures/reply"))
        if p.exists()
    ]
    cases = [case for root in roots for case in load_cases(root) if case.raw is not None]
    if not cases:
        print("no .eml cases", file=sys.stderr)
        return 2
    pipeline = emails_per_second(cases, classify_and_extract)
    extract = emails_per_second(cases, extract_only)
    print(f"{'work per mail':<32} {'emails/s/core':>14} {'pipeline/this':>14}")
    print(f"{'ours: classify+extract':<32} {pipeline:>14.0f} {'':>14}")
    print(f"{'ours: extract only':<32} {extract:>14.0f} {pipeline / extract:>13.2f}x")
    for name, extractor in off_the_shelf():
        theirs = emails_per_second(cases, extractor)
        print(f"{name + ': extract only':<32} {theirs:>14.0f} {pipeline / theirs:>13.2f}x")
    print(
        f"cases={len(cases)} .eml, rounds={ROUNDS} (median), one core, header cache cold per mail"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
