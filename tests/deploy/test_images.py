"""The one Dockerfile (build arg SERVICE) runs, for each service, the entry point the tests
run (devstack SERVICE_COMMANDS), as a non-root user on a pinned slim base, with a healthcheck
on the service's own port; the Kubernetes containers start the same commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from consolidator.consolidator_settings import ConsolidatorSettings
from devstack.stack import SERVICE_COMMANDS
from fanout.fanout_settings import FanoutSettings
from ingest.ingest_settings import IngestSettings
from mailer.mailer_settings import MailerSettings
from reply_parser.reply_parser_settings import ReplyParserSettings
from tests.deploy.conftest import ROOT, SERVICES, Doc, workloads

DOCKERFILE = ROOT / "Dockerfile"
PACKAGE_DIR = {name: "reply-parser" if name.startswith("reply-") else name for name in SERVICES}


def _without_heredocs(text: str) -> tuple[str, dict[str, str]]:
    """The Dockerfile with each ``<<'EOF'`` body cut out, and the bodies by target path."""
    bodies: dict[str, str] = {}

    def cut(match: re.Match[str]) -> str:
        bodies[match.group(2)] = match.group(3)
        return match.group(1) + "\n"

    text = re.sub(r"(COPY [^\n]*<<'EOF' (\S+))\n(.*?)\nEOF\n", cut, text, flags=re.S)
    return text, bodies


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined, heredoc bodies cut."""
    text = re.sub(r"\\\n\s*", " ", _without_heredocs(path.read_text())[0])
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "")
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def stages(path: Path) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage (the global ARGs before the first FROM dropped)."""
    out: list[list[tuple[str, str]]] = []
    for ins, args in instructions(path):
        if ins == "FROM":
            out.append([])
        if out:
            out[-1].append((ins, args))
    return out


def _case_arms(script: str) -> dict[str, str]:
    """``pattern) command ;;`` arms of the script's ``case``, one per name in a pattern."""
    arms: dict[str, str] = {}
    for patterns, command in re.findall(r"^\s*([\w|*-]+)\) (.*?) ;;$", script, flags=re.M):
        for pattern in patterns.split("|"):
            arms[pattern] = command
    return arms


def _entry_module_and_role(name: str) -> list[str]:
    """The part of the devstack command that selects what runs (not its log level)."""
    cmd = SERVICE_COMMANDS[name]
    return cmd[:3] if cmd[1] in ("consolidator", "reply_parser") else cmd[:2]


def image_command(name: str) -> list[str]:
    """What the image built with SERVICE=name runs: its CMD, bridge-service's arm for it."""
    steps = instructions(DOCKERFILE)
    assert json.loads(next(a for ins, a in steps if ins == "CMD")) == ["bridge-service"]
    script = _without_heredocs(DOCKERFILE.read_text())[1]["/usr/local/bin/bridge-service"]
    arms = _case_arms(script)
    command = arms.get(name, arms["*"]).replace('"$BRIDGE_SERVICE"', name).split()
    assert command[0] == "exec", command
    return command[1:]


@pytest.mark.parametrize("name", SERVICES)
def test_image_command_is_the_entry_point_the_tests_run(name: str) -> None:
    cmd = image_command(name)
    assert cmd[0] == "python"
    assert cmd[1 : 1 + len(_entry_module_and_role(name))] == _entry_module_and_role(name)
    env = next(a for ins, a in stages(DOCKERFILE)[-1] if ins == "ENV")
    assert "BRIDGE_SERVICE=${SERVICE}" in env.split()


@pytest.mark.parametrize("name", SERVICES)
def test_image_is_pinned_slim_non_root_with_a_healthcheck_on_its_port(name: str) -> None:
    steps = instructions(DOCKERFILE)
    base = next(a for ins, a in steps if ins == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm", base), base
    users = [a for ins, a in stages(DOCKERFILE)[-1] if ins == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert int(users[-1].split(":")[0]) >= 10000
    health = [a for ins, a in steps if ins == "HEALTHCHECK"]
    assert len(health) == 1 and health[0].endswith('CMD ["bridge-healthcheck"]')
    script = _without_heredocs(DOCKERFILE.read_text())[1]["/usr/local/bin/bridge-healthcheck"]
    assert "/healthz" in script
    field = name.replace("-", "_") + "_port"
    settings = {
        "ingest": IngestSettings,
        "consolidator": ConsolidatorSettings,
        "mailer": MailerSettings,
        "fanout": FanoutSettings,
    }.get(name, ReplyParserSettings)
    default = settings.model_fields[field].default
    assert _case_arms(script)[name] == f'port="${{BRIDGE_{field.upper()}:-{default}}}"', (
        name,
        default,
    )


@pytest.mark.parametrize("name", SERVICES)
def test_image_copies_only_shared_and_its_own_package(name: str) -> None:
    deps, app, final = stages(DOCKERFILE)
    copies = [a.split() for ins, a in final if ins == "COPY"]
    assert [c for c in copies if not c[0].startswith(("--from", "--chmod"))] == []
    assert sorted(c[0] for c in copies if c[0].startswith("--from")) == [
        "--from=app",
        "--from=deps",
    ]
    assert [a.split() for ins, a in app if ins == "COPY"] == [
        ["services", "/build/services"],
        ["shared", "/app/shared"],
    ]
    # The app stage keeps one folder of services/, under its import name.
    moves = next(a for ins, a in app if ins == "RUN")
    arms = _case_arms(moves.replace(" in ", " in\n").replace(" ;; ", " ;;\n"))
    assert arms[name] == ("dir=reply-parser" if name.startswith("reply-") else 'dir="$SERVICE"')
    assert "exit 1" in arms["*"]
    assert 'mv "/build/services/$dir" "/app/$(echo "$dir" | tr - _)"' in moves
    assert (ROOT / "services" / PACKAGE_DIR[name] / "__main__.py").exists()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"shared", "services", "pyproject.toml"} & set(ignored)


def test_kubernetes_containers_start_the_devstack_entry_points(rendered: list[Doc]) -> None:
    for w in workloads(rendered):
        name = w["metadata"]["name"]
        (container,) = w["spec"]["template"]["spec"]["containers"]
        assert container["args"][0] == "python"
        assert container["args"][
            1 : 1 + len(_entry_module_and_role(name))
        ] == _entry_module_and_role(name), name
