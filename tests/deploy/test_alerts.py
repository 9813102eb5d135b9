"""The PrometheusRule passes `promtool check rules`, its alerts behave as the unit tests in
promtool/alerts_test.yaml say, and each alert has a summary and a runbook section."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import K8S, ROOT

RULE_FILE = K8S / "base/monitoring/prometheusrule.yaml"
PROMTOOL_TESTS = Path(__file__).parent / "promtool/alerts_test.yaml"


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool missing: apt-get install -y prometheus (scripts/test.sh does it)"
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rule_spec() -> dict[str, Any]:
    doc = yaml.safe_load(RULE_FILE.read_text())
    assert doc["kind"] == "PrometheusRule"
    return doc["spec"]


def write_rules(tmp_path: Path, spec: dict[str, Any]) -> Path:
    """The PrometheusRule's spec as a plain Prometheus rules file, beside the unit tests."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copy(PROMTOOL_TESTS, tmp_path / "alerts_test.yaml")
    return tmp_path


def alerts() -> list[dict[str, Any]]:
    return [r for g in rule_spec()["groups"] for r in g["rules"] if "alert" in r]


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    done = promtool("check", "rules", "rules.yaml", cwd=write_rules(tmp_path, rule_spec()))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in done.stdout


def test_alerts_pass_their_promtool_unit_tests(tmp_path: Path) -> None:
    done = promtool("test", "rules", "alerts_test.yaml", cwd=write_rules(tmp_path, rule_spec()))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_fail_when_a_threshold_is_loosened(tmp_path: Path) -> None:
    """Control: the unit tests pin the thresholds, so they can fail."""
    spec = rule_spec()
    for rule in spec["groups"][0]["rules"]:
        if rule.get("alert") == "BridgeSmtpFailureRate":
            rule["expr"] = rule["expr"].replace("> 0.02", "> 0.2")
    done = promtool("test", "rules", "alerts_test.yaml", cwd=write_rules(tmp_path, spec))
    assert done.returncode != 0


def test_every_issue_alert_exists() -> None:
    names = {a["alert"] for a in alerts()}
    assert names >= {
        "BridgeConsumerLagGrowing",
        "BridgeDeadLettersAppearing",
        "BridgeSmtpFailureRate",
        "BridgeDigestLatencyHigh",
        "BridgeWebhook5xxRate",
    }


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the markdown headings."""
    return {
        re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+\s+(.+)$", markdown, re.M)
    }


@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_alert_has_a_summary_severity_and_a_runbook_section(alert: str) -> None:
    rule = next(a for a in alerts() if a["alert"] == alert)
    assert rule["annotations"]["summary"].strip()
    assert rule["labels"]["severity"] in ("warning", "critical")
    path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    assert path == "docs/runbook.md"
    assert anchor == alert.lower()
    assert anchor in _anchors((ROOT / path).read_text()), f"no '## {alert}' in {path}"


def test_alert_expressions_group_only_by_bounded_labels() -> None:
    allowed = {
        "namespace",
        "group",
        "service",
        "reason",
        "le",
        "outcome",
        "class",
        "topic",
        "partition",
    }
    for rule in alerts():
        for labels in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert {x.strip() for x in labels.split(",")} <= allowed, rule["alert"]
