"""Liveness, readiness and Prometheus metrics on the health address (default :8081).

kopf's own liveness endpoint serves one path and nothing else, and metrics must share the probe
port in the chart, so one small Starlette app serves all three. Liveness reflects kopf's root task
(alive while it runs), readiness kopf's ready flag (set once the indexes are populated and the
webhook server listens).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import prometheus_client
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def create_app(
    registry: prometheus_client.CollectorRegistry,
    *,
    alive: Callable[[], bool],
    ready: Callable[[], bool],
) -> Starlette:
    async def healthz(request: Request) -> Response:
        ok = alive()
        return JSONResponse({"status": "ok" if ok else "stopped"}, status_code=200 if ok else 503)

    async def readyz(request: Request) -> Response:
        ok = alive() and ready()
        return JSONResponse(
            {"status": "ready" if ok else "starting"}, status_code=200 if ok else 503
        )

    async def metrics(request: Request) -> Response:
        return Response(
            prometheus_client.generate_latest(registry),
            media_type=prometheus_client.CONTENT_TYPE_LATEST,
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside kopf's event loop: kopf owns SIGINT/SIGTERM, so uvicorn must not take them."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected HOST:PORT, got {addr!r}")
    return host.strip("[]"), int(port)


async def serve(app: Starlette, addr: str, started: asyncio.Event | None = None) -> None:
    host, port = split_addr(addr)
    # No lifespan: nothing to set up, and kopf cancels every task at shutdown, which would make
    # uvicorn's lifespan task log a CancelledError traceback on each clean stop.
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve())
    try:
        # uvicorn exposes "listening" only as a flag.
        while not server.started and not task.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if started is not None:
            started.set()
        await task
    finally:
        server.should_exit = True
        if not task.done():
            await asyncio.wait({task}, timeout=5)
