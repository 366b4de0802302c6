"""The PostgreSQL server the tests share: reachability, throwaway schemas, store URLs.

Tests use the server at 127.0.0.1:5432 (trust auth, user postgres, database test). Each test gets
its own schema, named after its temp directory so a reopened store sees the same data, and every
schema made here is dropped when the test session ends. Without a reachable server the tests skip
and say why, except under CI (the `CI` environment variable), where that is a failure.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from tailrace.server import storage
from tailrace.server.storage import base

DSN = os.environ.get("TAILRACE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_created: set[str] = set()


@functools.cache
def unreachable_reason() -> str | None:
    try:
        with psycopg.connect(DSN, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as err:
        return f"PostgreSQL at {DSN} is not reachable ({err}); PostgreSQL tests are skipped"
    return None


def require() -> None:
    """Skip (fail under CI) when the test PostgreSQL does not answer."""
    reason = unreachable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{reason.split(';')[0]}, and CI is set: PostgreSQL tests must run")
    pytest.skip(reason)


def schema_for(tmp: Path, suffix: str = "") -> str:
    digest = hashlib.sha1(f"{tmp}{suffix}".encode()).hexdigest()[:16]
    name = f"tailrace_test_{digest}"
    if not _created:
        atexit.register(_drop_all)
    _created.add(name)
    return name


def url(schema: str, **params: str) -> str:
    extra = "".join(f"&{key}={value}" for key, value in params.items())
    return f"{DSN}?schema={schema}{extra}"


def drop(schema: str) -> None:
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    _created.discard(schema)


def _drop_all() -> None:
    for schema in list(_created):
        with contextlib.suppress(psycopg.Error):
            drop(schema)


@contextlib.asynccontextmanager
async def opened_store(tmp: Path) -> AsyncIterator[base.Store]:
    """The contract suite's backend factory: an open store in the test's own schema."""
    require()
    store = storage.open_store(url(schema_for(tmp)))
    await store.open()
    try:
        yield store
    finally:
        await store.close()
