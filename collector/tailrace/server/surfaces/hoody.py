"""Hoody proxy logs: query, stats and an SSE live tail over the entries of every workload.

Mapping (DESIGN.md): `projectId` is the namespace, `serviceName` the workload, `containerId` the
container. An HTTP access-log line (a JSON line whose method, url and status the agent lifted into
`attrs`) is a `response` entry when it has a status and a `request` entry when it has only a
method or url (a line's own `"kind"` wins); every other record is an `event`. `source` is `edge`
only for lines that say so (`"source": "edge"`), else `backend`. Captured bodies
(`requestBody`, `responseBody` fields of a JSON line) are left out of `data` unless
`includeRequestBody` / `includeResponseBody` ask for them. `traceId` is the line's own
`traceId`/`trace_id`/`requestId`, else a UUID derived from the execution id (so the entries of
one call share it), else from the record id.

Live tail: every published record gets a `ringSeq`, kept with it in a 5,000-entry ring for
`Last-Event-ID` resume. Sequence numbers start at `boot_ms * 1000`, so a restarted server's
numbers exceed the old ones by far more than 10,000 (unless the old one averaged over 1,000
entries per millisecond); a `Last-Event-ID` the ring does not hold (older than the ring, or from
before a restart) is answered `event: reset` and the stream goes on with new entries. A stream
scoped to a container (or service) whose workloads are all deleted gets `event:
scope-destroyed` and is closed. Heartbeats are `:` comments every `heartbeat_s` (15 s).

Query answers are ascending by time; `last` returns the newest N (instead of limit/offset),
`afterId` the entries with a record id above it (ascending by id), `cursor` continues after the
entry a previous answer's `nextCursor` named. Errors, including 401, answer Hoody's
`{statusCode, error, message}` with 403 for a missing or invalid token; a cursor this server
cannot verify answers `410` with `{"__trailer": true, "error": "snapshot_expired", ...}`.
"""

from __future__ import annotations

import collections
import dataclasses
import http
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace.server import context, cursors, errors, formats, streaming
from tailrace.server import query as query_model
from tailrace.server.storage import base
from tailrace.server.surfaces import _workloads

RING_ENTRIES = 5000
DEFAULT_LIMIT = 200
MAX_LIMIT = 5000
MAX_OFFSET = 1_000_000
KINDS = ("request", "response", "event")
SOURCES = ("backend", "edge")
_LEVEL_NAMES = {
    "TRACE": "debug",
    "DEBUG": "debug",
    "INFO": "info",
    "WARN": "warn",
    "ERROR": "error",
    "FATAL": "error",
}
_LEVEL_FILTERS = {
    "debug": ("TRACE", "DEBUG"),
    "info": ("INFO",),
    "warn": ("WARN",),
    "warning": ("WARN",),
    "error": ("ERROR", "FATAL"),
}
_DATA_FIELDS = ("durationMs", "bytesIn", "bytesOut", "userAgent", "latencyMs", "host")
_TRACE = uuid.UUID("6f1d3c1e-6b8e-4f7a-9a57-7461696c7261")  # namespace of derived trace ids


def render_error(request: Request, error: errors.ApiError) -> Response:
    if error.error_code == "snapshot_expired":
        body: dict[str, Any] = {"__trailer": True, "error": "snapshot_expired", "status": 410}
        return Response(orjson.dumps(body), status_code=410, media_type="application/json")
    status = 403 if error.status == 401 else error.status
    message = error.message
    if error.status == 401:
        message = f"Logs token missing or invalid: {error.message}"
    body = {"statusCode": status, "error": http.HTTPStatus(status).phrase, "message": message}
    headers = {k: v for k, v in error.headers.items() if k.lower() != "www-authenticate"}
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


# --- entries ---------------------------------------------------------------------------------


def _json_line(message: str) -> dict[str, Any] | None:
    if not message.startswith("{"):
        return None
    try:
        value = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _field(attrs: Mapping[str, Any], line: Mapping[str, Any] | None, *names: str) -> Any:
    for name in names:
        if attrs.get(name) is not None:
            return attrs[name]
        if line is not None and line.get(name) is not None:
            return line[name]
    return None


