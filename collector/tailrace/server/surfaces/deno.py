"""Deno Deploy: a deployment's details, build logs and app logs under `/v1/deployments/{id}`.

A deployment is a workload (Function or Pipeline), found by uid or name. Its `projectId` is the
namespace, which Tailrace knows only by name, so it is the stable UUID
`uuid5(NAMESPACE_URL, "tailrace:namespace:<name>")` (the same for every workload of the
namespace, across restarts). Build logs are what the pods' init containers printed (the build
step of a Kubernetes workload) with their lifecycle records; app logs are everything else.

App logs are past logs when `since` or `until` is given, paged by `limit`, `order` and the
signed `cursor` (answered in the `Tailrace-Next-Cursor` header, as Deno's `Link`-less clients
pass the last cursor back), and real-time otherwise: a stream of new records until the client
leaves or the deployment is deleted. `Accept: application/x-ndjson` gives newline-delimited
JSON; anything else a JSON array (in real time, an array written as records arrive and closed
when the stream ends). A record's region is its pod's `topology.kubernetes.io/region` label,
else the node it ran on, else "local".
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, TypedDict

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace import conventions
from tailrace.server import context, errors, formats, streaming
from tailrace.server import query as query_model
from tailrace.server.storage import base
from tailrace.server.surfaces import _workloads

NDJSON = "application/x-ndjson"
JSON = "application/json"
REGION_LABEL = "topology.kubernetes.io/region"
DEFAULT_REGION = "local"
# Deno's levels; Tailrace's six fold onto them.
_LEVEL_NAMES = {
    "TRACE": "debug",
    "DEBUG": "debug",
    "INFO": "info",
    "WARN": "warning",
    "ERROR": "error",
    "FATAL": "error",
}
_LEVEL_FILTERS = {
    "debug": ("TRACE", "DEBUG"),
    "info": ("INFO",),
    "warning": ("WARN",),
    "warn": ("WARN",),
    "error": ("ERROR", "FATAL"),
}
_ERROR_CODES = {
    400: "invalidRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "deploymentNotFound",
    409: "conflict",
    429: "tooManyRequests",
    503: "serviceUnavailable",
}


class AppLog(TypedDict):
    time: str
    level: str
    message: str
    region: str


def render_error(request: Request, error: errors.ApiError) -> Response:
    """Deno Deploy's API errors: `{code, message}`."""
    code = _ERROR_CODES.get(error.status, "internalServerError")
    return Response(
        orjson.dumps({"code": code, "message": error.message}),
        status_code=error.status,
        headers=error.headers,
        media_type=JSON,
    )


