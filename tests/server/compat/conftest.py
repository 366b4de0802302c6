"""Fixtures of the compatibility-surface contract tests.

Each test module walks one platform's document against a real server (the app under uvicorn
on a free port, gRPC ingest beside it); records come in through gRPC Push as the agent sends
them, workloads and pods through the control API as the operator sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tailrace.server import auth, ratelimit, storage
from tailrace.server.storage import base
from tests.server.harness import Running, pod_object

ServerFactory = Callable[..., Awaitable[Running]]

HEARTBEAT_S = 0.2
READ_TIMEOUT_S = 10.0


@pytest.fixture
async def live_server(make_server: ServerFactory) -> Running:
    """A server whose live streams send heartbeats every 0.2 s instead of 15 s."""
    return await make_server(heartbeat_s=HEARTBEAT_S)


async def put_pod(server: Running, name: str, **options: Any) -> dict[str, Any]:
    namespace = options.get("namespace", "ns")
    body = pod_object(name, **options)
    response = await server.http.put(f"/v1/namespaces/{namespace}/pods/{name}", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def delete_workload(server: Running, plural: str, name: str, namespace: str = "ns") -> None:
    response = await server.http.delete(f"/v1/namespaces/{namespace}/{plural}/{name}")
    assert response.status_code == 200, response.text


class LineReader:
    """Lines of a streaming response, each awaited with a generous bound (never asserted)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> str:
        return await asyncio.wait_for(anext(self._lines), READ_TIMEOUT_S)

    async def take(self, count: int) -> list[str]:
        return [await self.next() for _ in range(count)]

    async def rest(self) -> list[str]:
        """Every remaining line until the server ends the stream."""
        lines = []
        while True:
            try:
                lines.append(await self.next())
            except StopAsyncIteration:
                return lines


@contextlib.asynccontextmanager
async def stream(
    server: Running, url: str, **options: Any
) -> AsyncIterator[tuple[httpx.Response, LineReader]]:
    async with server.http.stream("GET", url, **options) as response:
        yield response, LineReader(response)


READER = {"Authorization": "Bearer reader"}
OPERATOR = {"Authorization": "Bearer ingest"}


async def secured_server(make_server: ServerFactory, **options: Any) -> Running:
    """A server that wants a bearer token: `reader` reads namespace ns, `ingest` pushes."""
    readers = auth.TokenTable.parse("reader ns\nother elsewhere\n")
    ingesters = auth.TokenTable.parse("ingest *\n")
    return await make_server(
        authorizer=auth.Authorizer(readers=readers, ingesters=ingesters),
        ingest_token="ingest",
        **options,
    )


def rate_limited() -> ratelimit.RateLimiter:
    """Two requests per caller (registering the workload is one), then 429 for a long while."""
    return ratelimit.RateLimiter(0.001, 2)


class BuggyStore:
    """A real SQLite store whose workload listing can be made to fail with a bug (not an outage),
    to see a surface answer its documented 500 body."""

    def __init__(self, path: Path) -> None:
        self._inner = storage.open_store(f"sqlite:///{path}")
        self.buggy = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_workloads(self, namespace: str | None = None) -> list[base.Workload]:
        if self.buggy:
            raise RuntimeError("a bug in the workload registry")
        return list(await self._inner.list_workloads(namespace))
