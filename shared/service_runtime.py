"""One service process's life, the same for every service: refuse weak secrets, set up
logging, start the parts in order, serve ``/healthz`` and ``/metrics``, run until the
work ends or SIGTERM/SIGINT arrives, then stop the parts in reverse order.

Start-up and shutdown go through one :class:`contextlib.AsyncExitStack`: each part is
registered with its stop as it starts, so a failure half-way stops exactly what had
started. ``/healthz`` answers 200 ``{"ok":true}`` while every readiness check passes,
503 otherwise (the Kubernetes probes and the devstack wait on it); ``/metrics`` is the
Prometheus text. A service with its own HTTP app (ingest) serves both on that app
(:func:`add_ops_routes`); the others on a small one of their own (:func:`build_ops_app`).
The consolidator is a faust worker, which owns its loop and signals: it makes the same
checks (:func:`start_checked`) and answers its probes with :func:`health_answer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any, Literal, TypeVar

import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Response

from shared.aiokafka_adapter import kafka_healthy
from shared.config import BridgeSettings
from shared.kafka import DeadLetterWriter, report_lag
from shared.logging import setup_logging
from shared.metrics import UP, render_metrics
from shared.secrets_policy import SecretSetting, refuse_weak_secrets

log = logging.getLogger("service_runtime")

T = TypeVar("T")
Check = Callable[[], bool]


def health_answer(ok: bool) -> tuple[bytes, int]:
    """The ``/healthz`` body and status: the one contract every service's probe reads."""
    return (b'{"ok":true}', 200) if ok else (b'{"ok":false}', 503)


def add_ops_routes(app: FastAPI, is_healthy: Check) -> None:
    """``/metrics`` and ``/healthz`` on a FastAPI app."""

    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        body, status = health_answer(is_healthy())
        return Response(body, status_code=status, media_type="application/json")


def build_ops_app(service: str, is_healthy: Check) -> FastAPI:
    """A FastAPI app serving only ``/metrics`` and ``/healthz``."""
    app = FastAPI(title=f"{service} ops", docs_url=None, redoc_url=None, openapi_url=None)
    add_ops_routes(app, is_healthy)
    return app


