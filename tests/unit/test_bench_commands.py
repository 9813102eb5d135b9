"""Every command under bench/ that the README names still starts: its imports resolve
and its arguments parse (a bench is run by hand, so nothing else would notice a break)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
COMMANDS = [
    "bench_consolidator.py",
    "bench_e2e.py",
    "bench_extract.py",
    "bench_fanout.py",
    "bench_ingest.py",
    "bench_mailer.py",
    "bench_state.py",
    "chaos.py",
    "inspect_reply.py",
    "run_all.py",
    "score_replies.py",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_bench_command_answers_help(command: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / command), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
