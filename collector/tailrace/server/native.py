"""The native read API: logs of a pod or a workload, paged or followed, plus stats and events.

Reads are answered in the format the client accepts (text/plain like `kubectl logs` when it does
not say); `follow=true` subscribes to the live-tail hub *before* querying the catch-up, so no
record falls between the two, and drops from the live side any record the catch-up already sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace import conventions
from tailrace.server import context, errors, formats, streaming
from tailrace.server import query as query_model
from tailrace.server.storage import base

PAGE = 1000  # catch-up page size when following
CHUNK_BYTES = 64 * 1024  # catch-up records are written in chunks of about this size


def _kind(plural: str) -> str:
    kind = conventions.PLURAL_KINDS.get(plural)
    if kind is None:
        raise errors.not_found(f"resource type {plural!r}", expected=["functions", "pipelines"])
    return kind


def _format(request: Request, default: formats.Format = "text") -> formats.Format:
    fmt = formats.negotiate(request.headers.get("accept"), default)
    if fmt is None:
        raise errors.ApiError(
            406,
            "not_acceptable",
            "none of the accepted media types can be served",
            {"supported": sorted(set(formats.MEDIA_TYPES.values()))},
        )
    return fmt


async def _workload_exists(ctx: context.ServerContext, key: base.WorkloadKey) -> bool:
    workload = await ctx.store.get_workload(key)
    if workload is not None and not workload.deleted:
        return True
    # Records may arrive for a workload the operator has not registered (yet): still serve them.
    probe = base.Query(namespace=key.namespace, kind=key.kind, workload=key.name, limit=1)
    return bool(await ctx.store.query(probe))


async def _workload_scope(ctx: context.ServerContext, request: Request) -> base.Query:
    namespace = request.path_params["ns"]
    key = base.WorkloadKey(
        namespace, _kind(request.path_params["plural"]), request.path_params["name"]
    )
    await ctx.reader(request, namespace)
    if not await _workload_exists(ctx, key):
        raise errors.not_found(
            f"{key.kind} {key.namespace}/{key.name}",
            namespace=key.namespace,
            kind=key.kind,
            name=key.name,
        )
    return base.Query(namespace=namespace, kind=key.kind, workload=key.name)


async def _pod_scope(ctx: context.ServerContext, request: Request) -> base.Query:
    namespace, pod = request.path_params["ns"], request.path_params["pod"]
    await ctx.reader(request, namespace)
    # A pod nobody has logged for yet answers an empty page, not 404: a collector cannot tell
    # "no such pod" from "no lines collected yet", and followers may start before the first line.
    scope = base.Query(namespace=namespace, pod=pod)
    containers = query_model.parse_list(request.query_params, "container")
    known = await ctx.store.get_pod(namespace, pod)
    names = _container_names(known.obj) if known is not None else set()
    unknown = [c for c in containers if names and c not in names]
    if unknown:
        raise errors.bad_parameter(
            "container",
            f"container {unknown[0]!r} is not in pod {pod}; choose one of {sorted(names)}",
            unknown[0],
        )
    if query_model.parse_bool(request.query_params, "previous"):
        newest = await ctx.store.query(dataclasses.replace(scope, containers=containers, tail=1))
        if not newest or newest[-1].restart == 0:
            raise errors.bad_parameter(
                "previous", "no previous terminated container was collected for this pod"
            )
        scope = dataclasses.replace(scope, restart=newest[-1].restart - 1)
    return scope


def _container_names(pod: dict[str, Any]) -> set[str]:
    """Every container the pod spec names (empty when the spec is not known)."""
    spec = pod.get("spec") if isinstance(pod, dict) else None
    names: set[str] = set()
    if not isinstance(spec, dict):
        return names
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for container in spec.get(field) or []:
            if isinstance(container, dict) and isinstance(container.get("name"), str):
                names.add(container["name"])
    return names


def _close_frame(fmt: formats.Format, reason: str) -> bytes:
    body = {"reason": reason, "message": _CLOSE_MESSAGES.get(reason, reason)}
    if fmt == "sse":
        event = "workload-deleted" if reason == streaming.WORKLOAD_DELETED else "error"
        return formats.sse_event(orjson.dumps(body), event=event)
    if fmt in ("ndjson", "json"):
        return orjson.dumps({"event": "closed", **body}) + b"\n"
    return b""


STORE_UNAVAILABLE = "store-unavailable"
_CLOSE_MESSAGES = {
    STORE_UNAVAILABLE: "the log store became unavailable during the catch-up",
    streaming.SLOW_CONSUMER: "the client read too slowly and fell behind the live stream",
    streaming.WORKLOAD_DELETED: "the workload was deleted",
    streaming.SHUTDOWN: "the server is shutting down",
}


async def _store_pages(
    ctx: context.ServerContext, first: base.Query
) -> AsyncIterator[base.StoredRecord]:
    """Every record of a query, page by page along (ts, id) or along id for `after_id` reads."""
    page = first
    while True:
        records = await ctx.store.query(page)
        for record in records:
            yield record
        if len(records) < page.limit or page.tail is not None:
            return
        last = records[-1]
        if page.after_id is not None:
            page = dataclasses.replace(page, after_id=last.id)
        else:
            page = dataclasses.replace(page, after=(last.ts_ns, last.id))


async def _follow(
    ctx: context.ServerContext,
    request: query_model.LogRequest,
    fmt: formats.Format,
    resume_after: int | None,
) -> AsyncIterator[bytes]:
    hub = ctx.hub
    live_filters = dataclasses.replace(request.filters, since_ns=request.query.since_ns)
    subscription = hub.subscribe(live_filters)
    encode_fmt: formats.Format = "ndjson" if fmt == "json" else fmt

    def encoder(record: base.StoredRecord) -> bytes:
        return formats.encode_record(encode_fmt, record)

    try:
        if fmt == "sse":
            yield b": following\n\n"
        # Catch-up records that the subscription may also deliver; skipped on the live side.
        overlap: set[int] = set()
        if resume_after is not None:
            buffered = hub.replay(live_filters, resume_after)
            if buffered is None:
                if fmt == "sse":
                    reset = {"reason": "fell-behind", "lastEventId": str(resume_after)}
                    yield formats.sse_event(orjson.dumps(reset), event="reset")
                catch_up = _store_pages(
                    ctx, dataclasses.replace(live_filters, after_id=resume_after, limit=PAGE)
                )
            else:
                catch_up = _iterate(buffered)
        else:
            first = request.query
            if first.tail is None:
                first = dataclasses.replace(first, limit=PAGE)
            catch_up = _store_pages(ctx, first)
        pending = bytearray()
        try:
            async for record in catch_up:
                if record.id > subscription.start_id:
                    overlap.add(record.id)
                pending += formats.encode_record(encode_fmt, record)
                if len(pending) >= CHUNK_BYTES:
                    yield bytes(pending)
                    pending.clear()
        except base.StoreUnavailable:
            # The status line is sent already: say why the stream ends instead.
            yield bytes(pending) + _close_frame(fmt, STORE_UNAVAILABLE)
            return
        if pending:
            yield bytes(pending)
        while True:
            batch = await subscription.get(hub.heartbeat_s)
            if not batch:
                if subscription.close_reason is not None:
                    yield _close_frame(fmt, subscription.close_reason)
                    return
                if fmt == "sse":
                    yield b": heartbeat\n\n"
                continue
            chunk = bytearray()
            for record in batch:
                if record.id in overlap:
                    overlap.discard(record.id)
                    continue
                chunk += hub.encoded(record, encode_fmt, encoder)
            if chunk:
                yield bytes(chunk)
    finally:
        hub.unsubscribe(subscription)


async def _iterate(records: list[base.StoredRecord]) -> AsyncIterator[base.StoredRecord]:
    for record in records:
        yield record


def _last_event_id(request: Request) -> int | None:
    value = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 19:
        raise errors.bad_parameter("Last-Event-ID", "expected a record id", value)
    return int(value)


async def serve_logs(
    ctx: context.ServerContext,
    request: Request,
    scope: base.Query,
    default_limit: int = query_model.DEFAULT_LIMIT,
) -> Response:
    """Answer a log read over `scope` in the negotiated format, paged or followed."""
    fmt = _format(request)
    log_request = query_model.parse_log_request(
        request.query_params, scope, ctx.signer, default_limit
    )
    if log_request.follow:
        resume_after = _last_event_id(request)
        media = formats.MEDIA_TYPES["ndjson" if fmt == "json" else fmt]
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return streaming.LiveResponse(
            _follow(ctx, log_request, fmt, resume_after), media_type=media, headers=headers
        )
    records = await ctx.store.query(log_request.query)
    cursor = query_model.next_cursor(log_request, records, ctx.signer)
    headers = {conventions.NEXT_CURSOR_HEADER: cursor} if cursor else {}
    if fmt == "json":
        return Response(formats.json_page(records, cursor), media_type=formats.MEDIA_TYPES["json"])
    body = b"".join(formats.encode_record(fmt, r) for r in records)
    if fmt == "sse":
        body += formats.sse_event(orjson.dumps({"nextCursor": cursor}), event="end")
    return Response(body, media_type=formats.MEDIA_TYPES[fmt], headers=headers)


def _stats_json(stats: base.Stats, pods: int) -> dict[str, Any]:
    return {
        "total": stats.total,
        "byLevel": stats.by_level,
        "byContainer": stats.by_container,
        "byExecution": stats.by_execution,
        "truncatedLines": stats.truncated_lines,
        "droppedLines": stats.dropped_lines,
        "splitLines": stats.split_lines,
        "lastLogAt": formats.format_time(stats.last_ts_ns) if stats.last_ts_ns else None,
        "pods": pods,
    }


def _event_json(record: base.StoredRecord) -> dict[str, Any]:
    return {
        "id": str(record.id),
        "time": formats.format_time(record.ts_ns),
        "event": record.attrs.get("event"),
        "executionId": record.execution_id or None,
        "pod": record.pod,
        "message": record.message,
        "attrs": record.attrs,
    }


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    """The native read routes; the app guards them with `errors.render_native`."""

    async def pod_logs(request: Request) -> Response:
        scope = await _pod_scope(ctx, request)
        return await serve_logs(ctx, request, scope, default_limit=query_model.MAX_LIMIT)

    async def namespace_logs(request: Request) -> Response:
        namespace = request.path_params["ns"]
        await ctx.reader(request, namespace)
        return await serve_logs(ctx, request, base.Query(namespace=namespace))

    async def all_logs(request: Request) -> Response:
        principal = await ctx.reader(request, None)
        if principal.namespaces is not None:
            raise errors.forbidden(
                "this token may read only some namespaces; use /v1/namespaces/{ns}/logs", None
            )
        return await serve_logs(ctx, request, base.Query())

    async def workload_logs(request: Request) -> Response:
        scope = await _workload_scope(ctx, request)
        return await serve_logs(ctx, request, scope)

    async def delete_workload_logs(request: Request) -> Response:
        scope = await _workload_scope(ctx, request)
        await ctx.deleter(request, request.path_params["ns"])
        deleted = await ctx.store.delete(scope)
        return Response(orjson.dumps({"deleted": deleted}), media_type="application/json")

    async def workload_stats(request: Request) -> Response:
        scope = await _workload_scope(ctx, request)
        stats = await ctx.store.stats(scope)
        key = base.WorkloadKey(
            request.path_params["ns"], scope.kind or "", request.path_params["name"]
        )
        pods = await ctx.store.list_pods(key)
        return Response(orjson.dumps(_stats_json(stats, len(pods))), media_type="application/json")

    async def workload_events(request: Request) -> Response:
        scope = await _workload_scope(ctx, request)
        params = request.query_params
        limit = query_model.parse_int(params, "limit", 1, query_model.MAX_LIMIT) or 1000
        execution_id = params.get("executionId") or None
        query = dataclasses.replace(
            scope, sources=("operator",), execution_id=execution_id, limit=query_model.MAX_LIMIT
        )
        events = []
        async for record in _store_pages(ctx, query):
            if "event" in record.attrs:
                events.append(_event_json(record))
                if len(events) >= limit:
                    break
        return Response(orjson.dumps({"events": events}), media_type="application/json")

    ns = "/v1/namespaces/{ns}"
    workload = ns + "/{plural}/{name}"
    return [
        Route("/v1/logs", all_logs, methods=["GET"]),
        Route(ns + "/logs", namespace_logs, methods=["GET"]),
        Route(ns + "/pods/{pod}/logs", pod_logs, methods=["GET"]),
        Route(workload + "/logs", workload_logs, methods=["GET"]),
        Route(
            workload + "/logs",
            delete_workload_logs,
            methods=["DELETE"],
            name="delete_workload_logs",
        ),
        Route(workload + "/stats", workload_stats, methods=["GET"]),
        Route(workload + "/events", workload_events, methods=["GET"]),
    ]
