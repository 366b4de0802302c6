"""The Starlette application: native API, control API, compatibility surfaces, health, metrics.

`build_app` takes its collaborators ready-made (store, hub, authorizer...) so tests and the runner
assemble the same app; the runner adds uvicorn and the gRPC ingest around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, exposition
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tailrace.server import (
    auth,
    context,
    control,
    cursors,
    errors,
    metrics,
    native,
    openapi,
    pod_events,
    ratelimit,
    streaming,
    surfaces,
    ui,
    workloads_route,
)
from tailrace.server.storage import base

log = logging.getLogger(__name__)

STORE_PROBE_TIMEOUT_S = 2.0


def _health_routes(ctx: context.ServerContext) -> list[BaseRoute]:
    size: dict[str, metrics.StoreSize | None] = {"last": None}

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await asyncio.wait_for(ctx.store.last_id(), STORE_PROBE_TIMEOUT_S)
        except (base.StoreError, TimeoutError) as err:
            return JSONResponse(
                {"status": "unavailable", "reason": str(err) or type(err).__name__},
                status_code=503,
            )
        return JSONResponse({"status": "ready"})

    async def scrape(request: Request) -> Response:
        # Store size is refreshed here, at scrape time, and read by the custom collector.
        try:
            totals = await asyncio.wait_for(base.gauge_totals(ctx.store), STORE_PROBE_TIMEOUT_S)
            size["last"] = metrics.StoreSize(totals.rows, totals.bytes)
        except (base.StoreError, TimeoutError):
            size["last"] = None
        output = exposition.generate_latest(ctx.metrics.registry)
        return Response(output, media_type=exposition.CONTENT_TYPE_LATEST)

    async def openapi_json(request: Request) -> Response:
        return Response(orjson.dumps(openapi.document()), media_type="application/json")

    ctx.metrics.watch_live(
        lambda: ctx.hub.open_subscriptions, lambda: ctx.hub.slow_consumers_cut, lambda: size["last"]
    )
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", scrape),
        Route("/openapi.json", openapi_json),
    ]


def build_context(
    store: base.Store,
    *,
    registry: CollectorRegistry | None = None,
    hub: streaming.Hub | None = None,
    authorizer: auth.Authorizer | None = None,
    limiter: ratelimit.RateLimiter | None = None,
    cursor_secret: bytes = b"",
    max_request_bytes: int = 8 * 1024 * 1024,
) -> context.ServerContext:
    http_metrics = metrics.HttpMetrics(registry or CollectorRegistry())
    if authorizer is None:
        authorizer = auth.Authorizer(on_failure=lambda reason: None)
    # Count auth failures whatever authorizer was passed in.
    authorizer.on_failure = lambda reason: http_metrics.auth_failures.labels(reason).inc()
    return context.ServerContext(
        store=store,
        hub=hub or streaming.Hub(),
        authorizer=authorizer,
        limiter=limiter or ratelimit.RateLimiter(0, 1),
        signer=cursors.Signer(cursor_secret),
        metrics=http_metrics,
        max_request_bytes=max_request_bytes,
    )


def build_app(
    ctx: context.ServerContext,
    surface_names: Iterable[str] | None = None,
    extra_routes: Iterable[BaseRoute] = (),
    manage_store: bool = False,
    with_ui: bool = True,
) -> Starlette:
    """The ASGI app over `ctx`. With `manage_store`, the app opens and closes the store itself."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        if manage_store:
            await ctx.store.open()
        ctx.hub.start(await ctx.store.last_id())
        for workload in await ctx.store.list_workloads():
            if not workload.deleted:
                lines, size = control.ring_size(workload.spec)
                ctx.hub.configure_workload(workload.key, lines, size)
        try:
            yield {}
        finally:
            ctx.hub.close_all(streaming.SHUTDOWN)
            if manage_store:
                await ctx.store.close()

    routes: list[BaseRoute] = [
        *_health_routes(ctx),
        *surfaces.guard(native.routes(ctx), errors.render_native),
        *surfaces.guard(control.routes(ctx), errors.render_native),
        *surfaces.guard(pod_events.routes(ctx), errors.render_native),
        *surfaces.guard(workloads_route.routes(ctx), errors.render_native),
        *surfaces.mount(ctx, surface_names),
        *(ui.routes() if with_ui else []),
        *extra_routes,
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(metrics.RequestMetricsMiddleware, metrics=ctx.metrics)],
        exception_handlers={HTTPException: errors.handle_http_exception},
        lifespan=lifespan,
    )