def kind_of(record: base.StoredRecord, line: Mapping[str, Any] | None = None) -> str:
    own = _field(record.attrs, line, "kind")
    if own in KINDS:
        return str(own)
    if record.attrs.get("status") is not None:
        return "response"
    if record.attrs.get("method") is not None or record.attrs.get("url") is not None:
        return "request"
    return "event"


def source_of(record: base.StoredRecord, line: Mapping[str, Any] | None = None) -> str:
    return "edge" if _field(record.attrs, line, "source") == "edge" else "backend"


def _trace_id(record: base.StoredRecord, line: Mapping[str, Any] | None) -> str:
    own = _field(record.attrs, line, "traceId", "trace_id", "requestId")
    if isinstance(own, str) and own:
        return own
    if record.execution_id:
        return str(uuid.uuid5(_TRACE, f"{record.namespace}/{record.execution_id}"))
    return str(uuid.uuid5(_TRACE, f"record/{record.id}"))


@dataclass(frozen=True, slots=True)
class Bodies:
    request: bool = False
    response: bool = False


NO_BODIES = Bodies()


def entry(record: base.StoredRecord, bodies: Bodies = NO_BODIES) -> dict[str, Any]:
    """A record as a Hoody log entry."""
    line = _json_line(record.message)
    message = record.message
    data: dict[str, Any] = {"stream": record.stream, "pod": record.pod}
    if record.execution_id:
        data["executionId"] = record.execution_id
    if line is not None:
        for name, wanted in (("requestBody", bodies.request), ("responseBody", bodies.response)):
            if name in line:
                if wanted:
                    data[name] = line[name]
                # Captured bodies stay out unless asked for, also from the raw line.
                line = {k: v for k, v in line.items() if k != name}
                message = orjson.dumps(line).decode()
        for name in _DATA_FIELDS:
            if name in line:
                data[name] = line[name]
    data["message"] = message
    status = _field(record.attrs, line, "status")
    seconds_ms = record.ts_ns // 1_000_000
    return {
        "id": record.id,
        "traceId": _trace_id(record, line),
        "tsMs": seconds_ms,
        "tsIso": formats.format_time(seconds_ms * 1_000_000)[:23] + "Z",
        "kind": kind_of(record, line),
        "level": _LEVEL_NAMES.get(record.level, "info"),
        "projectId": record.namespace,
        "containerId": record.container,
        "serviceName": record.workload or None,
        "method": _field(record.attrs, line, "method"),
        "url": _field(record.attrs, line, "url"),
        "clientIp": _field(record.attrs, line, "clientIp", "client_ip", "remote_addr"),
        "status": status if isinstance(status, int) else None,
        "data": data,
        "source": source_of(record, line),
    }


# --- parameters ------------------------------------------------------------------------------


def _levels(params: Mapping[str, str]) -> tuple[str, ...]:
    levels: list[str] = []
    for item in query_model.parse_list(params, "level"):
        native = _LEVEL_FILTERS.get(item.lower())
        if native is None:
            raise errors.bad_parameter("level", "expected debug, info, warn or error", item)
        levels.extend(native)
    return tuple(dict.fromkeys(levels))


def _one_of(params: Mapping[str, str], name: str, allowed: Sequence[str]) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if value.lower() not in allowed:
        raise errors.bad_parameter(name, f"expected one of {', '.join(allowed)}", value)
    return value.lower()


@dataclass(frozen=True, slots=True)
class Selection:
    """What a query or a stream selects: store filters plus what only an entry can tell."""

    filters: base.Query
    kind: str | None = None
    method: str | None = None
    source: str | None = None

    @property
    def post_filtered(self) -> bool:
        return any((self.kind, self.method, self.source))

    @property
    def extra(self) -> str:
        return f"kind={self.kind}&method={self.method}&source={self.source}"

    def keeps(self, record: base.StoredRecord) -> bool:
        if not self.post_filtered:
            return True
        line = _json_line(record.message)
        if self.kind is not None and kind_of(record, line) != self.kind:
            return False
        if self.source is not None and source_of(record, line) != self.source:
            return False
        if self.method is not None:
            method = _field(record.attrs, line, "method")
            if not isinstance(method, str) or method.upper() != self.method:
                return False
        return True


