"""API errors and how each surface renders them.

Endpoints raise `ApiError` (or let `StoreUnavailable` escape); one `Boundary` per surface turns
them into that surface's error body. The native surface answers
`{"message", "error_code", "details"}`; compatibility surfaces pass their own `Renderer`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tailrace.server.storage import base

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the server refuses, with the status and machine-readable code to answer."""

    def __init__(
        self,
        status: int,
        error_code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})


def bad_parameter(parameter: str, reason: str, value: str | None = None) -> ApiError:
    details: dict[str, Any] = {"parameter": parameter, "reason": reason}
    if value is not None:
        details["value"] = value[:200]
    return ApiError(400, "invalid_parameter", f"invalid parameter {parameter!r}: {reason}", details)


def bad_body(field: str, reason: str) -> ApiError:
    return ApiError(
        400, "invalid_body", f"invalid {field}: {reason}", {"field": field, "reason": reason}
    )


def not_found(what: str, **details: Any) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found", details)


def unauthenticated(reason: str) -> ApiError:
    return ApiError(
        401,
        "unauthenticated",
        reason,
        {"reason": reason},
        headers={"WWW-Authenticate": 'Bearer realm="tailrace"'},
    )


def forbidden(reason: str, namespace: str | None) -> ApiError:
    return ApiError(403, "forbidden", reason, {"namespace": namespace})


def too_many_requests(retry_after_s: float) -> ApiError:
    seconds = max(1, int(retry_after_s + 0.999))
    return ApiError(
        429,
        "rate_limited",
        f"too many requests; retry after {seconds}s",
        {"retryAfterSeconds": seconds},
        headers={"Retry-After": str(seconds)},
    )


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        413, "body_too_large", f"request body exceeds {limit} bytes", {"limitBytes": limit}
    )


def from_exception(exc: BaseException) -> ApiError | None:
    """The ApiError an exception stands for, or None when it is a bug (answered 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, base.InvalidQuery):
        return ApiError(400, "invalid_query", str(exc), {"reason": str(exc)})
    if isinstance(exc, base.StoreUnavailable):
        return ApiError(
            503,
            "store_unavailable",
            "the log store is unavailable",
            {"reason": str(exc)},
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        return ApiError(exc.status_code, code, str(exc.detail), {}, dict(exc.headers or {}))
    return None


Renderer = Callable[[Request, ApiError], Response]


def render_native(request: Request, error: ApiError) -> Response:
    body = {"message": error.message, "error_code": error.error_code, "details": error.details}
    return JSONResponse(body, status_code=error.status, headers=error.headers)


class Boundary:
    """Route middleware: renders `ApiError`/`StoreUnavailable` with the surface's renderer.

    Errors raised after a streaming response started cannot change the status any more; those
    are logged and the stream is closed by the server.
    """

    def __init__(self, app: ASGIApp, render: Renderer = render_native) -> None:
        self.app = app
        self.render = render

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            error = from_exception(exc)
            if error is None or started or scope["type"] != "http":
                raise
            if error.status >= 500:
                log.warning("%s %s: %s", scope.get("method"), scope.get("path"), exc)
            response = self.render(Request(scope, receive), error)
            await response(scope, receive, send)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """App-level handler for what happens outside any route (unknown path, wrong method)."""
    error = from_exception(exc) or ApiError(500, "internal", "internal error")
    return render_native(request, error)


HttpHandler = Callable[[Request, Exception], Awaitable[Response]]
