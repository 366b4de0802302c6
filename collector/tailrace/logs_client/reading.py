"""A one-off read: every matching line (paged with the server's cursor), or the last N."""

from __future__ import annotations

from typing import Any

import httpx

from tailrace.logs_client import api, connection, failures, options, rendering


def _page(
    client: httpx.Client, conn: connection.Connection, opts: options.Options, params: dict[str, str]
) -> dict[str, Any]:
    try:
        response = client.get(
            api.logs_path(conn, opts.target),
            params=params,
            headers={"Accept": "application/json"},
        )
    except httpx.TransportError as err:
        raise api.unreachable(conn, err) from err
    api.check(response, conn, str(opts.target))
    try:
        body = response.json()
    except ValueError as err:
        raise failures.Unavailable(
            f"the server answered something that is not JSON: {err}"
        ) from err
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise failures.Unavailable("the server answered JSON without a records list")
    return body


def read(
    client: httpx.Client,
    conn: connection.Connection,
    opts: options.Options,
    renderer: rendering.Renderer,
) -> None:
    params = api.filter_params(opts)
    if opts.tail is not None:
        # The newest N lines in one answer, oldest first, like kubectl --tail.
        body = _page(client, conn, opts, {**params, "tailLines": str(opts.tail)})
        for record in body["records"]:
            renderer.write(record)
        return
    cursor: str | None = None
    while True:
        page_params = {**params, "limit": str(opts.page_size)}
        if cursor:
            page_params["cursor"] = cursor
        body = _page(client, conn, opts, page_params)
        for record in body["records"]:
            renderer.write(record)
        renderer.flush()
        next_cursor = body.get("nextCursor")
        if not next_cursor:
            return
        cursor = str(next_cursor)
