"""The Dockerfiles run the same entry points the tests run (devstack SERVICE_COMMANDS),
as a non-root user on a pinned slim base, with a healthcheck; the Kubernetes containers
start the same commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devstack.stack import SERVICE_COMMANDS
from tests.deploy.conftest import ROOT, SERVICES, Doc, workloads

DOCKERFILES = {name: ROOT / "services" / ("reply-parser" if name.startswith("reply-") else name)
               / "Dockerfile" for name in SERVICES}
ROLE_OF = {"reply-front": "front", "reply-parser": "parser"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined."""
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _entry_module_and_role(name: str) -> list[str]:
    """The part of the devstack command that selects what runs (not its log level)."""
    cmd = SERVICE_COMMANDS[name]
    return cmd[:3] if cmd[1] in ("consolidator", "reply_parser") else cmd[:2]


@pytest.mark.parametrize("name", SERVICES)
def test_image_command_is_the_entry_point_the_tests_run(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    cmd = json.loads(next(args for ins, args in steps if ins == "CMD"))
    if name in ROLE_OF:  # one image, role chosen by build arg ROLE
        assert cmd == ["sh", "-c", 'exec python -m reply_parser "$BRIDGE_REPLY_ROLE"']
        args = [a for ins, a in steps if ins == "ARG" and a.startswith("ROLE=")]
        assert args == ["ROLE=parser"]
        cmd = ["python", "-m", "reply_parser", ROLE_OF[name]]
    assert cmd[0] == "python"
    assert cmd[1:1 + len(_entry_module_and_role(name))] == _entry_module_and_role(name)


@pytest.mark.parametrize("name", SERVICES)
def test_image_is_pinned_slim_non_root_with_a_healthcheck(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    base = next(a for ins, a in steps if ins == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", base), base
    users = [a for ins, a in steps if ins == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert int(users[-1].split(":")[0]) >= 10000
    health = [a for ins, a in steps if ins == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]


@pytest.mark.parametrize("name", SERVICES)
def test_image_copies_only_shared_and_its_own_package(name: str) -> None:
    copies = [a.split() for ins, a in instructions(DOCKERFILES[name]) if ins == "COPY"]
    sources = {c[0] for c in copies if not c[0].startswith("--from")}
    service_dir = DOCKERFILES[name].parent.relative_to(ROOT).as_posix()
    assert sources == {"pyproject.toml", "shared", service_dir}
    for src in sources:
        assert (ROOT / src).exists(), src
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"shared", "services", "pyproject.toml", service_dir} & set(ignored)


def test_kubernetes_containers_start_the_devstack_entry_points(
        rendered: list[Doc]) -> None:
    for w in workloads(rendered):
        name = w["metadata"]["name"]
        (container,) = w["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == "python"
        assert container["args"][1:1 + len(_entry_module_and_role(name))] == \
            _entry_module_and_role(name), name
