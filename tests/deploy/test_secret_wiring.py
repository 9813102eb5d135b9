"""Every secret a service reads reaches it from a Kubernetes Secret, never from the
ConfigMap or a literal; prod never turns development mode on; the dev overlay's
generated secrets are the published development values the services refuse without it."""

from __future__ import annotations

import base64
import importlib
import os
from typing import Any

import pytest

from shared.secrets_policy import (
    DEV_MODE_VAR,
    SecretSetting,
    secret_field_names,
    weak_secrets,
)
from tests.deploy.conftest import SERVICES, Doc, docs_of, of_kind, rendered_text, workloads

SECRET_VARS = {f"BRIDGE_{name.upper()}" for name in secret_field_names()}


def declared_secrets(service: str) -> tuple[SecretSetting, ...]:
    """The secrets the service's entry point checks at start-up (what it reads)."""
    if service.startswith("reply-"):  # one entry point, two roles: front and parser
        by_role: dict[str, tuple[SecretSetting, ...]] = importlib.import_module(
            "reply_parser.__main__"
        ).SECRETS
        return by_role[service.removeprefix("reply-")]
    return tuple(importlib.import_module(f"{service}.__main__").SECRETS)


def container_of(docs: list[Doc], service: str) -> dict[str, Any]:
    workload = next(w for w in workloads(docs) if w["metadata"]["name"] == service)
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return container


def secret_sourced_vars(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


@pytest.mark.parametrize("service", SERVICES)
def test_prod_takes_every_secret_a_service_reads_from_a_secret(service: str) -> None:
    docs = docs_of(rendered_text("prod"))
    container = container_of(docs, service)
    assert not any("secretRef" in e for e in container.get("envFrom", [])), (
        "whole Secrets as env would hand a service secrets it does not read"
    )
    wanted = {s.env_var for s in declared_secrets(service)}
    from_secrets = secret_sourced_vars(container)
    assert wanted <= from_secrets, f"not from a Secret: {sorted(wanted - from_secrets)}"
    # ... and only those: a service gets no secret it does not read.
    assert from_secrets & SECRET_VARS == wanted
    literal = {e["name"] for e in container.get("env", []) if "value" in e}
    assert not literal & SECRET_VARS


def test_every_secret_setting_is_wired_to_the_services_that_read_it() -> None:
    """No secret setting is left to its default in prod because no service declared it."""
    declared = {s.name for service in SERVICES for s in declared_secrets(service)}
    assert declared == set(secret_field_names())
    docs = docs_of(rendered_text("prod"))
    wired = set().union(*(secret_sourced_vars(container_of(docs, s)) for s in SERVICES))
    assert SECRET_VARS <= wired


def test_no_config_map_in_any_overlay_holds_a_secret(overlay: str) -> None:
    for cm in of_kind(docs_of(rendered_text(overlay)), "ConfigMap"):
        assert not set(cm.get("data", {})) & SECRET_VARS, cm["metadata"]["name"]


def test_prod_does_not_enable_development_mode() -> None:
    docs = docs_of(rendered_text("prod"))
    for cm in of_kind(docs, "ConfigMap"):
        assert DEV_MODE_VAR not in cm.get("data", {}), cm["metadata"]["name"]
    for secret in of_kind(docs, "Secret"):
        assert DEV_MODE_VAR not in {**secret.get("data", {}), **secret.get("stringData", {})}
    for w in workloads(docs):
        for c in w["spec"]["template"]["spec"]["containers"]:
            assert DEV_MODE_VAR not in {e["name"] for e in c.get("env", [])}
    assert not of_kind(docs, "Secret"), "prod ships no Secret: they are created out of git"


def _dev_environment(service: str) -> dict[str, str]:
    """The environment the dev overlay gives one service: ConfigMap plus its Secret refs."""
    docs = docs_of(rendered_text("dev"))
    (config,) = [
        cm
        for cm in of_kind(docs, "ConfigMap")
        if cm["metadata"]["name"].startswith("bridge-config")
    ]
    secrets = {s["metadata"]["name"]: s["data"] for s in of_kind(docs, "Secret")}
    env = dict(config["data"])
    for e in container_of(docs, service).get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref["key"] in secrets.get(ref["name"], {}):
            env[e["name"]] = base64.b64decode(secrets[ref["name"]][ref["key"]]).decode()
    return env


@pytest.mark.parametrize("service", ["ingest", "mailer", "reply-front", "fanout"])
def test_dev_overlay_secrets_are_refused_without_its_development_mode(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _dev_environment(service)
    assert env.pop(DEV_MODE_VAR) == "true"
    for name in list(os.environ):
        if name.startswith("BRIDGE_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    module = "reply_parser" if service.startswith("reply-") else service
    settings = importlib.import_module(f"{module}.__main__").SETTINGS()
    assert weak_secrets(settings, declared_secrets(service))
