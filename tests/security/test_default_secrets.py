"""Finding: public default secrets in production.

A service started without development mode and with the published default secrets
(operator token, admin and reply-token keys, webhook secrets...) must refuse to start,
naming every offending variable, before it opens a port or touches Kafka; the generic
webhook adapter must be off unless its secret is configured.
"""

from __future__ import annotations

import importlib
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.broker import free_port
from devstack.stack import Ports, ServiceProcesses, stack_env, wait_healthy
from ingest.app import create_app
from ingest.ingest_settings import IngestSettings
from shared.chat_platform.generic_webhook import GenericWebhookAdapter, signed_headers
from shared.secrets_policy import DEV_MODE_VAR, PUBLISHED, SecretSetting, refuse_weak_secrets

pytestmark = pytest.mark.integration

INGEST_SECRET_VARS = (
    "BRIDGE_WEBHOOK_SECRET",
    "BRIDGE_PLATFORM_APP_SECRET",
    "BRIDGE_PLATFORM_ACCESS_TOKEN",
    "BRIDGE_ADMIN_TOKEN_KEYS",
    "BRIDGE_ADMIN_OPERATOR_TOKEN",
)
OLD_GENERIC_DEFAULT = "dev-generic-webhook-secret"  # what shared/config.py used to ship


def production_env(**extra: str) -> dict[str, str]:
    """This process's environment without any BRIDGE_ setting (so no dev mode), plus extra."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BRIDGE_") and k != "KAFKA_BOOTSTRAP"
    }
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


@pytest.fixture
def kafka_sentinel() -> Iterator[socket.socket]:
    """A listening socket posing as the Kafka bootstrap: any dial lands in its backlog."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def was_dialled(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_ingest_with_the_default_secrets_refuses_to_start_naming_them_and_opens_no_port(
    kafka_sentinel: socket.socket,
) -> None:
    http_port = free_port()
    bootstrap = f"127.0.0.1:{kafka_sentinel.getsockname()[1]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingest"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=production_env(KAFKA_BOOTSTRAP=bootstrap, BRIDGE_INGEST_PORT=str(http_port)),
    )
    listened = False
    deadline = time.monotonic() + 30
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            listened |= port_open(http_port)
            time.sleep(0.02)
        assert proc.poll() is not None, "ingest kept running with the default secrets"
    finally:
        if proc.poll() is None:
            proc.kill()
        _, stderr = proc.communicate(timeout=10)
    assert proc.returncode != 0
    assert not listened, "the webhook port was opened"
    assert not was_dialled(kafka_sentinel), "Kafka was dialled"
    line = stderr.strip()
    assert "\n" not in line, stderr
    assert line.startswith("ingest: refusing to start with default or weak secrets: ")
    for var in INGEST_SECRET_VARS:
        assert var in line
    assert "secrets.token_urlsafe(48)" in line
    assert not any(value.decode() in line for value in PUBLISHED)  # names, never values


# Each entry point's declared secrets, and what the published defaults make it refuse.
REFUSED_WITH_DEFAULTS = {
    ("ingest", ""): set(INGEST_SECRET_VARS),
    # The mailer looks cards up in the platform's product and order APIs.
    ("mailer", ""): {
        "BRIDGE_TOKEN_KEYS",
        "BRIDGE_PLATFORM_APP_SECRET",
        "BRIDGE_PLATFORM_ACCESS_TOKEN",
    },
    ("reply_parser", "front"): {"BRIDGE_TOKEN_KEYS"},
    ("fanout", ""): {"BRIDGE_PLATFORM_APP_SECRET", "BRIDGE_PLATFORM_ACCESS_TOKEN"},
    ("reply_parser", "parser"): set(),  # reads no secret
    ("consolidator", ""): set(),  # reads no secret
}


@pytest.mark.parametrize(("module", "role"), sorted(REFUSED_WITH_DEFAULTS))
def test_every_entry_point_refuses_the_defaults_of_the_secrets_it_reads(
    module: str, role: str
) -> None:
    entry = importlib.import_module(f"{module}.__main__")
    declared = entry.SECRETS
    used: tuple[SecretSetting, ...] = declared[role] if role else declared
    cfg = entry.SETTINGS(dev_mode=False)
    expected = REFUSED_WITH_DEFAULTS[(module, role)]
    if not expected:
        refuse_weak_secrets(cfg, used, module)  # starts
        return
    with pytest.raises(SystemExit) as refused:
        refuse_weak_secrets(cfg, used, module)
    named = {
        word
        for word in str(refused.value.code).replace("(", " ").split()
        if word.startswith("BRIDGE_") and word != "BRIDGE_DEV_MODE=true"
    }
    assert named == expected


def start_ingest(env: dict[str, str], tmp_path: Path) -> tuple[ServiceProcesses, int]:
    port = free_port()
    services = ServiceProcesses({**env, "BRIDGE_INGEST_PORT": str(port)}, tmp_path / "logs")
    services.start("ingest")
    return services, port


async def test_ingest_starts_with_the_default_secrets_in_the_stacks_development_mode(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = stack_env(kafka_bootstrap, Ports(), window_s=3, data_dir=tmp_path)
    env = {k: v for k, v in env.items() if not k.startswith("BRIDGE_") or k == DEV_MODE_VAR}
    assert env[DEV_MODE_VAR] == "true"  # stack_env: the tests, devstack and benches
    services, port = start_ingest(env, tmp_path)
    try:
        await wait_healthy({"ingest": port}, timeout_s=60)
    finally:
        services.stop_all()


async def test_ingest_starts_in_production_with_strong_secrets(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    strong = {var: secrets.token_urlsafe(48) for var in INGEST_SECRET_VARS}
    strong["BRIDGE_ADMIN_TOKEN_KEYS"] = f"2:{secrets.token_urlsafe(48)}"
    services, port = start_ingest(
        production_env(KAFKA_BOOTSTRAP=kafka_bootstrap, **strong), tmp_path
    )
    try:
        await wait_healthy({"ingest": port}, timeout_s=60)
    finally:
        services.stop_all()


async def post_generic(app: object, secret: str) -> httpx.Response:
    body = b'{"shop_id": "s1", "events": []}'
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        return await client.post(
            "/webhooks/generic",
            content=body,
            headers={**signed_headers(secret, body), "content-type": "application/json"},
        )


async def test_generic_webhook_route_is_off_without_a_configured_secret() -> None:
    cfg = IngestSettings(dev_mode=True)
    resp = await post_generic(create_app(cfg), OLD_GENERIC_DEFAULT)
    assert resp.status_code == 404
    assert "generic" in resp.json()["error"]


async def test_generic_webhook_route_is_on_once_its_secret_is_configured() -> None:
    """Control for the test above: the same request reaches the adapter, which checks it."""
    cfg = IngestSettings(dev_mode=True, generic_webhook_secret=secrets.token_urlsafe(48))  # type: ignore[arg-type]
    app = create_app(cfg)
    assert (await post_generic(app, OLD_GENERIC_DEFAULT)).status_code == 401


def test_generic_adapter_refuses_an_empty_secret_anyone_could_sign_with() -> None:
    with pytest.raises(ValueError, match="BRIDGE_GENERIC_WEBHOOK_SECRET"):
        GenericWebhookAdapter("")
