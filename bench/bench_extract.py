"""Throughput of reply extraction, ours beside the off-the-shelf extractors.

Usage (from the repo root)::

    python bench/bench_extract.py [DIR ...]

Default corpora: tests/fixtures/replies and /work/shared/fixtures/reply when present. Each
extractor runs over every case (parse + extract for .eml, extract for .txt) for several rounds
on one core; printed: median emails/s per extractor and the ratio ours/theirs.
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

from score_replies import Case, load_cases, off_the_shelf, ours  # noqa: E402

ROUNDS = 7
MIN_ROUND_SECONDS = 0.3


def emails_per_second(cases: list[Case], extractor: Callable[[Case], str]) -> float:
    """Median over ROUNDS of cases/s; each round repeats the corpus for MIN_ROUND_SECONDS."""
    rates = []
    for _ in range(ROUNDS):
        done = 0
        start = time.perf_counter()
        while True:
            for case in cases:
                extractor(case)
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
    roots = ns.corpus or [p for p in (Path("tests/fixtures/replies"),
                                      Path("/work/shared/fixtures/reply")) if p.exists()]
    cases = [case for root in roots for case in load_cases(root)]
    if not cases:
        print("no cases", file=sys.stderr)
        return 2
    mine = emails_per_second(cases, ours)
    print(f"{'extractor':<22} {'emails/s (median)':>18} {'ours/theirs':>12}")
    print(f"{'ours':<22} {mine:>18.0f} {'':>12}")
    for name, extractor in off_the_shelf():
        theirs = emails_per_second(cases, extractor)
        print(f"{name:<22} {theirs:>18.0f} {mine / theirs:>11.2f}x")
    print(f"cases={len(cases)} rounds={ROUNDS} (parse + extract per .eml case, one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
