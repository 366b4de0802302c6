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
from tailrace.server.storage import base, postgres

DSN = os.environ.get("TAILRACE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
_created: set[str] = set()
_started = False


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
    """The test's schema: the same for the same temp directory (a reopened store sees its data).

    Schemas of earlier tests of this process are dropped here (tests run one after another, and
    a restart test reopens its own schema, so "earlier" is the first moment it is safe), those of
    test processes that died without cleaning up too, and the last one when the process exits.
    """
    digest = hashlib.sha1(f"{tmp}{suffix}".encode()).hexdigest()[:12]
    name = f"tailrace_test_{os.getpid()}_{digest}"
    global _started
    if not _started:
        _started = True
        atexit.register(_drop_all)
        _drop_orphans()
    for earlier in list(_created - {name}):
        with contextlib.suppress(psycopg.Error):
            drop(earlier)
    _created.add(name)
    return name


def _drop_orphans() -> None:
    with contextlib.suppress(psycopg.Error), psycopg.connect(DSN, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tailrace_test_%'"
        ).fetchall()
        for (schema,) in rows:
            parts = schema.split("_")
            if len(parts) == 4 and parts[2].isdigit() and not _alive(int(parts[2])):
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


@contextlib.asynccontextmanager
async def opened_postgres(tmp: Path) -> AsyncIterator[postgres.PostgresStore]:
    """An open PostgreSQL store in the test's own schema, dropped afterwards (for tests that
    look at PostgreSQL-only parts: partitions, search plans, migrations)."""
    require()
    schema = schema_for(tmp)
    store = storage.open_store(url(schema))
    assert isinstance(store, postgres.PostgresStore)
    await store.open()
    try:
        yield store
    finally:
        await store.close()
        drop(schema)
