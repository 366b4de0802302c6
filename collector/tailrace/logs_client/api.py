"""The native API as `tailrace logs` uses it: the URL, the query parameters, the error answers."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from tailrace.logs_client import connection, failures, options

# Heartbeats come every 15 s; a follow that hears nothing for this long treats the line as dead.
READ_TIMEOUT_S = 45.0


def client(conn: connection.Connection) -> httpx.Client:
    headers = {"User-Agent": "tailrace-logs"}
    if conn.token:
        headers["Authorization"] = f"Bearer {conn.token}"
    return httpx.Client(
        base_url=conn.server,
        headers=headers,
        timeout=httpx.Timeout(10.0, read=READ_TIMEOUT_S),
    )


def logs_path(conn: connection.Connection, target: options.Target) -> str:
    ns = quote(conn.namespace, safe="")
    return f"/v1/namespaces/{ns}/{target.kind}/{quote(target.name, safe='')}/logs"


def filter_params(opts: options.Options) -> dict[str, str]:
    """The filters, shared by a one-off read, a follow and a resumed follow."""
    params: dict[str, str] = {}
    if opts.since is not None:
        params["last"] = opts.since
    if opts.since_time is not None:
        params["since"] = opts.since_time
    if opts.container:
        params["container"] = opts.container
    if opts.levels:
        params["level"] = opts.levels
    if opts.grep:
        params["q"] = opts.grep
    if opts.execution:
        params["executionId"] = opts.execution
    return params


def _error_message(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.text.strip()[:200] or response.reason_phrase


def check(response: httpx.Response, conn: connection.Connection, what: str) -> None:
    """Raise the failure an error answer stands for; return on success."""
    if response.is_success:
        return
    response.read()  # a streamed answer (a follow) has not read its error body yet
    status = response.status_code
    message = _error_message(response)
    if status == 401:
        raise failures.Denied(
            f"the server at {conn.server} wants a valid token ({status}: {message}); "
            "pass --token, set TAILRACE_TOKEN or add one to the config file"
        )
    if status == 403:
        raise failures.Denied(
            f"the token may not read {what} in namespace {conn.namespace!r} ({status}: {message})"
        )
    if status == 404:
        raise failures.NotFound(f"{what} not found in namespace {conn.namespace!r} ({message})")
    if status in (400, 413, 422):
        raise failures.UsageError(f"the server refused the request ({status}: {message})")
    transient = status in (429, 502, 503, 504)
    raise failures.Unavailable(
        f"the server at {conn.server} answered {status}: {message}", transient=transient
    )


def unreachable(conn: connection.Connection, err: Exception) -> failures.Unavailable:
    return failures.Unavailable(
        f"cannot reach the Tailrace server at {conn.server} ({err.__class__.__name__}: {err}); "
        "is it running? point --server or TAILRACE_SERVER at it",
        transient=True,
    )
