"""Migration 4 of the PostgreSQL store: records move from a row each (`records`) into chunks.

Run by `PostgresStore._migrate` under the migration lock. The chunks table is created first
(idempotently), then the records are read in id order, `SLICE_IDS` ids per transaction, cut into
chunks at every change of origin, received time or id gap (and by `chunks.split`), and
written with COPY; each slice's transaction also records in `meta` the id reached, so a start
that is killed part way resumes after the last slice instead of starting over (as SQLite's
migration 3 does). When every record has moved, `records` is dropped and version 4 recorded.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import orjson
import psycopg

from tailrace.server.storage import base, chunks, postgres_chunks, postgres_schema

SLICE_IDS: Final = 100_000
PART_ROWS: Final = 10_000  # records read and written at a time within a slice
PROGRESS_KEY: Final = "migration_4_moved"

# The version-3 `records` columns a record is made of.
_RECORD_COLUMNS: Final = (
    "id, ts_ns, received_ns, namespace, kind, workload, workload_uid, pod, pod_uid, container, "
    "container_id, restart, stream, level, message, execution_id, attrs, source, flags"
)


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    async with conn.transaction():
        for statement in postgres_schema.chunks_ddl(schema):
            await conn.execute(statement.encode())
    cursor = await conn.execute("SELECT to_regclass(%s)", (f'"{schema}".records',))
    found = await cursor.fetchone()
    if found is not None and found[0] is not None:
        while await move_slice(conn, schema):
            pass
    async with conn.transaction():
        for statement in postgres_schema.drop_records_ddl(schema):
            await conn.execute(statement.encode())
        await conn.execute("DELETE FROM meta WHERE key = %s", (PROGRESS_KEY,))
        await conn.execute("INSERT INTO schema_version VALUES (4)")


async def move_slice(conn: psycopg.AsyncConnection[Any], schema: str) -> bool:
    """Move the records of the next slice of ids into chunks, in one transaction; False when
    none was left."""
    async with conn.transaction():
        cursor = await conn.execute("SELECT value FROM meta WHERE key = %s", (PROGRESS_KEY,))
        row = await cursor.fetchone()
        moved = int(row[0]) if row else -(1 << 63)
        cursor = await conn.execute("SELECT min(id) FROM records WHERE id > %s", (moved,))
        row = await cursor.fetchone()
        if row is None or row[0] is None:
            return False
        first = int(row[0])
        last = first + SLICE_IDS - 1
        # A server-side cursor, read a part at a time: a whole slice of records and their chunk
        # rows at once took ~390 MB when every record was a chunk of its own.
        async with conn.cursor(name="migration_4") as records:
            await records.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE id >= %s AND id <= %s ORDER BY id",
                (first, last),
            )
            while part := await records.fetchmany(PART_ROWS):
                await _write(conn, schema, [_record(found) for found in part])
        await conn.execute(
            "INSERT INTO meta VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = "
            "excluded.value",
            (PROGRESS_KEY, str(last)),
        )
    return True


async def _write(
    conn: psycopg.AsyncConnection[Any], schema: str, stored: list[base.StoredRecord]
) -> None:
    rows = [postgres_chunks.row(chunk) for run in _runs(stored) for chunk in chunks.split(run)]
    days = {postgres_schema.day_of(chunk_row[postgres_chunks.MIN_TS]) for chunk_row in rows}
    for day in sorted(days):
        await conn.execute(postgres_schema.create_partition_sql(schema, day).encode())
    await postgres_chunks.copy(conn, rows)


def _runs(stored: list[base.StoredRecord]) -> Iterator[list[base.StoredRecord]]:
    """`stored` (in id order) cut where a chunk may not go on: another origin or stream kept on
    the origin, another received time, a gap in the ids."""
    run: list[base.StoredRecord] = []
    key: tuple[Any, ...] = ()
    for record in stored:
        record_key = (
            *chunks.origin_of(record),
            chunks.odd_stream(record.stream),
            record.received_ns,
        )
        if run and (record_key != key or record.id != run[-1].id + 1):
            yield run
            run = []
        run.append(record)
        key = record_key
    if run:
        yield run


def _record(row: tuple[Any, ...]) -> base.StoredRecord:
    (
        record_id,
        ts_ns,
        received_ns,
        namespace,
        kind,
        workload,
        workload_uid,
        pod,
        pod_uid,
        container,
        container_id,
        restart,
        stream,
        level,
        message,
        execution_id,
        attrs,
        source,
        flags,
    ) = row
    return base.StoredRecord(
        ts_ns=ts_ns,
        namespace=namespace,
        pod=pod,
        container=container,
        stream=stream,
        level=level,
        message=message,
        kind=kind,
        workload=workload,
        workload_uid=workload_uid,
        pod_uid=pod_uid,
        container_id=container_id,
        restart=restart,
        execution_id=execution_id,
        attrs=orjson.loads(attrs) if attrs != "{}" else {},
        source=source,
        flags=flags,
        id=record_id,
        received_ns=received_ns,
    )
