"""Every overlay renders, validates against the Kubernetes schemas (strict), and keeps the
rules the issue sets for workloads: non-root, read-only root, probes, limits, spread,
a PDB, a NetworkPolicy and an autoscaler per service."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule
from pydantic import BaseModel, ValidationError

from shared.topics import CONVERSATION_PARTITIONS
from tests.deploy.conftest import (
    K8S,
    ROOT,
    SERVICES,
    Doc,
    docs_of,
    named,
    of_kind,
    render,
    rendered_text,
    workloads,
)

KUBERNETES_VERSION = "1.30.0"  # the oldest minor we support; HPA v2 and PDB v1 are GA there
CUSTOM_MODELS: dict[str, type[BaseModel]] = {
    "ScaledObject": ScaledObject,
    "PodMonitor": PodMonitor,
    "PrometheusRule": PrometheusRule,
}
CONSUMER_GROUPS = {  # service -> the group it commits offsets as (KEDA reads its lag)
    "consolidator": "bridge-consolidator",
    "mailer": "bridge-mailer",
    "reply-parser": "bridge-reply-parser",
    "fanout": "bridge-fanout",
}


def kubernetes_validate(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    assert exe, "pip install kubernetes-validate (see docs/deployment.md, CI tools)"
    return subprocess.run(
        [exe, "--strict", "--no-warn", "-k", KUBERNETES_VERSION, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_base_renders_on_its_own() -> None:
    assert "kind: Kafka\n" in render(K8S / "base")


def test_rendered_overlay_passes_strict_kubernetes_schema_validation(
    overlay: str, tmp_path: Path
) -> None:
    out = tmp_path / f"{overlay}.yaml"
    out.write_text(rendered_text(overlay))
    done = kubernetes_validate(out)
    assert done.returncode == 0, done.stdout + done.stderr


def test_strict_validation_rejects_an_unknown_field(tmp_path: Path) -> None:
    """Control: the validator really is strict, so the test above can fail."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        rendered_text("dev").replace(
            "readOnlyRootFilesystem: true", "readOnlyRootFilesytem: true", 1
        )
    )
    assert kubernetes_validate(bad).returncode != 0


def strict_model_errors(doc: Doc) -> list[str]:
    """Validate a custom resource with its typed model; unknown fields count as errors
    (the models ignore extras, so a dropped key after a round trip is an unknown field)."""
    model = CUSTOM_MODELS[doc["kind"]]
    try:
        parsed = model.model_validate(doc)
    except ValidationError as exc:
        return [str(exc)]
    back = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [] if back == doc else [f"unknown or altered fields: {_diff(doc, back)}"]


