"""PostgreSQL schema upgrades: a store made by an older server opens, migrates, and answers.

A version-3 store (a row per record in `records`) is made here with that version's own DDL
(`postgres_schema.migrations`) and rows written by SQL, as the version-3 server wrote them;
opening it runs migration 4, which moves every record into chunks.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import psycopg
import pytest

from tailrace import conventions
from tailrace.server import storage
from tailrace.server.storage import base, postgres, postgres_migration_4, postgres_schema
from tests.server.storage import pg, samples

pytestmark = pytest.mark.postgres

LONG = "spill " * 500 + "tête-à-tête naïve " + "x" * 3000 + " tail"  # > 2 KiB, one word > 2 KiB
DAY = postgres_schema.DAY_NS


async def _open(schema: str) -> postgres.PostgresStore:
    opened = storage.open_store(pg.url(schema))
    assert isinstance(opened, postgres.PostgresStore)
    await opened.open()
    return opened


def _old_records() -> list[base.StoredRecord]:
    """Records as a version-3 store held them: runs of one origin cut by another pod, another
    received time, an id gap and a stream kept on the origin; two days."""
    made: list[base.StoredRecord] = []

    def add(record_id: int, message: str, **fields: object) -> None:
        received = fields.pop("received_ns", 7)
        record = samples.record(message, ts_ns=samples.T0 + record_id * 10**9, **fields)
        made.append(base.stamp(record, record_id, int(str(received))))

    for i in range(1, 6):
        add(i, f"connection refused by db {i}", pod="pod-1", kind="Function", workload="fn")
    add(6, "all good", pod="pod-2", execution_id="run-1", attrs={"k": "v"})
    add(7, "Ünïcode wörds here", pod="pod-2", level="ERROR", stream="stderr")
    add(8, "moved on", pod="pod-2", received_ns=9)
    add(10, LONG, pod="pod-2", received_ns=9)  # an id gap before it
    add(11, "odd stream", pod="pod-2", received_ns=9, stream="journal")
    made.append(base.stamp(samples.record("next day", ts_ns=samples.T0 + DAY, pod="pod-1"), 12, 9))
    return made


def _make_version_3(schema: str, stored: list[base.StoredRecord]) -> None:
    with psycopg.connect(pg.DSN, autocommit=True) as conn, conn.transaction():
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".schema_version (version int NOT NULL)')
        for version, statements in sorted(postgres_schema.migrations(schema).items()):
            for statement in statements:
                conn.execute(statement.encode())
            conn.execute(f'INSERT INTO "{schema}".schema_version VALUES ({version})')
        conn.execute(f"INSERT INTO \"{schema}\".meta VALUES ('schema_version', '3')")
        days = {postgres_schema.day_of(r.ts_ns) for r in stored}
        for day in days:
            name = postgres_schema.partition_name(day, "records")
            conn.execute(
                f'CREATE TABLE "{schema}".{name} PARTITION OF "{schema}".records '
                f"FOR VALUES FROM ({day * DAY}) TO ({(day + 1) * DAY})"
            )
        conn.execute(f"SELECT setval('\"{schema}\".record_ids', {max(r.id for r in stored)})")
        for r in stored:
            search = " " + " ".join(base.text_tokens(r.message)) + " "
            conn.execute(
                f'INSERT INTO "{schema}".records VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, '
                "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    r.id,
                    r.ts_ns,
                    r.received_ns,
                    r.namespace,
                    r.kind,
                    r.workload,
                    r.workload_uid,
                    r.pod,
                    r.pod_uid,
                    r.container,
                    r.container_id,
                    r.restart,
                    r.stream,
                    r.level,
                    conventions.LEVEL_RANK[r.level],
                    r.message,
                    search,
                    r.execution_id,
                    orjson.dumps(r.attrs).decode() if r.attrs else "{}",
                    r.source,
                    r.flags,
                    len(r.message.encode()),
                ),
            )


def _layout(schema: str) -> tuple[int, str | None, int, str | None]:
    """(schema version, `records` if it still exists, chunk rows, migration progress)."""
    with psycopg.connect(pg.DSN) as conn:
        (version,) = conn.execute(
            f'SELECT max(version) FROM "{schema}".schema_version'
        ).fetchone() or (0,)
        (records,) = conn.execute(
            "SELECT to_regclass(%s)::text", (f'"{schema}".records',)
        ).fetchone() or (None,)
        (chunks,) = conn.execute(f'SELECT count(*) FROM "{schema}".chunks').fetchone() or (0,)
        progress = conn.execute(
            f'SELECT value FROM "{schema}".meta WHERE key = %s',
            (postgres_migration_4.PROGRESS_KEY,),
        ).fetchone()
    return version, records, chunks, progress[0] if progress else None


async def _everything(store: postgres.PostgresStore) -> list[base.StoredRecord]:
    return sorted(await store.query(base.Query(limit=1000)), key=lambda r: r.id)


async def test_a_version_3_store_migrates_every_record_into_chunks(tmp_path: Path) -> None:
    pg.require()
    schema = pg.schema_for(tmp_path)
    sent = _old_records()
    _make_version_3(schema, sent)
    try:
        store = await _open(schema)
        try:
            assert await _everything(store) == sent
            version, records, chunks, progress = _layout(schema)
            assert (version, records, progress) == (4, None, None)
            # Cut at pod-2, at the received time, at the id gap, at the odd stream, at the day.
            assert chunks == 6
            assert (await store.meta())["schema_version"] == "4"
            for text, expected in [
                ("refused", [f"connection refused by db {i}" for i in range(1, 6)]),
                ("CONNECTION refused by db 3", ["connection refused by db 3"]),
                ("wörds", ["Ünïcode wörds here"]),
                ("tête à", [LONG]),
                ("tail", [LONG]),
                ("spill spill", [LONG]),
            ]:
                found = await store.query(base.Query(text=text))
                assert [r.message for r in found] == expected, text
            assert [r.id for r in await store.query(base.Query(execution_id="run-1"))] == [6]
            # New ids continue after the migrated ones.
            result = await store.append([samples.batch("s", [samples.record("after")])])
            assert result.stored[0].id == 13
        finally:
            await store.close()
    finally:
        pg.drop(schema)


class Killed(Exception):
    pass


async def test_a_migration_killed_after_a_slice_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg.require()
    schema = pg.schema_for(tmp_path)
    sent = _old_records()
    _make_version_3(schema, sent)
    try:
        monkeypatch.setattr(postgres_migration_4, "SLICE_IDS", 4)
        real = postgres_migration_4.move_slice
        moved = 0

        async def killed_after_one(conn: psycopg.AsyncConnection, name: str) -> bool:
            nonlocal moved
            if moved == 1:
                raise Killed  # the server killed mid-way
            moved += 1
            return await real(conn, name)

        monkeypatch.setattr(postgres_migration_4, "move_slice", killed_after_one)
        with pytest.raises(Killed):
            await _open(schema)
        assert _layout(schema) == (3, f"{schema}.records", 1, "4")  # ids 1-4: one chunk
        monkeypatch.setattr(postgres_migration_4, "move_slice", real)
        store = await _open(schema)
        try:
            assert await _everything(store) == sent
            assert _layout(schema)[:2] == (4, None)
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
