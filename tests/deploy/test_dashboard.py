"""The Grafana dashboard covers the flow end to end, with queries over bounded labels.
(That the metrics it names are exported by the running services is checked in
tests/integration/test_metrics_exported.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.deploy.conftest import K8S, docs_of, named, rendered_text

DASHBOARD = K8S / "base/monitoring/bridge-flow-dashboard.json"
METRIC = re.compile(r"\b(bridge_[a-z0-9_]+)")


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries() -> dict[str, list[str]]:
    return {
        p["title"]: [t["expr"] for t in p["targets"]]
        for p in dashboard()["panels"]
        if p["type"] != "row"
    }


def test_every_panel_has_a_query_on_bridge_metrics_in_the_selected_namespace() -> None:
    for title, exprs in queries().items():
        assert exprs, title
        for expr in exprs:
            assert METRIC.search(expr), (title, expr)
            assert 'namespace="$namespace"' in expr, (title, expr)


def test_dashboard_shows_the_flow_end_to_end() -> None:
    used = {m for exprs in queries().values() for e in exprs for m in METRIC.findall(e)}
    assert used >= {
        "bridge_events_handled_total",  # webhooks in
        "bridge_pending_conversations",  # pending
        "bridge_digests_emitted_total",  # digests due (released at deadline)
        "bridge_digests_sent_total",  # sent, SMTP outcomes
        "bridge_digests_bounced_total",  # delivery reports after the relay took it
        "bridge_inbound_mail_total",  # replies received by class
        "bridge_reply_parts_total",  # parts delivered
        "bridge_smtp_retries_total",
        "bridge_platform_retries_total",  # retries
        "bridge_dead_letters_total",  # dead letters
        "bridge_consumer_lag",  # lag per group
        "bridge_handle_seconds_bucket",
        "bridge_digest_lag_seconds_bucket",  # percentiles
    }


def test_queries_group_only_by_bounded_labels() -> None:
    allowed = {
        "outcome",
        "class",
        "service",
        "reason",
        "group",
        "topic",
        "partition",
        "le",
        "pod",
        "kind",
        "card",
    }
    for title, exprs in queries().items():
        for expr in exprs:
            for labels in re.findall(r"by \(([^)]*)\)", expr):
                assert {x.strip() for x in labels.split(",")} <= allowed, (title, expr)


def test_panels_do_not_overlap() -> None:
    cells: set[tuple[int, int]] = set()
    for p in dashboard()["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, p["title"]
        cells |= mine


def test_dashboard_ships_as_a_grafana_sidecar_configmap() -> None:
    cm = named(docs_of(rendered_text("prod")), "ConfigMap", "bridge-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["bridge-flow-dashboard.json"]) == dashboard()
