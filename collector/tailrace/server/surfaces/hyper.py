"""Hyper Func: `GET /logs/{name}/{uuid}`, a function's execution events as NDJSON.

The function is a `Function` found by name *and* `metadata.uid`; either not matching is
"no such function" (404). Its calls are executions (docs/interfaces.md, "Execution ids"), and
their events come from two places:

- A pod labelled with the execution id (`tailrace.dev/execution-id`) is one call: the control
  API turns its lifecycle into CALL (pod created), PENDING, RUNNING, FINISHED (Succeeded) and
  FAILED (Failed). The pod's output belongs to the call; `Message` of a FAILED event is the
  container's termination record (exit code, OOMKilled), else the call's first stderr line.
- In a long-running function serving many calls, JSON output lines carrying `executionId`
  name the call: its first line is CALL and RUNNING, and a line with `"event": "FINISHED"` or
  `"event": "FAILED"` (`"error"` or `"msg"` as the message) ends it.

FINISHED and FAILED carry `ShortStdout` / `ShortStderr`, the first 1,024 bytes of what the call
printed on each stream. `ShortStdin` is never sent: the input of a call is not logged.

`callid` keeps one call's events, `tail` the last N (`all` by default), `follow` keeps the
response open for new events until the function is deleted. A client that sends `Connection:
Upgrade` and `Upgrade: <protocol>` gets `101 UPGRADED` and the events on the raw connection (the
"hijack" of Docker-style clients), others a `200` streamed NDJSON body. The query string of the
document's example, `?follow=1?callid=...`, is read as the two parameters it means.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace.server import context, errors, formats, lifecycle, streaming
from tailrace.server.storage import base
from tailrace.server.surfaces import _upgrade, _workloads

SHORT_BYTES = 1024
MEDIA_TYPE = "application/x-ndjson"
MAX_TAIL = 1_000_000
_FINAL = ("FINISHED", "FAILED")
_FAILURE_REASONS = ("Terminated", "OOMKilled")


def render_error(request: Request, error: errors.ApiError) -> Response:
    """Hyper's API answers errors as `{"message": ...}` (Docker's shape)."""
    return Response(
        orjson.dumps({"message": error.message}),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


def _time(ts_ns: int) -> str:
    # Hyper's times have millisecond precision: 2017-03-16T07:05:58.216Z
    return formats.format_time(ts_ns)[:23] + "Z"


def _params(request: Request) -> dict[str, str]:
    """Query parameters, with `?` inside the query read as `&` (the document's example)."""
    raw = request.url.query.replace("?", "&")
    return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))


def _follow(params: Mapping[str, str]) -> bool:
    value = params.get("follow", "")
    if value in ("", "0", "False", "false"):
        return False
    if value in ("1", "True", "true"):
        return True
    raise errors.bad_parameter("follow", "expected 1/True/true or 0/False/false", value)


def _tail(params: Mapping[str, str]) -> int | None:
    value = params.get("tail", "all")
    if value in ("", "all"):
        return None
    if not value.isdigit() or int(value) > MAX_TAIL:
        raise errors.bad_parameter("tail", f"expected all or a number up to {MAX_TAIL}", value)
    return int(value)


def _explicit_event(message: str) -> tuple[str, str] | None:
    """(event, message) of a JSON output line that ends or marks a call itself."""
    if not message.startswith("{") or '"event"' not in message:
        return None
    try:
        line = orjson.loads(message)
    except orjson.JSONDecodeError:
        return None
    event = line.get("event") if isinstance(line, dict) else None
    if event not in lifecycle.EXECUTION_EVENTS:
        return None
    text = line.get("error") or line.get("msg") or line.get("message") or ""
    return str(event), str(text)


@dataclass
class _Call:
    call_id: str
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    failure: str = ""
    emitted: set[str] = field(default_factory=set)


def _short(buffer: bytearray) -> str:
    return bytes(buffer[:SHORT_BYTES]).decode("utf-8", "ignore")


