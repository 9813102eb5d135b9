"""Prometheus for the local run: scrapes every service's /metrics with the project's alert
rules loaded, on 127.0.0.1, when Debian's ``prometheus`` package is installed.

The rules are the ones production loads: the ``spec`` of the PrometheusRule under
``deploy/k8s/base/monitoring/`` written out as a plain rules file (one home for each alert).
Each service is its own scrape job and carries ``namespace="local"``, the label the alerts
group by in a cluster.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from devstack.supervisor import ServiceSpec
from shared.errors import BridgeError

# Not 9090: Debian's prometheus package runs its own service there.
PROMETHEUS_PORT = 9190
RULE_FILE = Path(__file__).resolve().parents[1] / "deploy/k8s/base/monitoring/prometheusrule.yaml"
SCRAPE_INTERVAL = "5s"
HOW_TO_GET_IT = "apt-get install prometheus (Debian) adds Prometheus to the local run"


class RuleFileError(BridgeError, ValueError):
    """The PrometheusRule does not have the shape the local run reads."""


def prometheus_binary() -> str | None:
    """Debian's ``prometheus`` if installed."""
    return shutil.which("prometheus")


def plain_rules(prometheus_rule: str) -> str:
    """The ``spec`` block of a PrometheusRule manifest as a plain Prometheus rules file
    (its lines, two spaces less indented): Prometheus reads ``groups:`` at the top."""
    lines = prometheus_rule.splitlines()
    try:
        start = lines.index("spec:") + 1
    except ValueError:
        raise RuleFileError("no top-level 'spec:' line in the PrometheusRule") from None
    body = lines[start:]
    if not body or not body[0].startswith("  groups:"):
        raise RuleFileError("the PrometheusRule's spec must start with 'groups:'")
    if any(line.strip() and not line.startswith("  ") for line in body):
        raise RuleFileError("'spec:' must be the PrometheusRule's last top-level key")
    return "\n".join(line[2:] for line in body) + "\n"


def write_config(
    directory: Path,
    targets: Mapping[str, int],
    *,
    rule_file: Path = RULE_FILE,
    scrape_interval: str = SCRAPE_INTERVAL,
) -> Path:
    """Write ``prometheus.yml`` (a job per service in ``targets``: name -> HTTP port) and
    ``rules.yaml`` into ``directory``; returns the config's path. JSON is YAML, so the
    config needs no YAML library."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(plain_rules(rule_file.read_text()))
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": ["rules.yaml"],
        "scrape_configs": [
            {
                "job_name": name,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": "local"}}
                ],
            }
            for name, port in targets.items()
        ],
    }
    path = directory / "prometheus.yml"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def prometheus_spec(binary: str, config: Path, port: int = PROMETHEUS_PORT) -> ServiceSpec:
    """Prometheus as one more supervised process, on loopback, its data beside the config."""
    return ServiceSpec(
        "prometheus",
        (
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={config.parent / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1d",
        ),
        {"PATH": "/usr/bin:/bin", "HOME": str(config.parent)},
    )
