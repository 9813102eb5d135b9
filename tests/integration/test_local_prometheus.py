"""The local run's Prometheus (devstack/prometheus_local.py): its generated config and the
project's alert rules pass ``promtool check config``, and Prometheus started with it scrapes
a running service and loads every alert. Skipped, with the reason, without Debian's
``prometheus`` package."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.broker import free_port
from devstack.prometheus_local import (
    RULE_FILE,
    RuleFileError,
    plain_rules,
    prometheus_spec,
    write_config,
)
from tests.conftest import Stack
from tests.polling import eventually

pytestmark = pytest.mark.integration

ALERTS = RULE_FILE.read_text().count("- alert: ")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} missing: apt-get install prometheus (the run command says so too)")
    return found


def test_generated_config_and_rules_pass_promtool(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"ingest": 8000, "mailer": 8102})
    done = subprocess.run(
        [tool("promtool"), "check", "config", config.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {ALERTS} rules found" in done.stdout


def test_a_rule_file_of_another_shape_is_refused_with_the_reason() -> None:
    with pytest.raises(RuleFileError, match="spec"):
        plain_rules("apiVersion: v1\nkind: ConfigMap\ndata: {}\n")
    with pytest.raises(RuleFileError, match="last top-level key"):
        plain_rules("spec:\n  groups: []\nmetadata:\n  name: x\n")


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    config = write_config(tmp_path, {"ingest": stack.ports.ingest}, scrape_interval="1s")
    port = free_port()
    spec = prometheus_spec(tool("prometheus"), config, port)
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(spec.argv, env=dict(spec.env), stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


async def test_prometheus_scrapes_a_running_service_with_the_alerts_loaded(
    prometheus: str,
) -> None:
    async with httpx.AsyncClient(base_url=prometheus, timeout=5.0) as http:

        async def ingest_up() -> bool:
            try:
                resp = await http.get("/api/v1/query", params={"query": 'up{job="ingest"}'})
            except httpx.HTTPError:
                return False
            if resp.status_code != 200:  # 503 until its storage is ready
                return False
            result = resp.json()["data"]["result"]
            return bool(result) and result[0]["value"][1] == "1"

        await eventually(ingest_up, timeout_s=30, interval_s=0.5, what="ingest scraped")
        series = await http.get(
            "/api/v1/query", params={"query": 'count({job="ingest", __name__=~"bridge_.*"})'}
        )
        assert int(series.json()["data"]["result"][0]["value"][1]) > 0
        rules = (await http.get("/api/v1/rules")).json()["data"]["groups"]
        assert sum(1 for g in rules for r in g["rules"] if r["type"] == "alerting") == ALERTS
