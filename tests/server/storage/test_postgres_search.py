"""PostgreSQL text search: a common word walks the scope in time order, and answers exactly as the
word index does (pages, tails, cursors, filters), also when the walk gives up part way."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tailrace.server.storage import base, postgres, postgres_search, postgres_sql
from tests.server.storage import pg, samples

pytestmark = pytest.mark.postgres


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[postgres.PostgresStore]:
    async with pg.opened_postgres(tmp_path) as opened:
        yield opened


def _message(i: int) -> str:
    # "request" is in every row, "retry" in one row in five of pod a and none of pod b's, and
    # "timeout retry" is a phrase in half of those.
    words = ["request", f"n{i}"]
    if i % 2 == 0 and i % 5 == 0:
        words += ["timeout", "retry"] if i % 4 == 0 else ["retry", "timeout"]
    return " ".join(words)


async def _fill(store: postgres.PostgresStore, n: int = 2_000) -> None:
    sent = [
        samples.record(
            _message(i),
            ts_ns=samples.T0 + (i // 3) * 1000,  # several rows share a timestamp
            pod="pod-a" if i % 2 == 0 else "pod-b",
            level="ERROR" if i % 7 == 0 else "INFO",
            kind="Function",
            workload="hello",
        )
        for i in range(n)
    ]
    await store.append([samples.batch("fill", sent)])
    with psycopg.connect(pg.DSN, autocommit=True) as conn:
        conn.execute(f'ANALYZE "{store.schema}".records')


def _walks(monkeypatch: pytest.MonkeyPatch) -> list[base.Query]:
    walked: list[base.Query] = []
    real = postgres_sql.walk

    def spy(query: base.Query, *args: Any, **kwargs: Any) -> tuple[str, postgres_sql.Params]:
        walked.append(query)
        return real(query, *args, **kwargs)

    monkeypatch.setattr(postgres_sql, "walk", spy)
    return walked


QUERIES = [
    base.Query(text="request", order="desc", limit=10),
    base.Query(text="request", order="asc", limit=10, after=(samples.T0 + 3000, 10)),
    base.Query(text="retry", order="desc", limit=25),
    base.Query(text="retry", pod="pod-a", order="desc", limit=7, after=(samples.T0 + 400_000, 0)),
    base.Query(text="timeout retry", order="desc", limit=30),
    base.Query(text="retry", tail=12),
    base.Query(text="request", tail=5, after=(samples.T0 + 500_000, 0)),
    base.Query(text="retry timeout", levels=("ERROR",), order="desc", limit=5),
    base.Query(text="retry", namespace="ns", kind="Function", workload="hello", limit=40),
]


async def _answers(store: postgres.PostgresStore) -> list[list[int]]:
    return [[r.id for r in await store.query(q)] for q in QUERIES]


async def test_common_words_walk_and_answer_as_the_word_index_does(
    store: postgres.PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fill(store)
    walked = _walks(monkeypatch)
    by_walk = await _answers(store)
    assert len(walked) >= len(QUERIES) - 1  # "retry" in pod b's scope is rare: may not walk
    monkeypatch.setattr(postgres_search, "WALK_EXPECTED", 0)
    walked.clear()
    by_index = await _answers(store)
    assert walked == []
    assert by_walk == by_index
    assert all(by_index)


async def test_a_walk_that_gives_up_goes_on_through_the_word_index(
    store: postgres.PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fill(store)
    monkeypatch.setattr(postgres_search, "WALK_EXPECTED", 0)
    by_index = await _answers(store)
    # Walk everything, but give up after 30 rows: most answers need the word index's help.
    monkeypatch.setattr(postgres_search, "WALK_EXPECTED", 1_000_000)
    monkeypatch.setattr(postgres_search, "WALK_ROWS", 30)
    walked = _walks(monkeypatch)
    assert await _answers(store) == by_index
    assert len(walked) >= len(QUERIES)


async def test_a_word_absent_from_the_statistics_goes_through_the_word_index(
    store: postgres.PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fill(store)
    walked = _walks(monkeypatch)
    found = await store.query(base.Query(text="n1999", order="desc", limit=100))
    assert [r.message for r in found] == ["request n1999"]
    assert walked == []


def test_frequencies_are_weighted_by_partition_rows() -> None:
    combined = postgres_search.combine(
        [
            (300.0, ["a", "b"], [0.5, 0.1, 0.1, 0.5]),  # two trailing numbers: min and max
            (100.0, ["a"], [1.0, 1.0, 1.0]),
            (600.0, None, None),  # not analyzed yet: rows, no words
        ]
    )
    assert combined.of("a") == pytest.approx(0.25)
    assert combined.of("b") == pytest.approx(0.03)
    assert combined.of("c") == 0.0
    assert postgres_search.combine([]).of("a") == 0.0


# Tokens too long for the walk index (postgres_schema.SHORT_ROW_BYTES): such rows have an index of
# their own, which a workload's walk merges with the walk index in time order.
_LONG = " ".join(f"w{i}" for i in range(700))


async def _fill_with_long_rows(store: postgres.PostgresStore) -> None:
    sent = [
        samples.record(
            f"retry {_LONG} n{i}" if i % 9 == 0 else _message(i),
            ts_ns=samples.T0 + (i // 3) * 1000,
            pod="pod-a" if i % 2 == 0 else "pod-b",
            kind="Function",
            workload="hello",
        )
        for i in range(1_200)
    ]
    await store.append([samples.batch("fill", sent)])
    if store._vacuuming is not None:
        await store._vacuuming
    with psycopg.connect(pg.DSN, autocommit=True) as conn:
        conn.execute(f'ANALYZE "{store.schema}".records')


def _in_workload(**fields: Any) -> base.Query:
    return base.Query(namespace="ns", kind="Function", workload="hello", **fields)


WORKLOAD_QUERIES = [
    _in_workload(text="retry", order="desc", limit=30),
    _in_workload(text="retry", order="asc", limit=30, after=(samples.T0 + 30_000, 5)),
    _in_workload(text="retry", tail=25),
    _in_workload(text="w1 w2", order="desc", limit=10),
    _in_workload(text="timeout retry", order="desc", limit=20, since_ns=samples.T0 + 100_000),
]


async def test_a_workload_walk_merges_long_rows_in_time_order(
    store: postgres.PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _fill_with_long_rows(store)
    monkeypatch.setattr(postgres_search, "WALK_EXPECTED", 0)
    by_index = [[r.id for r in await store.query(q)] for q in WORKLOAD_QUERIES]
    monkeypatch.setattr(postgres_search, "WALK_EXPECTED", 1_000_000)
    walked = _walks(monkeypatch)
    by_walk = [[r.id for r in await store.query(q)] for q in WORKLOAD_QUERIES]
    assert len(walked) >= len(WORKLOAD_QUERIES)
    assert by_walk == by_index
    long_rows = await store.query(_in_workload(text="w699", limit=1000))
    assert len(long_rows) == 134
    assert {r.id for r in long_rows} & set(by_walk[0])  # long rows among the newest hits
    assert all(by_walk)
    assert by_walk[3] == [r.id for r in long_rows[::-1][:10]]


async def test_a_workload_walk_reads_the_walk_index_alone(
    store: postgres.PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The store vacuums what it appended (every VACUUM_EVERY rows), so the walk index's pages are
    # all-visible without waiting for autovacuum: no heap fetches.
    monkeypatch.setattr(postgres, "VACUUM_EVERY", 1_000)
    await _fill_with_long_rows(store)
    assert store._vacuuming is not None
    query = _in_workload(text="retry", order="desc", limit=30)
    statement, params = postgres_sql.walk(query, 1 << 62, postgres_search.WALK_ROWS)
    with psycopg.connect(pg.DSN, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{store.schema}"')
        conn.execute("SET enable_seqscan = off")  # a table this small would be read whole
        plan = "\n".join(
            line
            for (line,) in conn.execute(
                f"EXPLAIN (ANALYZE, COSTS OFF) {statement}".encode(), params
            ).fetchall()
        )
    assert "Index Only Scan" in plan
    fetches = [int(n) for n in re.findall(r"Heap Fetches: (\d+)", plan)]
    assert fetches
    assert sum(fetches) == 0