class Calls:
    """Turns a function's records, fed in time order, into Hyper's execution events."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}
        self._pods: dict[str, str] = {}  # pod name -> the call its execution-id label names

    def _event(self, call: _Call, event: str, ts_ns: int, message: str = "") -> dict[str, Any]:
        call.emitted.add(event)
        body: dict[str, Any] = {"Time": _time(ts_ns), "Event": event, "CallId": call.call_id}
        if event in _FINAL:
            if call.stdout:
                body["ShortStdout"] = _short(call.stdout)
            if call.stderr:
                body["ShortStderr"] = _short(call.stderr)
        if event == "FAILED":
            body["Message"] = message or call.failure or "the call failed"
        return body

    def _call(self, call_id: str) -> tuple[_Call, bool]:
        call = self._calls.get(call_id)
        if call is None:
            call = self._calls[call_id] = _Call(call_id)
            return call, True
        return call, False

    def feed(self, record: base.StoredRecord) -> list[dict[str, Any]]:
        if record.stream == "system":
            return self._system(record)
        call_id = record.execution_id or self._pods.get(record.pod, "")
        if not call_id:
            return []
        call, new = self._call(call_id)
        events = []
        if new:
            events = [self._event(call, "CALL", record.ts_ns)]
            events.append(self._event(call, "RUNNING", record.ts_ns))
        buffer = call.stderr if record.stream == "stderr" else call.stdout
        if len(buffer) < SHORT_BYTES:
            buffer += (record.message + "\n").encode()
        if record.stream == "stderr" and not call.failure:
            call.failure = record.message
        explicit = _explicit_event(record.message)
        if explicit is not None and explicit[0] not in call.emitted:
            events.append(self._event(call, explicit[0], record.ts_ns, explicit[1]))
        return events

    def _system(self, record: base.StoredRecord) -> list[dict[str, Any]]:
        if not record.execution_id:
            return []
        event = record.attrs.get("event")
        call, _ = self._call(record.execution_id)
        self._pods[record.pod] = record.execution_id
        if event in lifecycle.EXECUTION_EVENTS and event not in call.emitted:
            return [self._event(call, str(event), record.ts_ns)]
        reason = record.attrs.get("reason")
        if reason in _FAILURE_REASONS and record.level in ("ERROR", "FATAL"):
            call.failure = record.message  # the termination says more than a stderr line
        return []


def _only(events: Iterable[dict[str, Any]], call_id: str | None) -> list[dict[str, Any]]:
    return [e for e in events if call_id is None or e["CallId"] == call_id]


def _lines(events: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(event) + b"\n" for event in events)


@dataclass
class _Reading:
    calls: Calls
    catch_up: list[dict[str, Any]]
    overlap: set[int]


async def _read_past(
    ctx: context.ServerContext,
    workload: base.Workload,
    call_id: str | None,
    tail: int | None,
    start_id: int,
) -> _Reading:
    calls = Calls()
    events: list[dict[str, Any]] = []
    overlap: set[int] = set()
    async for record in _workloads.walk(ctx, _workloads.scope(workload)):
        if record.id > start_id:
            overlap.add(record.id)
        events.extend(_only(calls.feed(record), call_id))
    if tail is not None:
        events = events[len(events) - tail :] if tail else []
    return _Reading(calls, events, overlap)


async def _follow_events(
    ctx: context.ServerContext,
    reading: _Reading,
    subscription: streaming.Subscription,
    call_id: str | None,
) -> AsyncIterator[bytes]:
    try:
        if reading.catch_up:
            yield _lines(reading.catch_up)
        while True:
            batch = await subscription.get(ctx.hub.heartbeat_s)
            if not batch and subscription.closed:
                return  # the function was deleted (or the server is stopping)
            events: list[dict[str, Any]] = []
            for record in batch:
                if record.id in reading.overlap:
                    reading.overlap.discard(record.id)
                    continue
                events.extend(_only(reading.calls.feed(record), call_id))
            if events:
                yield _lines(events)
    finally:
        ctx.hub.unsubscribe(subscription)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    async def function_logs(request: Request) -> Response:
        with _workloads.internal_errors("Hyper function logs"):
            return await _function_logs(request)

    async def _function_logs(request: Request) -> Response:
        name, uid = request.path_params["name"], request.path_params["uuid"]
        params = _params(request)
        follow, tail = _follow(params), _tail(params)
        call_id = params.get("callid") or None
        workload = await _workloads.resolve(ctx, request, uid, kinds=("Function",))
        if workload is None or workload.key.name != name or workload.uid != uid:
            raise errors.not_found(f"no such function: {name}/{uid}", name=name, uuid=uid)
        subscription = ctx.hub.subscribe(_workloads.scope(workload)) if follow else None
        try:
            start_id = subscription.start_id if subscription else ctx.hub.last_id
            reading = await _read_past(ctx, workload, call_id, tail, start_id)
        except BaseException:
            if subscription is not None:
                ctx.hub.unsubscribe(subscription)
            raise
        body: AsyncIterator[bytes] | None = None
        if subscription is not None:
            body = _follow_events(ctx, reading, subscription, call_id)
        if _upgrade.EXTENSION in request.scope.get("extensions", {}) and (
            _upgrade.upgrade_requested(request.headers)
        ):
            headers = {"Connection": "Upgrade", "Upgrade": request.headers.get("upgrade", "tcp")}
            return streaming.LiveResponse(
                body or _once(_lines(reading.catch_up)),
                status_code=101,
                headers=headers,
                media_type=MEDIA_TYPE,
            )
        if body is None:
            return Response(_lines(reading.catch_up), media_type=MEDIA_TYPE)
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return streaming.LiveResponse(body, media_type=MEDIA_TYPE, headers=headers)

    return [Route("/logs/{name}/{uuid}", function_logs, methods=["GET"])]