def _diff(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in a.keys() | b.keys():
            out += _diff(a.get(k), b.get(k), f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _diff(x, y, f"{path}[{i}]")
        ]
    return [] if a == b else [path]


def test_keda_and_prometheus_operator_objects_match_their_models(rendered: list[Doc]) -> None:
    checked = [d for d in rendered if d["kind"] in CUSTOM_MODELS]
    assert {d["kind"] for d in checked} == set(CUSTOM_MODELS)
    errors = {
        f"{d['kind']}/{d['metadata']['name']}": e for d in checked if (e := strict_model_errors(d))
    }
    assert not errors, errors


def test_custom_resource_check_catches_a_misspelt_field() -> None:
    so = copy.deepcopy(of_kind(docs_of(rendered_text("dev")), "ScaledObject")[0])
    so["spec"]["minReplicaCont"] = 1
    assert strict_model_errors(so)


def test_every_service_has_one_workload_running_its_entry_point(rendered: list[Doc]) -> None:
    names = sorted(w["metadata"]["name"] for w in workloads(rendered))
    assert names == sorted(SERVICES)
    assert named(rendered, "StatefulSet", "consolidator")  # it keeps a disk store


@pytest.mark.parametrize("service", SERVICES)
def test_pods_run_non_root_read_only_with_probes_limits_and_spread(
    rendered: list[Doc], service: str
) -> None:
    w = next(w for w in workloads(rendered) if w["metadata"]["name"] == service)
    pod = w["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] >= 1000
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == f"bridge-{service}"
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/metrics"
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= container["resources"][bound].keys()
    assert any(m["mountPath"] == "/tmp" for m in container["volumeMounts"])
    labels = w["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/part-of"] == "chatmail-bridge"  # PodMonitor + Kafka netpol


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_has_a_pdb_network_policy_and_service(
    rendered: list[Doc], service: str
) -> None:
    selector = {"app.kubernetes.io/name": service}
    assert (
        named(rendered, "PodDisruptionBudget", service)["spec"]["selector"]["matchLabels"]
        == selector
    )
    policy = named(rendered, "NetworkPolicy", service)["spec"]
    assert policy["podSelector"]["matchLabels"] == selector
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    kafka_ports = [
        p["port"]
        for rule in policy["egress"]
        for p in rule.get("ports", [])
        if any(
            "strimzi.io/cluster" in peer.get("podSelector", {}).get("matchLabels", {})
            for peer in rule.get("to", [])
        )
    ]
    assert kafka_ports == [9092]
    assert named(rendered, "Service", service)["spec"]["selector"] == selector


def test_only_the_webhook_and_mx_ports_are_open_beyond_monitoring(rendered: list[Doc]) -> None:
    open_ports = {}
    for policy in of_kind(rendered, "NetworkPolicy"):
        for rule in policy["spec"]["ingress"]:
            if not rule.get("from"):
                open_ports[policy["metadata"]["name"]] = [p["port"] for p in rule["ports"]]
    assert open_ports == {"ingest": [8000], "reply-front": [2525]}


def test_only_mailer_reaches_smtp_and_only_ingest_fanout_and_mailer_reach_the_platform(
    rendered: list[Doc],
) -> None:
    outside: dict[str, set[int]] = {}
    for policy in of_kind(rendered, "NetworkPolicy"):
        for rule in policy["spec"]["egress"]:
            if any("ipBlock" in peer for peer in rule.get("to", [])):
                outside.setdefault(policy["metadata"]["name"], set()).update(
                    p["port"] for p in rule["ports"]
                )
    # The mailer looks cards up in the platform's product and order APIs (443).
    assert outside == {"mailer": {25, 465, 587, 443}, "ingest": {443}, "fanout": {443}}


def _source_group(service: str) -> str:
    """The consumer group id as the service's own code declares it."""
    folder = {"reply-parser": "reply-parser/parser_app.py"}.get(service, f"{service}/app.py")
    match = re.search(r'^GROUP = "([^"]+)"', (ROOT / "services" / folder).read_text(), re.M)
    assert match, f"no consumer group found in {service}'s code"
    return match.group(1)


@pytest.mark.parametrize("service", sorted(CONSUMER_GROUPS))
def test_consumers_scale_on_the_lag_of_their_own_group(rendered: list[Doc], service: str) -> None:
    so = named(rendered, "ScaledObject", service)["spec"]
    workload = next(w for w in workloads(rendered) if w["metadata"]["name"] == service)
    assert so["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": workload["kind"],
        "name": service,
    }
    (trigger,) = so["triggers"]
    assert trigger["type"] == "kafka"
    assert (
        trigger["metadata"]["consumerGroup"] == _source_group(service) == CONSUMER_GROUPS[service]
    )
    bootstrap = named(rendered, "ConfigMap", "bridge-config")["data"]["KAFKA_BOOTSTRAP"]
    assert trigger["metadata"]["bootstrapServers"] == bootstrap
    assert so["maxReplicaCount"] <= CONVERSATION_PARTITIONS


@pytest.mark.parametrize("service", ["ingest", "reply-front"])
def test_request_driven_services_scale_on_cpu(rendered: list[Doc], service: str) -> None:
    hpa = named(rendered, "HorizontalPodAutoscaler", service)["spec"]
    assert hpa["scaleTargetRef"]["name"] == service
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


def test_referenced_secrets_exist_in_dev_and_only_out_of_git_ones_miss_in_prod(
    overlay: str,
) -> None:
    """dev generates its secrets; prod expects them created out of git (docs/deployment.md)."""
    docs = docs_of(rendered_text(overlay))
    present = {(d["kind"], d["metadata"]["name"]) for d in docs}
    refs: set[tuple[str, str]] = set()
    for w in workloads(docs):
        pod = w["spec"]["template"]["spec"]
        for c in pod["containers"]:
            refs |= {("ConfigMap", e["configMapRef"]["name"]) for e in c.get("envFrom", [])}
            refs |= {
                ("Secret", e["valueFrom"]["secretKeyRef"]["name"])
                for e in c.get("env", [])
                if "valueFrom" in e and not e["valueFrom"]["secretKeyRef"].get("optional")
            }
        refs |= {("Secret", v["secret"]["secretName"]) for v in pod["volumes"] if "secret" in v}
    missing = refs - present
    if overlay == "dev":
        assert not missing
    else:
        assert missing == {
            ("Secret", "bridge-platform"),
            ("Secret", "bridge-token-keys"),
            ("Secret", "bridge-admin"),
            ("Secret", "bridge-dkim"),
        }
        assert ("ConfigMap", "bridge-config") in present


def test_consolidator_keeps_its_disk_store_on_a_volume(rendered: list[Doc]) -> None:
    sts = named(rendered, "StatefulSet", "consolidator")["spec"]
    config = named(rendered, "ConfigMap", "bridge-config")["data"]
    # faust must resolve the URL to its disk Store class ("rocksdict://" resolves to the
    # rocksdict module itself, which the worker cannot start with).
    from faust import stores
    from faust.stores.rocksdb import Store as DiskStore

    assert stores.by_url(config["BRIDGE_CONSOLIDATOR_STORE"]) is DiskStore
    (mount,) = [
        m for m in sts["template"]["spec"]["containers"][0]["volumeMounts"] if m["name"] == "data"
    ]
    assert mount["mountPath"] == config["BRIDGE_CONSOLIDATOR_DATA_DIR"]
    assert sts["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


def test_ingest_keeps_its_admin_directory_store_on_a_volume(rendered: list[Doc]) -> None:
    pod = named(rendered, "Deployment", "ingest")["spec"]["template"]["spec"]
    config = named(rendered, "ConfigMap", "bridge-config")["data"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "directory"]
    assert mount["mountPath"] == config["BRIDGE_INGEST_DIRECTORY_PATH"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "directory"]
    assert "emptyDir" in volume  # a container restart keeps it; a new pod reads whole
