"""Rendering helpers for the deployment tests: the manifests as `kubectl kustomize` emits them."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy/k8s"
OVERLAYS = ("dev", "prod")
SERVICES = ("ingest", "consolidator", "mailer", "reply-front", "reply-parser", "fanout")

Doc = dict[str, Any]


def render(path: Path) -> str:
    """`kubectl kustomize` output for one kustomization directory; fails with kubectl's error."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is required to render deploy/k8s (it is on the machine image)"
    done = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return done.stdout


def docs_of(text: str) -> list[Doc]:
    return [d for d in yaml.safe_load_all(text) if d]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: list[Doc], kind: str, name: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def workloads(docs: list[Doc]) -> Iterator[Doc]:
    yield from (d for d in docs if d["kind"] in ("Deployment", "StatefulSet"))


_rendered: dict[str, str] = {}


def rendered_text(overlay: str) -> str:
    if overlay not in _rendered:
        _rendered[overlay] = render(K8S / "overlays" / overlay)
    return _rendered[overlay]


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def rendered(overlay: str) -> list[Doc]:
    """The overlay's objects, rendered once per test session."""
    return docs_of(rendered_text(overlay))
