"""``python bench/chaos.py``: the whole stack under load while services, a Kafka broker, the
mail relay and the chat API fail; an independent checker counts what came out.

Prints a line per fault as it happens, then for digests and for reply parts
``lost=N duplicated=N reordered=N longest_stall=Ns``, the documented duplicate window
(same Message-ID sent twice: the mailer died between the relay's 250 and its outcome
record) on its own line, and the restarts. Writes the same as JSON under ``var/chaos/``
(git-ignored). Exit status 1 when anything was lost, reordered or duplicated outside the
documented window. The seed is printed; ``--seed`` repeats a run's plan.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.chaos import BROKERS, ChaosOptions, run_chaos, write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=BROKERS, default="tansu")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--shops", type=int, default=50)
    parser.add_argument(
        "--seconds", type=float, default=300.0, help="load phase (faults inside it)"
    )
    parser.add_argument("--replicas", type=int, default=2, help="of every consuming service")
    parser.add_argument("--kills-per-service", type=int, default=1)
    parser.add_argument(
        "--drain-seconds", type=float, default=None, help="most to wait for what is owed"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--short",
        action="store_true",
        help="the CI-sized run: 1,200 messages, 200 conversations, 20 s, 1 replica",
    )
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**6)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    root = ROOT / "var" / "chaos" / f"{args.broker}-{stamp}"
    given = {
        "broker": args.broker,
        "kills_per_service": args.kills_per_service,
        "seed": seed,
        "root": root,
    }
    if args.drain_seconds is not None:
        given["drain_s"] = args.drain_seconds
    sizes = {
        "messages": args.messages,
        "conversations": args.conversations,
        "shops": args.shops,
        "seconds": args.seconds,
        "replicas": args.replicas,
    }
    if args.short:  # the CI-sized run; sizes given on the command line still win
        opts = ChaosOptions.short(
            **given, **{k: v for k, v in sizes.items() if v != parser.get_default(k)}
        )
    else:
        opts = ChaosOptions(**given, **sizes)
    report = asyncio.run(run_chaos(opts))
    out = root / "report.json"
    write_report(report, out)
    print(f"seed={seed}; JSON: {out}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
