"""PolyAPI: the Logs API of a server function, `/functions/server/{id}/logs` and `/system-logs`.

`{id}` is a Function's uid or name. Execution logs are what the function itself printed
(stdout and stderr of its pods' app containers); system logs add everything else collected for
the function: init and collector containers, and the operator's and kubelet's records about its
pods (`stream: "system"`). As Poly documents, only INFO and above are returned, and a line over
16,384 bytes (containerd's limit) is neither stored nor returned: records the agent had to
truncate or split are left out.

`limit` keeps the newest entries (Poly's "retrieve the last 5 logs"), returned oldest first;
with both `lastHours` and `lastDays`, the narrower window applies. Errors answer the NestJS
shape Poly's API uses, `{statusCode, message, error}`.
"""

from __future__ import annotations

import dataclasses
import http
import time
from collections.abc import Mapping
from typing import Any, TypedDict

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace import records
from tailrace.server import context, errors, formats
from tailrace.server.storage import base
from tailrace.server.surfaces import _workloads

MAX_LINE_BYTES = 16_384
DEFAULT_LIMIT = 1000
MAX_LIMIT = 5000
MAX_HOURS = 24 * 3650
MAX_DAYS = 3650
_HOUR_NS = 3_600 * 1_000_000_000
_OVERSIZED = records.FLAG_TRUNCATED | records.FLAG_SPLIT


class PolyLog(TypedDict):
    timestamp: str
    value: str
    level: str
    executionId: str


def render_error(request: Request, error: errors.ApiError) -> Response:
    body = {
        "statusCode": error.status,
        "message": error.message,
        "error": http.HTTPStatus(error.status).phrase,
    }
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


def _blank_is_absent(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return None if value is None or not value.strip() else value.strip()


def _positive(params: Mapping[str, str], name: str, high: int) -> int | None:
    value = _blank_is_absent(params, name)
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= high:
        raise errors.bad_parameter(name, f"must be an integer from 1 to {high}", value)
    return int(value)


@dataclasses.dataclass(frozen=True, slots=True)
class LogsRequest:
    filters: base.Query
    limit: int


def parse(params: Mapping[str, str], scope: base.Query, now_ns: int) -> LogsRequest:
    hours = _positive(params, "lastHours", MAX_HOURS)
    days = _positive(params, "lastDays", MAX_DAYS)
    limit = _positive(params, "limit", MAX_LIMIT) or DEFAULT_LIMIT
    windows = [n * _HOUR_NS for n in (hours, days * 24 if days else None) if n]
    keyword = _blank_is_absent(params, "keyword")
    if keyword is not None and not base.text_tokens(keyword):
        raise errors.bad_parameter("keyword", "has no word or number to search for", keyword)
    if keyword is not None and len(base.text_tokens(keyword)) > base.MAX_TEXT_TOKENS:
        raise errors.bad_parameter("keyword", f"has more than {base.MAX_TEXT_TOKENS} words")
    filters = dataclasses.replace(
        scope,
        text=keyword,
        execution_id=_blank_is_absent(params, "executionId"),
        min_level="INFO",
        since_ns=now_ns - min(windows) if windows else None,
    )
    return LogsRequest(filters, limit)


def _storable(record: base.StoredRecord) -> bool:
    """Poly neither stores nor returns lines over containerd's 16,384-byte limit."""
    if record.flags & _OVERSIZED:
        return False
    return len(record.message.encode()) <= MAX_LINE_BYTES


def _entry(record: base.StoredRecord) -> PolyLog:
    return {
        "timestamp": formats.format_time(record.ts_ns),
        "value": record.message,
        "level": record.level,
        "executionId": record.execution_id,
    }


async def _newest(ctx: context.ServerContext, request: LogsRequest) -> list[base.StoredRecord]:
    newest: list[base.StoredRecord] = []
    async for record in _workloads.walk(
        ctx, dataclasses.replace(request.filters, order="desc"), _storable
    ):
        newest.append(record)
        if len(newest) >= request.limit:
            break
    newest.reverse()
    return newest


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    async def function(request: Request) -> base.Workload:
        ident = request.path_params["id"]
        workload = await _workloads.resolve(ctx, request, ident, kinds=("Function",))
        if workload is None:
            raise errors.not_found(f"server function {ident!r}", id=ident)
        return workload

    async def execution_scope(workload: base.Workload) -> base.Query:
        containers = await _workloads.containers(ctx, workload.key)
        app = tuple(c for c in containers.app if c not in containers.init)
        return dataclasses.replace(
            _workloads.scope(workload), streams=("stdout", "stderr"), containers=app
        )

    async def answer(request: Request, scope: base.Query, workload: base.Workload) -> Response:
        logs_request = parse(request.query_params, scope, time.time_ns())
        enabled = (workload.spec.get("logs") or {}).get("enabled", True) is not False
        found = await _newest(ctx, logs_request) if enabled else []
        return _json({"logsEnabled": enabled, "logs": [_entry(r) for r in found]})

    async def execution_logs(request: Request) -> Response:
        workload = await function(request)
        return await answer(request, await execution_scope(workload), workload)

    async def system_logs(request: Request) -> Response:
        workload = await function(request)
        return await answer(request, _workloads.scope(workload), workload)

    async def delete_execution_logs(request: Request) -> Response:
        workload = await function(request)
        await ctx.deleter(request, workload.key.namespace)
        await ctx.store.delete(await execution_scope(workload))
        return Response(status_code=204)

    async def delete_system_logs(request: Request) -> Response:
        workload = await function(request)
        await ctx.deleter(request, workload.key.namespace)
        await ctx.store.delete(_workloads.scope(workload))
        return Response(status_code=204)

    prefix = "/functions/server/{id}"
    return [
        Route(prefix + "/logs", execution_logs, methods=["GET"]),
        Route(prefix + "/logs", delete_execution_logs, methods=["DELETE"], name="poly_delete"),
        Route(prefix + "/system-logs", system_logs, methods=["GET"]),
        Route(
            prefix + "/system-logs",
            delete_system_logs,
            methods=["DELETE"],
            name="poly_delete_system",
        ),
    ]