class ServiceRuntime:
    """The parts of one running service, stopped in reverse order of their start."""

    def __init__(self, service: str, stack: contextlib.AsyncExitStack) -> None:
        self.service = service
        self._stack = stack
        self._checks: list[Check] = []
        # Set on SIGTERM/SIGINT when the service asked to drain (see drain_on_signal).
        self.stopping = asyncio.Event()
        self._drain_s: float | None = None
        self._drain_deadline: asyncio.TimerHandle | None = None

    def drain_on_signal(self, timeout_s: float) -> asyncio.Event:
        """On SIGTERM/SIGINT, set the returned event instead of cancelling the work at
        once: the work finishes what it holds and returns, and the parts stop as usual.
        Work still running ``timeout_s`` later is cancelled. Further signals meanwhile
        change nothing: uvicorn raises each signal it took again once its server stops,
        so one SIGTERM arrives here twice."""
        self._drain_s = timeout_s
        return self.stopping

    def signalled(self, cancel: Callable[[], object]) -> None:
        """A stop signal arrived: drain when asked to, else ``cancel``."""
        if self._drain_s is None:
            cancel()
            return
        if self.stopping.is_set():
            return
        log.info(
            "draining before stopping", extra={"service": self.service, "drain_s": self._drain_s}
        )
        self.stopping.set()
        self._drain_deadline = asyncio.get_running_loop().call_later(self._drain_s, cancel)

    def drained(self) -> None:
        """The work returned: its parts' stops are not cut short by the drain deadline."""
        if self._drain_deadline is not None:
            self._drain_deadline.cancel()

    def ready_when(self, *checks: Check) -> None:
        """Add readiness checks: ``/healthz`` is 200 only while all of them pass."""
        self._checks.extend(checks)

    def healthy(self) -> bool:
        return all(check() for check in self._checks)

    async def enter(self, context: contextlib.AbstractAsyncContextManager[T]) -> T:
        """Enter an async context manager; it is exited at shutdown."""
        return await self._stack.enter_async_context(context)

    def on_stop(self, stop: Callable[[], Awaitable[Any]]) -> None:
        """Call ``stop()`` (awaited) at shutdown, after the parts started later stopped."""
        self._stack.push_async_callback(stop)

    def on_stop_sync(self, stop: Callable[[], Any]) -> None:
        self._stack.callback(stop)

    async def started(
        self, part: T, start: Callable[[], Awaitable[Any]], stop: Callable[[], Awaitable[Any]]
    ) -> T:
        """``await start()`` now, ``await stop()`` at shutdown; returns ``part``."""
        await start()
        self.on_stop(stop)
        return part

    async def producer(self, producer: Awaitable[AIOKafkaProducer]) -> AIOKafkaProducer:
        """A started producer (e.g. ``start_producer(cfg)``), stopped at shutdown, and
        part of readiness."""
        started = await producer
        self.on_stop(started.stop)
        self.ready_when(lambda: kafka_healthy(started))
        return started

    async def consumer(
        self,
        consumer: AIOKafkaConsumer,
        *,
        group: str | None = None,
    ) -> AIOKafkaConsumer:
        """Start a consumer, stop it at shutdown; it is part of readiness, and its lag is
        exported as ``bridge_consumer_lag`` when ``group`` is given."""
        await self.started(consumer, consumer.start, consumer.stop)
        self.ready_when(lambda: kafka_healthy(consumer))
        if group is not None:
            self.background(report_lag(consumer, group))
        return consumer

    def background(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` as a task, cancelled at shutdown."""
        task = asyncio.create_task(work)

        async def cancel() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

        self.on_stop(cancel)
        return task

    def dead_letters(self, producer: AIOKafkaProducer) -> DeadLetterWriter:
        """The service's dead-letter writer on ``producer``."""
        return DeadLetterWriter(producer, self.service)

    def serve_http(
        self, app: FastAPI, host: str, port: int, *, lifespan: Literal["auto", "on", "off"] = "off"
    ) -> asyncio.Task[Any]:
        """Serve ``app`` (it should carry :func:`add_ops_routes`) until shutdown; the
        server's task. uvicorn takes SIGTERM/SIGINT while it serves, shuts down, then
        raises the signal again: it reaches the runtime after the server stopped."""
        server = uvicorn.Server(
            uvicorn.Config(
                app, host=host, port=port, log_level="warning", access_log=False, lifespan=lifespan
            )
        )

        async def serve() -> None:
            await server.serve()
            if not server.started:  # the app's start-up failed (uvicorn logged why)
                raise SystemExit(f"{self.service}: HTTP server on {host}:{port} did not start")

        return self.background(serve())

    def serve_ops(self, host: str, port: int) -> asyncio.Task[Any]:
        """Serve ``/healthz`` (every readiness check) and ``/metrics`` until shutdown; the
        service counts as up (``bridge_up``) from here: its parts have started."""
        UP.labels(self.service).set(1)
        return self.serve_http(build_ops_app(self.service, self.healthy), host, port)


Body = Callable[[ServiceRuntime], Awaitable[None]]


@contextlib.asynccontextmanager
async def service_runtime(service: str) -> AsyncIterator[ServiceRuntime]:
    """The runtime of one service: every part stopped on exit, ``bridge_up`` then 0."""
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(UP.labels(service).set, 0)
        runtime = ServiceRuntime(service, stack)
        yield runtime


async def _run(service: str, body: Body) -> None:
    work = asyncio.current_task()
    assert work is not None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, work.cancel)
    try:
        async with service_runtime(service) as runtime:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, runtime.signalled, work.cancel)
            try:
                await body(runtime)
                runtime.drained()
            finally:
                log.info("stopping", extra={"service": service})
    except asyncio.CancelledError:
        log.info("stopped on a signal", extra={"service": service})


def start_checked(process: str, cfg: BridgeSettings, secrets: Iterable[SecretSetting]) -> None:
    """Logging set up, then the secrets refused unless strong (or dev mode): before any
    port is opened or Kafka touched. ``process`` names it in the refusal (``mailer``,
    ``reply-parser front``) and, with dashes, in the logs."""
    setup_logging(process.replace(" ", "-"), cfg.log_level)
    refuse_weak_secrets(cfg, secrets, process)


def run_service(
    service: str,
    cfg: BridgeSettings,
    secrets: Iterable[SecretSetting],
    body: Body,
    *,
    process: str | None = None,
) -> None:
    """A service's ``main()``: checks, then ``body(runtime)`` on a fresh loop until it ends
    or SIGTERM/SIGINT; every part it started is stopped in reverse order either way.
    ``service`` is the metrics and dead-letter label; ``process`` the name a person reads
    (defaults to ``service``)."""
    start_checked(process or service, cfg, secrets)
    asyncio.run(_run(service, body))
