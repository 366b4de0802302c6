"""Migration 3 of the SQLite store: the rows of `records` (schema 2) turned into chunks.

Records keep their ids, so chunks are cut from runs of consecutive ids that share an origin and
a received time (what one batch of one agent source gave). Interleaved ids (several pods appending
record by record) make small chunks: correct, only less compact.
"""

from __future__ import annotations

import sqlite3

import orjson

from tailrace import conventions
from tailrace.server.storage import base, sqlite_attribution, sqlite_chunks, sqlite_ingest

_COLUMNS = (
    "id, ts_ns, received_ns, namespace, kind, workload, workload_uid, pod, pod_uid, container, "
    "container_id, restart, stream, level, message, execution_id, attrs, source, flags, "
    "pod_ref, workload_ref"
)
_FLUSH_RECORDS = 100_000


def convert(conn: sqlite3.Connection) -> None:
    """Move every row of `records` into `chunks` (and FTS5), then drop the old tables."""
    refs = sqlite_attribution.Refs()
    writer = sqlite_ingest.ChunkWriter()
    run: list[base.StoredRecord] = []
    run_key: tuple[object, ...] | None = None
    run_refs = (0, 0, 0)
    last_id = 0
    levels = conventions.LEVELS

    def close_run() -> None:
        for chunk in sqlite_chunks.split(run):
            writer.add(chunk[0].id, chunk, chunk[0].received_ns, run_refs)
        run.clear()

    for row in conn.execute(f"SELECT {_COLUMNS} FROM records ORDER BY id"):
        (record_id, ts, received, namespace, kind, workload, workload_uid, pod, pod_uid) = row[:9]
        container, container_id, restart, stream, level, message = row[9:15]
        execution_id, attrs, source, flags, pod_ref, workload_ref = row[15:21]
        odd = sqlite_chunks.odd_stream(stream)
        origin = (
            namespace,
            kind,
            workload,
            workload_uid,
            pod,
            pod_uid,
            container,
            container_id,
            restart,
            source,
            odd,
        )
        key = (origin, received, pod_ref, workload_ref)
        if key != run_key or record_id != last_id + 1 or len(run) >= sqlite_chunks.CHUNK_RECORDS:
            close_run()
            if writer.records >= _FLUSH_RECORDS:
                writer.flush(conn)
                writer.records = 0
            run_key = key
            run_refs = (refs.origin(conn, origin), pod_ref, workload_ref)
        last_id = record_id
        run.append(
            base.StoredRecord(
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
        )
    close_run()
    writer.flush(conn)
    conn.execute("DROP TABLE records_fts")
    conn.execute("DROP TABLE records")
