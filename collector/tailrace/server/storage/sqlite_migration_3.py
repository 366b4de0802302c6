"""Migration 3 of the SQLite store: the rows of `records` (schema 2) turned into chunks.

Records keep their ids, so chunks are cut from runs of consecutive ids that share an origin and
a received time (what one batch of one agent source gave). Interleaved ids (several pods appending
record by record) make small chunks: correct, only less compact.

The rows move in slices of `SLICE_RECORDS` ids, each slice committed with the id it reached in
`meta`: one transaction over ten million rows held ~3 GB of dirty pages (SQLite does not spill
them here) and took minutes, so a server with a memory limit, or one killed by its startup probe,
would have started over forever. Killed mid-way, the next start resumes after the last slice; the
old tables go, and the migration is recorded, only once every row has moved.
"""

from __future__ import annotations

import sqlite3

import orjson

from tailrace import conventions
from tailrace.server.storage import base, chunks, sqlite_attribution, sqlite_ingest

_COLUMNS = (
    "id, ts_ns, received_ns, namespace, kind, workload, workload_uid, pod, pod_uid, container, "
    "container_id, restart, stream, level, message, execution_id, attrs, source, flags, "
    "pod_ref, workload_ref"
)
SLICE_RECORDS = 100_000
# meta key: the highest id already moved into chunks, present while the migration is under way.
PROGRESS_KEY = "migration_3_moved_through"


def started(conn: sqlite3.Connection) -> bool:
    """Whether an earlier start began moving rows (its chunk tables exist and hold them)."""
    return bool(conn.execute("SELECT 1 FROM meta WHERE key = ?", (PROGRESS_KEY,)).fetchone())


def begin(conn: sqlite3.Connection) -> None:
    """In the transaction that created the chunk tables: nothing moved yet."""
    conn.execute("INSERT INTO meta VALUES (?, '0')", (PROGRESS_KEY,))


def advance(conn: sqlite3.Connection) -> bool:
    """One slice of work in the caller's transaction: move the next rows, or, once all have
    moved, take a piece of the old tables away; False when only the emptied table is left."""
    (moved_through,) = conn.execute(
        "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?", (PROGRESS_KEY,)
    ).fetchone()
    last = _convert_slice(conn, moved_through)
    if last is not None:
        conn.execute("UPDATE meta SET value = ? WHERE key = ?", (str(last), PROGRESS_KEY))
        return True
    return _take_apart_old_tables(conn)


def finish(conn: sqlite3.Connection) -> None:
    """Every row has moved: drop the emptied table, in the transaction recording the migration."""
    conn.execute("DROP TABLE records")
    conn.execute("DELETE FROM meta WHERE key = ?", (PROGRESS_KEY,))


def _take_apart_old_tables(conn: sqlite3.Connection) -> bool:
    """Drop an old index or the old FTS5 table, else delete a slice of the moved rows; False once
    nothing is left. One `DROP TABLE records` of a million rows held 255 MB of pages until it
    committed (measured), so the table is emptied a slice per transaction first."""
    old = {
        name: kind
        for name, kind in conn.execute(
            "SELECT name, type FROM sqlite_master WHERE name IN (?, ?, ?, ?, ?)", _OLD_OBJECTS
        )
    }
    for name in _OLD_OBJECTS:
        if name in old:
            conn.execute(f"DROP {old[name].upper()} {name}")
            return True
    deleted = conn.execute(
        "DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY id LIMIT ?)",
        (SLICE_RECORDS,),
    ).rowcount
    return deleted > 0


# What schema 2 indexed `records` with, dropped before its rows are deleted (cheaper deletes).
_OLD_OBJECTS = (
    "records_by_time",
    "records_by_pod",
    "records_by_workload",
    "records_by_execution",
    "records_fts",
)


def _convert_slice(conn: sqlite3.Connection, after_id: int) -> int | None:
    """Move the rows with the next `SLICE_RECORDS` ids above `after_id` into chunks (a run cut
    at the slice's end is two chunks: correct, a little less compact); returns the last id moved,
    None when no row is left."""
    refs = sqlite_attribution.Refs()
    writer = sqlite_ingest.ChunkWriter()
    run: list[base.StoredRecord] = []
    run_key: tuple[object, ...] | None = None
    run_refs = (0, 0, 0)
    last_id = 0
    levels = conventions.LEVELS

    def close_run() -> None:
        for chunk in chunks.split(run):
            writer.add(chunk[0].id, chunk, chunk[0].received_ns, run_refs)
        run.clear()

    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM records WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, SLICE_RECORDS),
    )
    for row in rows:
        (record_id, ts, received, namespace, kind, workload, workload_uid, pod, pod_uid) = row[:9]
        container, container_id, restart, stream, level, message = row[9:15]
        execution_id, attrs, source, flags, pod_ref, workload_ref = row[15:21]
        record = base.StoredRecord(
            ts_ns=ts,
            namespace=namespace,
            pod=pod,
            container=container,
            stream=stream,
            level=levels[level],
            message=message,
            kind=kind,
            workload=workload,
            workload_uid=workload_uid,
            pod_uid=pod_uid,
            container_id=container_id,
            restart=restart,
            execution_id=execution_id,
            attrs=orjson.loads(attrs) if attrs else {},
            source=source,
            flags=flags,
            id=record_id,
            received_ns=received,
        )
        origin = (*chunks.origin_of(record), chunks.odd_stream(stream))
        key = (origin, received, pod_ref, workload_ref)
        if key != run_key or record_id != last_id + 1 or len(run) >= chunks.CHUNK_RECORDS:
            close_run()
            run_key = key
            run_refs = (refs.origin(conn, origin), pod_ref, workload_ref)
        last_id = record_id
        run.append(record)
    if run_key is None:
        return None
    close_run()
    writer.flush(conn)
    return last_id
