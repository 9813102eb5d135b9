"""The end-to-end bench's pure parts: percentiles, per-second series, CPU accounting,
the schedule, and the table, JSON and chart it writes (bench/e2e_report.py,
bench/process_stats.py, bench/bench_e2e.py)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from bench_e2e import Schedule  # noqa: E402
from e2e_report import (  # noqa: E402
    ROWS,
    STAGES,
    RunResult,
    cpu_per_thousand,
    draw_chart,
    latency_per_second,
    median_figures,
    per_second,
    percentile,
    rate,
    report_json,
    table,
    write_json,
)
from process_stats import process_cpu_seconds, tree_cpu_seconds, tree_rss_bytes  # noqa: E402

samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200)


@given(samples, st.floats(0, 100), st.floats(0, 100))
def test_a_percentile_lies_within_the_values_and_grows_with_p(
    values: list[float], p: float, q: float
) -> None:
    low, high = sorted((p, q))
    assert min(values) <= percentile(values, low) <= percentile(values, high) <= max(values)


@given(samples)
def test_the_50th_percentile_is_the_median_and_the_ends_are_min_and_max(
    values: list[float],
) -> None:
    assert math.isclose(percentile(values, 50), statistics.median(values), abs_tol=1e-6)
    assert percentile(values, 0) == min(values) and percentile(values, 100) == max(values)


def test_percentiles_interpolate_between_ranks_and_are_nan_without_values() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 3.97
    assert math.isnan(percentile([], 50))


def test_rates_and_per_second_series_count_events_from_the_start() -> None:
    times = [100.0, 100.5, 101.2, 102.9, 103.0]
    assert rate(times) == 4 / 3.0 and rate([1.0]) == 0.0
    assert per_second(times, 100.0, 4) == [2, 1, 1, 1]
    assert latency_per_second([(100.1, 1.0), (100.9, 3.0), (102.5, 0.5)], 100.0, 3) == [
        2.0,
        None,
        0.5,
    ]


def test_cpu_per_thousand_messages_sums_every_process() -> None:
    cpu = cpu_per_thousand({"ingest": 1.5, "mailer": 3.0, "fanout": 0.5}, 2_000)
    assert cpu == {"ingest": 0.75, "mailer": 1.5, "fanout": 0.25, "total": 2.5}
    assert math.isnan(cpu_per_thousand({"ingest": 1.0}, 0)["total"])


def test_a_process_tree_counts_the_cpu_and_memory_of_its_children() -> None:
    burn = (
        "import time\nend = time.process_time() + 0.4\n"
        "while time.process_time() < end: pass\nprint('done', flush=True)\ntime.sleep(30)"
    )
    child = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"done"
        mine = process_cpu_seconds(os.getpid())
        assert process_cpu_seconds(child.pid) >= 0.35
        assert tree_cpu_seconds(os.getpid()) - mine >= 0.35
        assert tree_rss_bytes(os.getpid()) > tree_rss_bytes(child.pid) > 0
    finally:
        child.kill()
        child.wait()
    assert process_cpu_seconds(child.pid) == 0.0  # gone: counts nothing


def test_the_schedule_offers_every_message_in_order_and_answers_the_share() -> None:
    convs = [("shop", f"c{i}") for i in range(10)]
    schedule = Schedule.make(convs, messages=3, seconds=6.0, reply_share=0.5)
    assert len(schedule.sends) == 30
    assert [t for t, _, _ in schedule.sends] == sorted(t for t, _, _ in schedule.sends)
    assert max(t for t, _, _ in schedule.sends) <= 6.0
    for c in range(10):
        mine = [(t, k) for t, conv, k in schedule.sends if conv == c]
        assert [k for _, k in mine] == [0, 1, 2]
        assert mine[2][0] - mine[0][0] <= 2.0 + 1e-9  # one burst: well inside a dev window
    assert len(schedule.replied) == 5


def _run(**figures: float) -> RunResult:
    base = {key: 1.0 for key, _, _ in ROWS}
    return RunResult(
        {**base, **figures}, {STAGES[0]: [3, 4], "digest latency": [None, 0.5]}, {"ingest": 60.0}
    )


def test_medians_table_and_json_carry_every_figure(tmp_path: Path) -> None:
    runs = [_run(cpu_ratio=2.0), _run(cpu_ratio=4.0, digest_p99_s=math.nan), _run(cpu_ratio=3.0)]
    summary = median_figures(runs)
    assert summary["cpu_ratio"] == {"median": 3.0, "min": 2.0, "max": 4.0}
    assert summary["digest_p99_s"]["median"] == 1.0  # a run without samples is left out
    text = table(summary, runs[-1].memory_mib, "header")
    for _, label, _ in ROWS:
        assert label in text
    assert "stack / bare CPU (figure of record)" in text and "3.00" in text
    write_json(tmp_path / "out" / "e2e.json", report_json({"broker": "tansu"}, runs))
    loaded = json.loads((tmp_path / "out" / "e2e.json").read_text())
    assert loaded["median"]["cpu_ratio"]["median"] == 3.0
    assert loaded["runs"][1]["figures"]["digest_p99_s"] is None  # NaN written as null
    assert loaded["runs"][0]["series"]["digest latency"] == [None, 0.5]


def test_the_chart_is_written_as_a_png(tmp_path: Path) -> None:
    draw_chart(tmp_path / "e2e.png", _run(), "title")
    assert (tmp_path / "e2e.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
