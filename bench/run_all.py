"""Run every benchmark once, in turn, and print each one's table: ``python bench/run_all.py``.

Each bench starts what it needs on 127.0.0.1 (embedded broker, sink, sandbox),
compares against its bare baseline in the same run, and prints medians. The
HTTP benches use wrk (Debian package ``wrk``). ``--only NAME`` runs one.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

BENCHES: dict[str, list[str]] = {
    "reply-scoring": ["score_replies.py", str(ROOT / "tests" / "fixtures" / "replies")],
    "reply-extraction": ["bench_extract.py"],
    "ingest": ["bench_ingest.py", "--runs", "3", "--seconds", "5"],
    "fanout": ["bench_fanout.py"],
    "consolidator": ["bench_consolidator.py"],
    "mailer": ["bench_mailer.py"],
    "e2e": ["bench_e2e.py"],
    # The default sizes stop at 100k shops / 100k keys; the million-shop run is
    # bench_state.py without arguments (about half an hour on two cores).
    "state": [
        "bench_state.py",
        "--shops",
        "10000,100000",
        "--keys",
        "100000",
        "--extrapolate-keys",
        "",
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(BENCHES), action="append")
    args = parser.parse_args()
    names = args.only or list(BENCHES)
    if "ingest" in names and shutil.which("wrk") is None:
        print("wrk not found: install it (apt-get install -y wrk) for the ingest bench")
        names.remove("ingest")
    failed = []
    for name in names:
        script, *rest = BENCHES[name]
        if not (BENCH / script).exists():
            print(f"\n## {name}: {script} is missing")
            failed.append(name)
            continue
        print(f"\n## {name}  ({script} {' '.join(rest)})", flush=True)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, str(BENCH / script), *rest], cwd=ROOT, check=False)
        print(f"-- {name}: exit {proc.returncode}, {time.monotonic() - started:.0f} s", flush=True)
        if proc.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nbenches that failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
