"""Fixtures of the server's HTTP tests (the harness itself is in harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.server.harness import Running

ServerFactory = Callable[..., Awaitable[Running]]


@pytest.fixture
async def make_server(tmp_path: Path) -> AsyncIterator[ServerFactory]:
    started: list[Running] = []

    async def factory(**options: Any) -> Running:
        server = await Running(tmp_path / "tailrace.db", **options).start()
        started.append(server)
        return server

    try:
        yield factory
    finally:
        for server in reversed(started):
            await server.stop()


@pytest.fixture
async def server(make_server: ServerFactory) -> Running:
    return await make_server()