def project_id(namespace: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tailrace:namespace:{namespace}"))


def _iso(ts_ns: int) -> str:
    return formats.format_time(ts_ns)


def _status(pods: list[base.Pod]) -> str:
    """Deno's deployment status from the pods: success once one serves, failed if all failed."""
    phases = [pod.phase for pod in pods]
    if any(phase in ("Running", "Succeeded") for phase in phases):
        return "success"
    if phases and all(phase == "Failed" for phase in phases):
        return "failed"
    return "pending"


def _region(pod: base.Pod | None) -> str:
    if pod is None:
        return DEFAULT_REGION
    region = pod.labels.get(REGION_LABEL)
    if region:
        return region
    spec = pod.obj.get("spec") if isinstance(pod.obj, dict) else None
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    return node if isinstance(node, str) and node else DEFAULT_REGION


def _deployment(workload: base.Workload, pods: list[base.Pod]) -> dict[str, Any]:
    key = workload.key
    created = _iso(workload.created_ns)
    return {
        "id": workload.uid,
        "projectId": project_id(key.namespace),
        "status": _status(pods),
        "domains": [f"{key.name}.{key.namespace}.svc.cluster.local"],
        "databases": {
            "default": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tailrace:kv:{workload.uid}"))
        },
        "createdAt": created,
        "updatedAt": created,
    }


def _wants_ndjson(request: Request) -> bool:
    accept = request.headers.get("accept") or ""
    return any(part.split(";")[0].strip().lower() == NDJSON for part in accept.split(","))


def _levels(params: Mapping[str, str]) -> tuple[str, ...]:
    levels: list[str] = []
    for item in query_model.parse_list(params, "level"):
        native = _LEVEL_FILTERS.get(item.lower())
        if native is None:
            raise errors.bad_parameter(
                "level", "expected a comma-separated list of debug, info, warning, error", item
            )
        levels.extend(native)
    return tuple(dict.fromkeys(levels))


def _native_params(params: Mapping[str, str]) -> dict[str, str]:
    """Deno's parameters in the native query model's terms (levels translated)."""
    native = {
        name: params[name]
        for name in ("q", "since", "until", "limit", "order", "cursor")
        if name in params
    }
    levels = _levels(params)
    if levels:
        native["level"] = ",".join(levels)
    return native


class Deployment:
    """One request's view of a deployment: its workload, pods and record predicates."""

    def __init__(self, workload: base.Workload, pods: list[base.Pod]) -> None:
        self.workload = workload
        self.pods = {pod.name: pod for pod in pods}

    def region(self, record: base.StoredRecord) -> str:
        return _region(self.pods.get(record.pod))

    def log(self, record: base.StoredRecord) -> AppLog:
        return {
            "time": _iso(record.ts_ns),
            "level": _LEVEL_NAMES.get(record.level, "info"),
            "message": record.message,
            "region": self.region(record),
        }

    def in_regions(self, regions: tuple[str, ...]) -> Callable[[base.StoredRecord], bool]:
        if not regions:
            return lambda record: True
        wanted = set(regions)
        return lambda record: self.region(record) in wanted


def _encode(records: list[AppLog] | list[dict[str, str]], ndjson: bool) -> Response:
    if ndjson:
        body = b"".join(orjson.dumps(item) + b"\n" for item in records)
        return Response(body, media_type=NDJSON)
    return Response(orjson.dumps(records), media_type=JSON)


async def _real_time(
    ctx: context.ServerContext,
    deployment: Deployment,
    subscription: streaming.Subscription,
    keep: Callable[[base.StoredRecord], bool],
    ndjson: bool,
) -> AsyncIterator[bytes]:
    first = True
    try:
        if not ndjson:
            yield b"["
        while True:
            batch = await subscription.get(ctx.hub.heartbeat_s)
            if not batch and subscription.closed:
                break
            chunk = bytearray()
            for record in batch:
                if not keep(record):
                    continue
                encoded = orjson.dumps(deployment.log(record))
                if ndjson:
                    chunk += encoded + b"\n"
                else:
                    chunk += encoded if first else b"," + encoded
                    first = False
            if chunk:
                yield bytes(chunk)
        if not ndjson:
            yield b"]"
    finally:
        ctx.hub.unsubscribe(subscription)


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    async def deployment(request: Request) -> Deployment:
        ident = request.path_params["deploymentId"]
        workload = await _workloads.resolve(ctx, request, ident)
        if workload is None:
            raise errors.not_found(f"deployment {ident!r}", deploymentId=ident)
        return Deployment(workload, await ctx.store.list_pods(workload.key))

    async def details(request: Request) -> Response:
        found = await deployment(request)
        body = _deployment(found.workload, list(found.pods.values()))
        return Response(orjson.dumps(body), media_type=JSON)

    async def build_logs(request: Request) -> Response:
        found = await deployment(request)
        containers = await _workloads.containers(ctx, found.workload.key)
        logs: list[dict[str, str]] = []
        if containers.init:
            query = dataclasses.replace(
                _workloads.scope(found.workload), containers=containers.init
            )
            async for record in _workloads.walk(ctx, query):
                logs.append(
                    {"level": _LEVEL_NAMES.get(record.level, "info"), "message": record.message}
                )
        return _encode(logs, _wants_ndjson(request))

    async def app_logs(request: Request) -> Response:
        found = await deployment(request)
        params = request.query_params
        containers = await _workloads.containers(ctx, found.workload.key)
        scope = dataclasses.replace(
            _workloads.scope(found.workload),
            containers=tuple(c for c in containers.app if c not in containers.init),
        )
        log_request = query_model.parse_log_request(_native_params(params), scope, ctx.signer)
        keep = found.in_regions(query_model.parse_list(params, "region"))
        filters = log_request.query
        ndjson = _wants_ndjson(request)
        if "since" not in params and "until" not in params:
            subscription = ctx.hub.subscribe(log_request.filters)
            media = NDJSON if ndjson else JSON
            headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
            return streaming.LiveResponse(
                _real_time(ctx, found, subscription, keep, ndjson),
                media_type=media,
                headers=headers,
            )
        page: list[base.StoredRecord] = []
        async for record in _workloads.walk(ctx, filters, keep):
            page.append(record)
            if len(page) >= filters.limit:
                break
        cursor = query_model.next_cursor(log_request, page, ctx.signer)
        response = _encode([found.log(r) for r in page], ndjson)
        if cursor:
            response.headers[conventions.NEXT_CURSOR_HEADER] = cursor
        return response

    prefix = "/v1/deployments/{deploymentId}"
    return [
        Route(prefix, details, methods=["GET"]),
        Route(prefix + "/build_logs", build_logs, methods=["GET"]),
        Route(prefix + "/app_logs", app_logs, methods=["GET"]),
    ]
