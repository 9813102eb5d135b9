"""The /metrics and /healthz endpoints every non-HTTP service serves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI, Response

from shared.metrics import render_metrics


def build_ops_app(service: str, is_healthy: Callable[[], bool]) -> FastAPI:
    app = FastAPI(title=f"{service} ops", docs_url=None, redoc_url=None, openapi_url=None)
    add_ops_routes(app, is_healthy)
    return app


def add_ops_routes(app: FastAPI, is_healthy: Callable[[], bool]) -> None:
    @app.get("/metrics")
    def metrics() -> Response:
        body, content_type = render_metrics()
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    def healthz() -> Response:
        ok = is_healthy()
        return Response(b'{"ok":true}' if ok else b'{"ok":false}', status_code=200 if ok else 503,
                        media_type="application/json")


async def serve_ops(app: FastAPI, host: str, port: int) -> asyncio.Task[None]:
    """Run the ops app in the current loop; returns its task."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           lifespan="off"))
    return asyncio.create_task(server.serve())
