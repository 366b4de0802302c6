"""PostgreSQL schema upgrades: a store made by an older server opens, migrates, and answers."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tailrace.server import storage
from tailrace.server.storage import base, postgres, postgres_schema, postgres_sql
from tests.server.storage import pg, samples

pytestmark = pytest.mark.postgres

LONG = "spill " * 500 + "tête-à-tête naïve " + "x" * 3000 + " tail"  # > 2 KiB, one word > 2 KiB


def _messages() -> list[str]:
    return ["connection refused by db", "all good", "Ünïcode wörds here", LONG]


async def _open(schema: str) -> postgres.PostgresStore:
    opened = storage.open_store(pg.url(schema))
    assert isinstance(opened, postgres.PostgresStore)
    await opened.open()
    return opened


def _uses_word_index(schema: str, text: str) -> bool:
    terms, params = postgres_sql.filters(base.Query(text=text))
    with psycopg.connect(pg.DSN, autocommit=True) as conn:
        conn.execute(f'SET search_path = "{schema}"')
        conn.execute("SET enable_seqscan = off")
        rows = conn.execute(
            f"EXPLAIN SELECT id FROM records {postgres_sql.where(terms)}".encode(), params
        ).fetchall()
    conditions = [line for (line,) in rows if "Index Cond" in line]
    return any("@@" in line for line in conditions)


async def test_a_version_1_store_upgrades_and_finds_its_old_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.require()
    schema = pg.schema_for(tmp_path)
    try:
        monkeypatch.setattr(postgres_schema, "CURRENT_VERSION", 1)
        old = await _open(schema)
        sent = [samples.record(m, ts_ns=samples.T0 + i) for i, m in enumerate(_messages())]
        await old.append([samples.batch("s", sent)])
        await old.close()
        monkeypatch.undo()

        store = await _open(schema)
        try:
            with psycopg.connect(pg.DSN) as conn:
                (version,) = conn.execute(
                    f'SELECT max(version) FROM "{schema}".schema_version'
                ).fetchone() or (None,)
                (definition,) = conn.execute(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = %s "
                    "AND indexname = 'records_search'",
                    (schema,),
                ).fetchone() or ("",)
                # The rebuilt index has statistics at once (postgres_search plans by them).
                (analyzed,) = conn.execute(
                    "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "JOIN pg_stats s ON s.schemaname = %s AND s.tablename = c.relname "
                    "WHERE i.inhparent = to_regclass(%s)",
                    (schema, f'"{schema}".records_search'),
                ).fetchone() or (0,)
                walk_indexes = conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE schemaname = %s "
                    "AND tablename = 'records' AND indexname LIKE 'records_workload_%%' "
                    "ORDER BY indexname",
                    (schema,),
                ).fetchall()
                (options,) = conn.execute(
                    "SELECT c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = to_regclass(%s)",
                    (f'"{schema}".records',),
                ).fetchone() or (None,)
            assert version == postgres_schema.CURRENT_VERSION == 3
            assert "array_to_tsvector" in definition
            # Migration 3: the walk's indexes, and day partitions vacuumed every 100,000 rows.
            assert walk_indexes == [("records_workload_long",), ("records_workload_words",)]
            assert "autovacuum_vacuum_insert_threshold=100000" in (options or [])
            assert analyzed > 0
            await store.append(
                [samples.batch("s", [samples.record("refused again", ts_ns=samples.T0 + 9)], 100)]
            )
            for text, expected in [
                ("refused", ["connection refused by db", "refused again"]),
                ("CONNECTION refused", ["connection refused by db"]),
                ("wörds", ["Ünïcode wörds here"]),
                ("tête à", [LONG]),
                ("tail", [LONG]),
                ("spill spill", [LONG]),
            ]:
                found = await store.query(base.Query(text=text))
                assert [r.message for r in found] == expected, text
                assert _uses_word_index(schema, text), text
        finally:
            await store.close()
    finally:
        pg.drop(schema)


async def test_a_store_newer_than_the_server_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.require()
    schema = pg.schema_for(tmp_path)
    try:
        await (await _open(schema)).close()  # made at the current version
        monkeypatch.setattr(postgres_schema, "CURRENT_VERSION", 1)
        with pytest.raises(base.StoreError, match="newer than this server"):
            await _open(schema)
    finally:
        pg.drop(schema)