async def _namespace(ctx: context.ServerContext, request: Request) -> str | None:
    """The project asked for, or the one a namespace-scoped token is confined to."""
    project = request.query_params.get("projectId") or None
    principal = await ctx.reader(request, project)
    if project is not None or principal.namespaces is None:
        return project
    if len(principal.namespaces) == 1:
        return next(iter(principal.namespaces))  # auto-scoped, like Hoody's SNI clients
    raise errors.forbidden("this token reads several projects: pass projectId to pick one", None)


def _selection(params: Mapping[str, str], namespace: str | None) -> Selection:
    container = params.get("containerId") or None
    service = params.get("serviceName") or None
    filters = base.Query(
        namespace=namespace,
        workload=service,
        containers=(container,) if container else (),
        levels=_levels(params),
    )
    method = params.get("method") or None
    return Selection(
        filters,
        kind=_one_of(params, "kind", KINDS),
        method=method.upper() if method else None,
        source=_one_of(params, "source", SOURCES),
    )


# --- the ring and its followers --------------------------------------------------------------


@dataclass(eq=False)
class _Follower:
    selection: Selection
    subscription: streaming.Subscription
    namespace: str | None
    container: str | None
    service: str | None
    start_seq: int = 0  # entries up to this one were published before the subscription
    owners: set[base.WorkloadKey] = field(default_factory=set)
    destroyed: bool = False


class Ring:
    """ringSeq numbering of every published record, the last 5,000 of them, and followers."""

    def __init__(self, boot_ns: int, size: int = RING_ENTRIES, backlog: int = 10_000) -> None:
        self.base = boot_ns // 1_000_000 * 1000
        self.last_seq = self.base
        self.entries: collections.deque[tuple[int, base.StoredRecord]] = collections.deque(
            maxlen=size
        )
        # ringSeq of records still waiting in a follower's queue (hub queues are bounded).
        self._seqs: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._seq_capacity = size + backlog
        self.followers: set[_Follower] = set()

    def publish(self, records: Sequence[base.StoredRecord]) -> None:
        for record in records:
            self.last_seq += 1
            self.entries.append((self.last_seq, record))
            self._seqs[record.id] = self.last_seq
            if len(self._seqs) > self._seq_capacity:
                self._seqs.popitem(last=False)
            for follower in self.followers:
                if (
                    follower.container == record.container
                    and record.workload
                    and follower.namespace in (None, record.namespace)
                ):
                    key = base.WorkloadKey(record.namespace, record.kind, record.workload)
                    follower.owners.add(key)

    def lose_track(self) -> None:
        """Records were stored that this ring never numbered (a replica nobody follows does not
        read them): no ringSeq given so far can be resumed without a gap, so none is known."""
        self.entries.clear()
        self.last_seq += 1

    def seq(self, record: base.StoredRecord) -> int | None:
        return self._seqs.get(record.id)

    def after(self, last_event_id: int) -> list[tuple[int, base.StoredRecord]] | None:
        """Entries after `last_event_id`, or None when the ring does not know that id."""
        oldest = self.entries[0][0] if self.entries else self.last_seq + 1
        if not self.base <= last_event_id <= self.last_seq or last_event_id < oldest - 1:
            return None
        return [(seq, record) for seq, record in self.entries if seq > last_event_id]

    def workload_ended(self, key: base.WorkloadKey, reason: streaming.CloseReason) -> None:
        for follower in list(self.followers):
            if follower.namespace not in (None, key.namespace):
                continue
            if follower.service is not None and follower.service == key.name:
                follower.destroyed = True
            elif follower.container is not None and key in follower.owners:
                follower.owners.discard(key)
                follower.destroyed = not follower.owners
            if follower.destroyed:
                follower.subscription.close(reason)


