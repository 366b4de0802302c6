"""Feldera: `GET /v0/pipelines/{pipeline_name}/logs`, a text/plain stream of a Pipeline's logs.

The stream first catches up with the pipeline's bounded buffer (`spec.logs.ringBuffer`: at most
`lines` lines and `bytes` bytes of text, whichever limit is reached first, newest kept), then
pushes each new line as it is stored. It ends when the pipeline is deleted (or the server shuts
down), as Feldera's does; a client that loses the connection simply asks again.

The catch-up is read from the store, bounded exactly as the ring is, rather than from the
in-memory ring: the ring starts empty after a restart, the store does not, and a reconnecting
client should see the lines that were written while it was away.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import AsyncIterator

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace.server import context, control, errors, formats, streaming
from tailrace.server.storage import base
from tailrace.server.surfaces import _workloads

MEDIA_TYPE = "text/plain; charset=utf-8"

# Feldera's error codes for the statuses its document lists.
_ERROR_CODES = {503: "ServiceUnavailable", 500: "InternalServerError"}


def render_error(request: Request, error: errors.ApiError) -> Response:
    """Feldera's ErrorResponse: `{message, error_code, details}`."""
    if error.error_code == "UnknownPipelineName":
        code = error.error_code
    else:
        code = _ERROR_CODES.get(error.status) or "".join(
            part.capitalize() for part in error.error_code.split("_")
        )
    body = {"message": error.message, "error_code": code, "details": error.details}
    return Response(
        orjson.dumps(body),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


def unknown_pipeline(name: str) -> errors.ApiError:
    return errors.ApiError(
        404,
        "UnknownPipelineName",
        f"Unknown pipeline name '{name}'",
        {"pipeline_name": name},
    )


def _line(record: base.StoredRecord) -> bytes:
    return formats.text_line(record)


async def catch_up(ctx: context.ServerContext, pipeline: base.Workload) -> list[base.StoredRecord]:
    """The newest records that fit the pipeline's ring buffer, oldest first."""
    max_lines, max_bytes = control.ring_size(pipeline.spec)
    newest = await ctx.store.query(
        dataclasses.replace(_workloads.scope(pipeline), tail=max_lines, limit=max_lines)
    )
    kept: collections.deque[base.StoredRecord] = collections.deque()
    size = 0
    for record in reversed(newest):
        size += len(_line(record))
        if size > max_bytes and kept:
            break
        kept.appendleft(record)
    return list(kept)


async def _stream(
    ctx: context.ServerContext,
    buffered: list[base.StoredRecord],
    subscription: streaming.Subscription,
) -> AsyncIterator[bytes]:
    try:
        seen = 0
        for record in buffered:
            seen = max(seen, record.id)
            yield _line(record)
        while True:
            batch = await subscription.get(ctx.hub.heartbeat_s)
            if not batch and subscription.closed:
                return  # deleted, shut down or too slow: Feldera's stream simply ends
            chunk = b"".join(_line(r) for r in batch if r.id > seen)
            if chunk:
                yield chunk
    finally:
        ctx.hub.unsubscribe(subscription)


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    async def pipeline_logs(request: Request) -> Response:
        with _workloads.internal_errors("Feldera pipeline logs"):
            return await _pipeline_logs(request)

    async def _pipeline_logs(request: Request) -> Response:
        name = request.path_params["pipeline_name"]
        pipeline = await _workloads.resolve(ctx, request, name, kinds=("Pipeline",))
        if pipeline is None:
            raise unknown_pipeline(name)
        # Subscribe before reading the catch-up, so no line falls between the two.
        subscription = ctx.hub.subscribe(_workloads.scope(pipeline))
        try:
            # Read before the response starts, so a store that is down is answered 503.
            buffered = await catch_up(ctx, pipeline)
        except BaseException:
            ctx.hub.unsubscribe(subscription)
            raise
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return streaming.LiveResponse(
            _stream(ctx, buffered, subscription), media_type=MEDIA_TYPE, headers=headers
        )

    return [Route("/v0/pipelines/{pipeline_name}/logs", pipeline_logs, methods=["GET"])]
