"""PostgreSQL-only: a replica analyzes the day partitions it appends to where autovacuum won't."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import psycopg
import pytest

from tailrace.server.storage import base, postgres, postgres_schema, postgres_statistics
from tests.server.storage import pg, samples

pytestmark = pytest.mark.postgres

Opener = Callable[[bool | None], postgres.PostgresStore]


@pytest.fixture
async def open_store(tmp_path: Path) -> AsyncIterator[Opener]:
    pg.require()
    schema = pg.schema_for(tmp_path)
    opened: list[postgres.PostgresStore] = []

    def make(analyze: bool | None) -> postgres.PostgresStore:
        store = postgres.PostgresStore(pg.url(schema), analyze=analyze)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    pg.drop(schema)


def word_statistics(schema: str, day: int) -> list[str] | None:
    """The most common words ANALYZE listed for the day partition, None before any ANALYZE."""
    with psycopg.connect(pg.DSN) as conn:
        row = conn.execute(
            "SELECT most_common_elems::text::text[] FROM pg_stats "
            "WHERE schemaname = %s AND tablename = %s AND attname = 'words'",
            (schema, postgres_schema.partition_name(day)),
        ).fetchone()
    return None if row is None else list(row[0] or [])


async def append_records(store: postgres.PostgresStore, count: int, first: int = 0) -> None:
    """`count` records in one day, in batches of 5,000, each naming the word 'common'."""
    for start in range(first, first + count, 5_000):
        sent = [
            samples.record(f"common rare{i}", ts_ns=samples.T0 + i * 1_000)
            for i in range(start, min(start + 5_000, first + count))
        ]
        await store.append([samples.batch("s", sent, start * 10)])


async def statistics_appear(schema: str, day: int, timeout_s: float = 20.0) -> list[str] | None:
    for _ in range(int(timeout_s * 10)):
        found = word_statistics(schema, day)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    return None


async def test_a_partition_is_analyzed_once_enough_records_went_in(open_store: Opener) -> None:
    store = open_store(True)
    await store.open()
    day = postgres_schema.day_of(samples.T0)
    await append_records(store, postgres_statistics.FIRST - 5_000)
    await asyncio.sleep(0.5)
    assert word_statistics(store.schema, day) is None, "analyzed before its first threshold"

    await append_records(store, 5_000, first=postgres_statistics.FIRST - 5_000)
    words = await statistics_appear(store.schema, day)
    assert words is not None, "not analyzed after its first threshold"
    assert "common" in words
    # What the planner reads is there; what a query answers is unchanged.
    assert await store.count(base.Query(text="common")) == postgres_statistics.FIRST


async def test_nothing_is_analyzed_when_the_replica_leaves_it_to_autovacuum(
    open_store: Opener,
) -> None:
    store = open_store(False)
    await store.open()
    await append_records(store, postgres_statistics.FIRST)
    await asyncio.sleep(1.0)
    assert word_statistics(store.schema, postgres_schema.day_of(samples.T0)) is None


async def test_by_default_the_replica_analyzes_only_where_autovacuum_is_off(
    open_store: Opener,
) -> None:
    store = open_store(None)
    await store.open()
    with psycopg.connect(pg.DSN) as conn:
        row = conn.execute("SELECT current_setting('autovacuum')::boolean").fetchone()
    assert row is not None
    assert store.analyzes == (not row[0])