def _frame(seq: int | None, body: dict[str, Any]) -> bytes:
    return formats.sse_event(orjson.dumps(body), event_id=None if seq is None else str(seq))


def _parse_last_event_id(request: Request) -> str | None:
    value = request.headers.get("last-event-id")
    return value.strip() if value is not None and value.strip() else None


async def _tail(
    ctx: context.ServerContext,
    ring: Ring,
    follower: _Follower,
    last_event_id: str | None,
) -> AsyncIterator[bytes]:
    selection = follower.selection
    try:
        yield b"retry: 2000\n\n"
        sent = follower.start_seq
        if last_event_id is not None:
            replay = ring.after(int(last_event_id)) if last_event_id.isdigit() else None
            if replay is None:
                reset = {"reason": "unknown-last-event-id", "lastEventId": last_event_id}
                yield formats.sse_event(orjson.dumps({**reset, "ringSeq": sent}), event="reset")
            else:
                chunk = bytearray()
                accepts = base.record_filter(selection.filters)
                for seq, record in replay:
                    matching = accepts(record)
                    if seq <= sent and matching and selection.keeps(record):
                        chunk += _frame(seq, entry(record))
                if chunk:
                    yield bytes(chunk)
        while True:
            batch = await follower.subscription.get(ctx.hub.heartbeat_s)
            if not batch:
                if follower.destroyed:
                    scope = {
                        "projectId": follower.namespace,
                        "containerId": follower.container,
                        "serviceName": follower.service,
                    }
                    yield formats.sse_event(orjson.dumps(scope), event="scope-destroyed")
                    return
                if follower.subscription.closed:
                    return
                yield b":\n\n"
                continue
            chunk = bytearray()
            for record in batch:
                record_seq = ring.seq(record)
                if record_seq is not None and record_seq <= sent:
                    continue  # already replayed from the ring
                if selection.keeps(record):
                    chunk += _frame(record_seq, entry(record))
            if chunk:
                yield bytes(chunk)
    finally:
        ring.followers.discard(follower)
        ctx.hub.unsubscribe(follower.subscription)


async def _owners(
    ctx: context.ServerContext, namespace: str | None, container: str
) -> set[base.WorkloadKey]:
    """The workloads whose pods declare a container of that name."""
    owners: set[base.WorkloadKey] = set()
    for pod in await ctx.store.list_pods(None):
        if pod.workload is None or namespace not in (None, pod.namespace):
            continue
        spec = pod.obj.get("spec") if isinstance(pod.obj, dict) else None
        declared = (spec.get("containers") or []) if isinstance(spec, dict) else []
        if any(isinstance(c, dict) and c.get("name") == container for c in declared):
            owners.add(pod.workload)
    return owners


# --- stats -----------------------------------------------------------------------------------


def _merge(into: dict[str, int], counts: Mapping[str, int], rename: Callable[[str], str]) -> None:
    for key, count in counts.items():
        name = rename(key)
        into[name] = into.get(name, 0) + count


def _stats_body(all_stats: Iterable[base.Stats]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total": 0,
        "byLevel": {},
        "byProject": {},
        "byContainer": {},
        "byService": {},
    }
    for stats in all_stats:
        body["total"] += stats.total
        _merge(body["byLevel"], stats.by_level, lambda level: _LEVEL_NAMES.get(level, "info"))
        _merge(body["byProject"], stats.by_namespace, str)
        _merge(body["byContainer"], stats.by_container, str)
        _merge(body["byService"], stats.by_workload, lambda key: key.partition("/")[2] or key)
    return body


# --- routes ----------------------------------------------------------------------------------


