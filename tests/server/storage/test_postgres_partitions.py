"""PostgreSQL-only storage layout: day partitions, retention by partition, migrations, URLs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from tailrace.server import storage
from tailrace.server.storage import base, postgres, postgres_schema
from tests.server.storage import pg, samples

pytestmark = pytest.mark.postgres

DAY = postgres_schema.DAY_NS
D0 = samples.T0 - samples.T0 % DAY  # midnight of the first sample day


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[postgres.PostgresStore]:
    async with pg.opened_postgres(tmp_path) as opened:
        yield opened


def partitions(schema: str) -> list[str]:
    with psycopg.connect(pg.DSN) as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            (f'"{schema}".chunks',),
        ).fetchall()
    return [name for (name,) in rows]


def hello(message: str, ts_ns: int, **fields: object) -> base.NewRecord:
    return samples.record(message, ts_ns=ts_ns, kind="Function", workload="hello", **fields)


async def test_records_land_in_one_partition_per_day(store: postgres.PostgresStore) -> None:
    sent = [hello(f"d{day}", D0 + day * DAY + 5) for day in range(3)]
    await store.append([samples.batch("s", sent)])
    days = {postgres_schema.partition_name(postgres_schema.day_of(D0 + d * DAY)) for d in range(3)}
    assert days <= set(partitions(store.schema))
    found = await store.query(base.Query(since_ns=D0 + DAY, until_ns=D0 + 2 * DAY))
    assert [r.message for r in found] == ["d1"]


async def test_max_age_drops_whole_days_and_deletes_rows_at_the_edge(
    store: postgres.PostgresStore,
) -> None:
    await store.put_workload(
        samples.workload("hello", spec={"logs": {"retention": {"maxAge": "36h"}}})
    )
    # Two records a day for four days: at 06:00 and 18:00.
    sent = [
        hello(f"d{day}-{hour}", D0 + day * DAY + hour * 3600 * 10**9)
        for day in range(4)
        for hour in (6, 18)
    ]
    await store.append([samples.batch("s", sent)])
    day0 = postgres_schema.partition_name(postgres_schema.day_of(D0))
    assert day0 in partitions(store.schema)
    now = D0 + 3 * DAY + 20 * 3600 * 10**9  # day 3, 20:00: the cutoff is day 2, 08:00
    assert await store.apply_retention(now) == 5
    left = [r.message for r in await store.query(base.Query())]
    assert left == ["d2-18", "d3-6", "d3-18"]
    names = partitions(store.schema)
    assert day0 not in names
    assert postgres_schema.partition_name(postgres_schema.day_of(D0 + DAY)) not in names
    assert postgres_schema.partition_name(postgres_schema.day_of(D0 + 2 * DAY)) in names
    assert await store.apply_retention(now) == 0


async def test_a_day_holding_records_without_expiry_is_kept(
    store: postgres.PostgresStore,
) -> None:
    await store.put_workload(
        samples.workload("hello", spec={"logs": {"retention": {"maxAge": "1h"}}})
    )
    await store.append(
        [
            samples.batch("s", [hello("old", D0 + 10)]),
            samples.batch("t", [samples.record("unattributed", ts_ns=D0 + 20, pod="stray")]),
        ]
    )
    assert await store.apply_retention(D0 + 5 * DAY) == 1
    assert [r.message for r in await store.query(base.Query())] == ["unattributed"]
    assert postgres_schema.partition_name(postgres_schema.day_of(D0)) in partitions(store.schema)


async def test_an_append_after_its_partition_was_dropped_recreates_it(
    store: postgres.PostgresStore, tmp_path: Path
) -> None:
    await store.put_workload(
        samples.workload("hello", spec={"logs": {"retention": {"maxAge": "1h"}}})
    )
    await store.append([samples.batch("s", [hello("old", D0 + 10)])])
    other = storage.open_store(pg.url(store.schema))
    await other.open()
    try:
        assert await other.apply_retention(D0 + 5 * DAY) == 1  # another replica drops the day
    finally:
        await other.close()
    # This replica still believes the partition exists; the append must heal, not fail.
    result = await store.append([samples.batch("s", [hello("late", D0 + 30)], 100)])
    assert [r.message for r in result.stored] == ["late"]


async def test_reopening_migrates_nothing_and_keeps_the_instance(
    store: postgres.PostgresStore,
) -> None:
    meta = dict(await store.meta())
    assert meta["schema_version"] == str(postgres_schema.CURRENT_VERSION)
    assert meta["backend"] == "postgresql"
    again = storage.open_store(pg.url(store.schema))
    await again.open()
    try:
        assert (await again.meta())["instance_id"] == meta["instance_id"]
    finally:
        await again.close()
    with psycopg.connect(pg.DSN) as conn:
        row = conn.execute(f'SELECT count(*) FROM "{store.schema}".schema_version').fetchone()
    assert row == (postgres_schema.CURRENT_VERSION,)


def test_store_urls_carry_schema_and_pool_size_apart_from_libpq() -> None:
    conninfo, schema, pool = postgres.parse_url(
        "postgresql://u@db:5432/logs?schema=team_a&pool_max=3&sslmode=disable"
    )
    assert (conninfo, schema, pool) == ("postgresql://u@db:5432/logs?sslmode=disable", "team_a", 3)
    assert postgres.parse_url("postgres://db/logs")[1:] == ("tailrace", postgres.DEFAULT_POOL_MAX)
    with pytest.raises(base.UnknownStoreURL, match="schema"):
        postgres.parse_url("postgresql://db/logs?schema=Robert'); DROP")


async def test_an_unreachable_server_is_reported_as_store_unavailable() -> None:
    store = storage.open_store("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    with pytest.raises(base.StoreUnavailable):
        await store.open()


async def test_a_nul_byte_in_a_line_is_kept(store: postgres.PostgresStore) -> None:
    # Messages live in the chunk's bytea blob; only text columns (execution ids) cannot hold NUL.
    sent = samples.record("bin\x00ary tail", execution_id="run\x00x")
    result = await store.append([samples.batch("s", [sent])])
    assert len(result.stored) == 1
    (found,) = await store.query(base.Query(text="tail"))
    assert found.message == "bin\x00ary tail"
    assert [r.message for r in await store.query(base.Query(execution_id="run\x00x"))] == [
        "bin\x00ary tail"
    ]


async def test_words_past_the_indexed_prefix_and_very_long_words_are_still_found(
    store: postgres.PostgresStore,
) -> None:
    long_line = "filler " * (postgres_schema.SEARCH_INDEX_CHARS // 7 + 10) + "needle at the end"
    huge_word = "x" * 3000
    await store.append(
        [samples.batch("s", [samples.record(long_line), samples.record(f"short {huge_word} tail")])]
    )
    (found,) = await store.query(base.Query(text="needle at the END"))
    assert found.message == long_line
    (found,) = await store.query(base.Query(text=f"short {huge_word}"))
    assert found.message.startswith("short ")
    assert await store.query(base.Query(text=huge_word[:-1])) == []


async def test_totals_come_from_statistics_without_a_scan(store: postgres.PostgresStore) -> None:
    assert isinstance(store, base.EstimatesTotals)
    assert await base.gauge_totals(store) == base.Totals(0, 0)
    sent = [hello(f"line {i}", D0 + i) for i in range(50)]
    await store.append([samples.batch("s", sent)])
    with psycopg.connect(pg.DSN) as conn:
        conn.execute(f'ANALYZE "{store.schema}".chunks')
    totals = await base.gauge_totals(store)
    assert totals.rows == 50
    assert totals.bytes > 0
