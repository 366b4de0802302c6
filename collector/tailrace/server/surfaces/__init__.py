"""Compatibility surfaces: one module per platform API, mounted by name.

A surface module exposes

    def routes(ctx: tailrace.server.context.ServerContext) -> list[starlette.routing.BaseRoute]
    def render_error(request: Request, error: tailrace.server.errors.ApiError) -> Response

`routes` builds its endpoints on the shared context (store, hub, query model, auth); endpoints
raise `errors.ApiError` (or let `StoreUnavailable` escape) and `mount` wraps every route so the
surface's own `render_error` answers them. A surface whose module is not installed yet is skipped.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable, Iterable
from typing import Protocol, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from tailrace.server import context, errors

log = logging.getLogger(__name__)

# name -> module, like uvicorn's HTTP_PROTOCOLS: alternatives are siblings behind one shape.
SURFACES: dict[str, str] = {
    "hyper": "tailrace.server.surfaces.hyper",
    "poly": "tailrace.server.surfaces.poly",
    "feldera": "tailrace.server.surfaces.feldera",
    "deno": "tailrace.server.surfaces.deno",
    "hoody": "tailrace.server.surfaces.hoody",
}


class SurfaceModule(Protocol):
    def routes(self, ctx: context.ServerContext) -> list[BaseRoute]: ...

    def render_error(self, request: Request, error: errors.ApiError) -> Response: ...


def guard(routes: Iterable[BaseRoute], render: errors.Renderer) -> list[BaseRoute]:
    """Wrap each route so errors it raises are rendered by `render` (one handler per surface)."""
    guarded = list(routes)
    for route in guarded:
        if isinstance(route, Route | Mount):
            route.app = errors.Boundary(route.app, render)
    return guarded


def load(name: str) -> SurfaceModule | None:
    module_name = SURFACES[name]
    if importlib.util.find_spec(module_name) is None:
        log.debug("surface %s is not available", name)
        return None
    return cast(SurfaceModule, importlib.import_module(module_name))


def mount(ctx: context.ServerContext, names: Iterable[str] | None = None) -> list[BaseRoute]:
    """The routes of every available surface in `names` (all when None), each guarded."""
    routes: list[BaseRoute] = []
    for name in SURFACES if names is None else names:
        if name not in SURFACES:
            raise ValueError(f"unknown surface {name!r}; known: {', '.join(SURFACES)}")
        module = load(name)
        if module is None:
            continue
        render: Callable[[Request, errors.ApiError], Response] = module.render_error
        routes.extend(guard(module.routes(ctx), render))
    return routes