def _int(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    if params.get(name) == "":
        return None
    return query_model.parse_int(params, name, low, high)


@dataclass(frozen=True, slots=True)
class Page:
    records: list[base.StoredRecord]
    total: int
    offset: int
    limit: int
    next_cursor: str | None = None


async def _page(
    ctx: context.ServerContext, selection: Selection, params: Mapping[str, str]
) -> Page:
    filters = selection.filters
    limit = _int(params, "limit", 1, MAX_LIMIT) or DEFAULT_LIMIT
    offset = _int(params, "offset", 0, MAX_OFFSET) or 0
    last = _int(params, "last", 1, MAX_LIMIT)
    after_id = _int(params, "afterId", 0, 2**63 - 1)
    cursor = params.get("cursor") or None
    if selection.post_filtered:
        total = 0
        async for _ in _workloads.walk(ctx, filters, selection.keeps):
            total += 1
    else:
        total = await ctx.store.count(filters)
    found: list[base.StoredRecord] = []
    if last is not None:
        newest = dataclasses.replace(filters, order="desc")
        async for record in _workloads.walk(ctx, newest, selection.keeps):
            found.append(record)
            if len(found) >= last:
                break
        found.reverse()
        return Page(found, total, 0, last)
    first = filters
    if after_id is not None:
        first = dataclasses.replace(filters, after_id=after_id)
    elif cursor is not None:
        try:
            position = ctx.signer.decode(cursor, filters, selection.extra)
        except cursors.InvalidCursor as err:
            raise errors.ApiError(410, "snapshot_expired", str(err)) from None
        first = dataclasses.replace(filters, after=(position.ts_ns, position.id))
        offset = 0
    skipped = 0
    async for record in _workloads.walk(ctx, first, selection.keeps):
        if skipped < offset:
            skipped += 1
            continue
        found.append(record)
        if len(found) >= limit:
            break
    next_cursor = None
    if len(found) >= limit:
        position = cursors.Position(found[-1].ts_ns, found[-1].id, "asc")
        next_cursor = ctx.signer.encode(position, filters, selection.extra)
    return Page(found, total, offset, limit, next_cursor)


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    ring = Ring(time.time_ns())
    ctx.hub.add_listener(ring.publish)
    ctx.hub.add_skip_listener(ring.lose_track)
    ctx.hub.add_end_listener(ring.workload_ended)

    async def query_logs(request: Request) -> Response:
        params = request.query_params
        namespace = await _namespace(ctx, request)
        bodies = Bodies(
            request=query_model.parse_bool(params, "includeRequestBody"),
            response=query_model.parse_bool(params, "includeResponseBody"),
        )
        selection = _selection(params, namespace)
        page = await _page(ctx, selection, params)
        body: dict[str, Any] = {
            "entries": [entry(record, bodies) for record in page.records],
            "total": page.total,
            "limit": page.limit,
            "offset": page.offset,
        }
        if page.next_cursor is not None:
            body["nextCursor"] = page.next_cursor
        return Response(orjson.dumps(body), media_type="application/json")

    async def stats(request: Request) -> Response:
        principal = await ctx.reader(request, None)
        if principal.namespaces is None:
            all_stats = [await ctx.store.stats(base.Query())]
        else:
            namespaces = sorted(principal.namespaces)
            all_stats = [await ctx.store.stats(base.Query(namespace=ns)) for ns in namespaces]
        return Response(orjson.dumps(_stats_body(all_stats)), media_type="application/json")

    async def stream(request: Request) -> Response:
        params = request.query_params
        namespace = await _namespace(ctx, request)
        selection = _selection(params, namespace)
        container = params.get("containerId") or None
        service = params.get("serviceName") or None
        owners = await _owners(ctx, namespace, container) if container else set()
        follower = _Follower(
            selection,
            ctx.hub.subscribe(selection.filters),
            namespace=namespace,
            container=container,
            service=service,
            start_seq=ring.last_seq,
            owners=owners,
        )
        ring.followers.add(follower)
        headers = {"Cache-Control": "no-cache", "Connection": "keep-alive"}
        headers["X-Accel-Buffering"] = "no"
        body = _tail(ctx, ring, follower, _parse_last_event_id(request))
        return streaming.LiveResponse(body, media_type="text/event-stream", headers=headers)

    prefix = "/api/proxy-logs/_logs"
    return [
        Route(prefix, query_logs, methods=["GET"]),
        Route(prefix + "/stats", stats, methods=["GET"]),
        Route(prefix + "/stream", stream, methods=["GET"]),
    ]
