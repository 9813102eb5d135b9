"""The end-to-end bench's figures: percentiles, per-second series, medians of runs, the
table, the JSON file and the chart. Pure except for the two writers at the end."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The stages of the pipeline as the bench sees them from outside, in flow order.
STAGES = (
    "buyer messages accepted by ingest",
    "digests at the sink",
    "reply mails accepted by the SMTP front",
    "reply parts visible to the buyer",
)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) by linear interpolation between closest ranks; NaN
    for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(times: Sequence[float]) -> float:
    """Events per second between the first and the last event (0 for fewer than two)."""
    if len(times) < 2 or max(times) == min(times):
        return 0.0
    return (len(times) - 1) / (max(times) - min(times))


def per_second(times: Sequence[float], start: float, seconds: int) -> list[int]:
    """How many events fell in each whole second after ``start``."""
    counts = [0] * seconds
    for t in times:
        second = int(t - start)
        if 0 <= second < seconds:
            counts[second] += 1
    return counts


def latency_per_second(
    samples: Sequence[tuple[float, float]], start: float, seconds: int
) -> list[float | None]:
    """The median latency of the samples (event time, latency) in each whole second."""
    buckets: list[list[float]] = [[] for _ in range(seconds)]
    for t, latency in samples:
        second = int(t - start)
        if 0 <= second < seconds:
            buckets[second].append(latency)
    return [statistics.median(b) if b else None for b in buckets]


def cpu_per_thousand(cpu_seconds: Mapping[str, float], messages: int) -> dict[str, float]:
    """CPU seconds per 1,000 buyer messages, per process and in all (``total``)."""
    if messages <= 0:
        return {name: math.nan for name in [*cpu_seconds, "total"]}
    out = {name: cpu / messages * 1000 for name, cpu in cpu_seconds.items()}
    out["total"] = sum(cpu_seconds.values()) / messages * 1000
    return out


@dataclass
class RunResult:
    """One run's figures (rates per second, latencies in seconds, CPU per 1,000 buyer
    messages, memory in MiB) and its per-second series for the chart."""

    figures: dict[str, float]
    series: dict[str, list[Any]] = field(default_factory=dict)
    memory_mib: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)


def median_figures(runs: Sequence[RunResult]) -> dict[str, dict[str, float]]:
    """Per figure: the median over the runs, and the lowest and highest (NaN runs ignored)."""
    out: dict[str, dict[str, float]] = {}
    for name in runs[0].figures:
        values = [r.figures[name] for r in runs if not math.isnan(r.figures.get(name, math.nan))]
        out[name] = (
            {"median": statistics.median(values), "min": min(values), "max": max(values)}
            if values
            else {"median": math.nan, "min": math.nan, "max": math.nan}
        )
    return out


# (figure key, label, unit): the table's rows, in order; ratios last.
ROWS: tuple[tuple[str, str, str], ...] = (
    ("offered_msgs_per_s", "buyer messages offered", "/s"),
    ("ingest_msgs_per_s", STAGES[0], "/s"),
    ("digests_per_s", STAGES[1], "/s"),
    ("replies_per_s", STAGES[2], "/s"),
    ("parts_per_s", STAGES[3], "/s"),
    ("rejected_webhooks", "webhooks not answered 2xx", ""),
    ("digests_complete", "conversations with their digest", "%"),
    ("parts_complete", "replies visible to the buyer", "%"),
    ("digest_p50_s", "deadline -> relay 250, p50", "s"),
    ("digest_p99_s", "deadline -> relay 250, p99", "s"),
    ("part_p50_s", "inbound 250 -> part at buyer, p50", "s"),
    ("part_p99_s", "inbound 250 -> part at buyer, p99", "s"),
    ("split_digests", "extra digests of one conversation", ""),
    ("duplicate_digests", "digests delivered twice (same Message-ID)", ""),
    ("notices", "notices to sellers about these conversations", ""),
    ("duplicate_parts", "reply parts posted twice (sandbox)", ""),
    ("stack_cpu_s_per_1k", "CPU s / 1,000 msgs, every stack process", "s"),
    ("bare_cpu_s_per_1k", "CPU s / 1,000 msgs, bare-library chain", "s"),
    ("cpu_ratio", "stack / bare CPU (figure of record)", "x"),
    ("broker_cpu_s_per_1k", "CPU s / 1,000 msgs, broker (stack run)", "s"),
    ("driver_cpu_s_per_1k", "CPU s / 1,000 msgs, bench driver+sandbox+sink", "s"),
    ("bare_broker_cpu_s_per_1k", "CPU s / 1,000 msgs, broker (bare run)", "s"),
    ("relay_mailer_mails_per_s", "mailer, relay 50-100 ms", "/s"),
    ("relay_bare_mails_per_s", "bare aiosmtplib, same relay", "/s"),
    ("relay_ratio", "mailer / bare on the slow relay", "x"),
)


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "%":
        return f"{value:.1%}"
    if unit in ("x", "s") or abs(value) < 10:
        return f"{value:.2f}" if unit != "" else f"{value:g}"
    return f"{value:,.0f}"


def table(
    summary: Mapping[str, Mapping[str, float]], memory_mib: Mapping[str, float], header: str
) -> str:
    """The printed table: one row per figure (median, lowest-highest), then memory."""
    lines = [header, f"{'figure':<46}{'median':>10}{'min-max':>20}"]
    for key, label, unit in ROWS:
        if key not in summary:
            continue
        fig = summary[key]
        spread = f"{_number(fig['min'], unit)}-{_number(fig['max'], unit)}"
        lines.append(
            f"{label + (' (' + unit + ')' if unit in ('/s', 's') else ''):<46}"
            f"{_number(fig['median'], unit):>10}{spread:>20}"
        )
    if memory_mib:
        lines.append(f"\n{'resident memory at the end (last run)':<46}{'MiB':>10}")
        lines += [f"  {name:<44}{mib:>10.0f}" for name, mib in memory_mib.items()]
    return "\n".join(lines)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def report_json(config: Mapping[str, Any], runs: Sequence[RunResult]) -> dict[str, Any]:
    """Everything the bench measured: its configuration, the medians, every run."""
    return _jsonable(
        {
            "config": dict(config),
            "median": median_figures(runs),
            "runs": [
                {
                    "figures": r.figures,
                    "cpu_seconds_per_1k": r.cpu,
                    "memory_mib": r.memory_mib,
                    "series": r.series,
                }
                for r in runs
            ],
        }
    )


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")


def draw_chart(path: Path, run: RunResult, title: str) -> None:
    """Throughput (top) and latency (bottom) per second of one run, a line per stage."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for stage in STAGES:
        counts = run.series.get(stage, [])
        top.plot(range(len(counts)), counts, label=stage)
    top.set_ylabel("per second")
    top.legend(fontsize="small")
    top.set_title(title)
    for name, label in (
        ("digest latency", "digest deadline -> relay 250"),
        ("part latency", "inbound 250 -> part at buyer"),
    ):
        values = run.series.get(name, [])
        xs = [i for i, v in enumerate(values) if v is not None]
        bottom.plot(xs, [values[i] for i in xs], marker=".", label=label)
    bottom.set_ylabel("median latency (s)")
    bottom.set_xlabel("seconds since the first buyer message")
    bottom.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
