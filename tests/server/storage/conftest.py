"""The store contract suite runs against every backend listed in `BACKENDS`.

Adding a backend is one entry: a name and an async context manager that yields an open, empty
store (and may skip when its server is not reachable). `reopen` gives a second store over the same
data, for the restart tests; backends without durable data return None there.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tailrace.server import storage
from tailrace.server.storage import base
from tests.server.storage import pg

StoreFactory = Callable[[Path], contextlib.AbstractAsyncContextManager[base.Store]]


@contextlib.asynccontextmanager
async def _opened(url: str) -> AsyncIterator[base.Store]:
    store = storage.open_store(url)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def _sqlite_file(tmp: Path) -> contextlib.AbstractAsyncContextManager[base.Store]:
    return _opened(f"sqlite://{tmp}/tailrace.db")


def _sqlite_memory(tmp: Path) -> contextlib.AbstractAsyncContextManager[base.Store]:
    return _opened("sqlite:///:memory:")


def _memory(tmp: Path) -> contextlib.AbstractAsyncContextManager[base.Store]:
    return _opened("memory://")


# name -> (factory, durable: a second factory call with the same tmp dir sees the same data)
BACKENDS: dict[str, tuple[StoreFactory, bool]] = {
    "memory": (_memory, False),
    "sqlite": (_sqlite_file, True),
    "sqlite-memory": (_sqlite_memory, False),
    "postgres": (pg.opened_store, True),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> tuple[StoreFactory, bool]:
    return BACKENDS[request.param]


@pytest.fixture
async def store(backend: tuple[StoreFactory, bool], tmp_path: Path) -> AsyncIterator[Any]:
    factory, _ = backend
    async with factory(tmp_path) as opened:
        yield opened
