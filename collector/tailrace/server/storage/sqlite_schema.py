"""The SQLite schema of the embedded store, as an ordered list of migrations.

A database records every migration it has applied in `schema_migrations`; opening a store applies
the missing ones in order, each in its own transaction. Never edit a released migration: append a
new one. Schema 1 and 2 kept a row per record; schema 3 keeps records in chunks (see
`chunks`), and its migration moves the old rows over with a step in Python
(`sqlite_migration_3`) in slices of their own transactions, so that a start killed mid-way
resumes rather than starts over.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from typing import Final, Protocol

from tailrace.server.storage import sqlite_migration_3

MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (
        1,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

        CREATE TABLE records (
            id INTEGER PRIMARY KEY,
            ts_ns INTEGER NOT NULL,
            received_ns INTEGER NOT NULL,
            namespace TEXT NOT NULL,
            kind TEXT NOT NULL,
            workload TEXT NOT NULL,
            workload_uid TEXT NOT NULL,
            pod TEXT NOT NULL,
            pod_uid TEXT NOT NULL,
            container TEXT NOT NULL,
            container_id TEXT NOT NULL,
            restart INTEGER NOT NULL,
            stream TEXT NOT NULL,
            level INTEGER NOT NULL,  -- rank in conventions.LEVELS, so min_level is a range
            message TEXT NOT NULL,
            execution_id TEXT NOT NULL,
            attrs BLOB,              -- JSON object, NULL when empty
            source TEXT NOT NULL,
            flags INTEGER NOT NULL,
            size INTEGER NOT NULL,   -- UTF-8 bytes of message (stats, maxBytes retention)
            pod_ref INTEGER NOT NULL,      -- pod_refs.id of (namespace, pod)
            workload_ref INTEGER NOT NULL  -- workload_refs.id of (namespace, kind, workload)
        );
        -- The scope indexes key on small integers standing for (namespace, pod) and (namespace,
        -- kind, workload): half the width of text keys, and twice the insert rate measured here.
        CREATE INDEX records_by_time ON records (ts_ns, id);
        CREATE INDEX records_by_pod ON records (pod_ref, ts_ns, id);
        CREATE INDEX records_by_workload ON records (workload_ref, ts_ns, id);
        CREATE INDEX records_by_execution ON records (execution_id, ts_ns, id)
            WHERE execution_id <> '';

        CREATE TABLE pod_refs (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            pod TEXT NOT NULL,
            UNIQUE (namespace, pod)
        );
        CREATE TABLE workload_refs (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            kind TEXT NOT NULL,
            workload TEXT NOT NULL,
            UNIQUE (namespace, kind, workload)
        );

        -- External-content FTS5 index over records.message, filled by the store in the same
        -- transaction as the rows (no triggers: one INSERT ... SELECT per append). detail=none
        -- keeps only rowids (the smallest, fastest index); phrases are checked on the candidates.
        CREATE VIRTUAL TABLE records_fts USING fts5(
            message, content='records', content_rowid='id', columnsize=0, detail=none
        );

        -- Ingest high-water marks: the highest durable end offset per source file.
        CREATE TABLE sources (
            key TEXT PRIMARY KEY,
            durable_offset INTEGER NOT NULL,
            updated_ns INTEGER NOT NULL
        ) WITHOUT ROWID;

        -- Lines the agents dropped by the line-limit policy, per pod and container.
        CREATE TABLE drops (
            namespace TEXT NOT NULL,
            kind TEXT NOT NULL,
            workload TEXT NOT NULL,
            pod TEXT NOT NULL,
            pod_uid TEXT NOT NULL,
            container TEXT NOT NULL,
            lines INTEGER NOT NULL
        );
        CREATE INDEX drops_by_pod ON drops (namespace, pod);

        CREATE TABLE workloads (
            namespace TEXT NOT NULL,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            uid TEXT NOT NULL,
            spec BLOB NOT NULL,
            generation INTEGER NOT NULL,
            created_ns INTEGER NOT NULL,
            deleted INTEGER NOT NULL,
            PRIMARY KEY (namespace, kind, name)
        ) WITHOUT ROWID;
        CREATE INDEX workloads_by_uid ON workloads (uid);
        CREATE INDEX workloads_by_name ON workloads (name);

        CREATE TABLE pods (
            namespace TEXT NOT NULL,
            name TEXT NOT NULL,
            uid TEXT NOT NULL,
            labels BLOB NOT NULL,
            kind TEXT,
            workload TEXT,
            phase TEXT NOT NULL,
            obj BLOB NOT NULL,
            PRIMARY KEY (namespace, name)
        ) WITHOUT ROWID;
        CREATE INDEX pods_by_workload ON pods (namespace, kind, workload);
        """,
    ),
    (
        2,
        """
        -- Every (workload, pod) pair that has held records: a superset (never pruned), so a text
        -- search in a pod can name the workloads its matches must come from.
        CREATE TABLE workload_pods (
            workload_ref INTEGER NOT NULL,
            pod_ref INTEGER NOT NULL,
            PRIMARY KEY (pod_ref, workload_ref)
        ) WITHOUT ROWID;
        INSERT INTO workload_pods SELECT DISTINCT workload_ref, pod_ref FROM records;

        -- The FTS5 index rebuilt with one scope token per row (see FTS_TEXT): a word rare in a
        -- workload but common elsewhere is then found by intersecting two doclists.
        DROP TABLE records_fts;
        CREATE VIRTUAL TABLE records_fts USING fts5(
            message, content='records', content_rowid='id', columnsize=0, detail=none
        );
        INSERT INTO records_fts (rowid, message)
            SELECT id, message || ' ' || char(57344) || workload_ref FROM records;
        """,
    ),
    (
        3,
        """
        -- Records kept in chunks (chunks, ADR 0013): many records to a row.
        -- What the records of a chunk share; `stream` holds a stream other than stdout/stderr.
        CREATE TABLE origins (
            id INTEGER PRIMARY KEY,
            namespace TEXT NOT NULL,
            kind TEXT NOT NULL,
            workload TEXT NOT NULL,
            workload_uid TEXT NOT NULL,
            pod TEXT NOT NULL,
            pod_uid TEXT NOT NULL,
            container TEXT NOT NULL,
            container_id TEXT NOT NULL,
            restart INTEGER NOT NULL,
            source TEXT NOT NULL,
            stream TEXT NOT NULL,
            UNIQUE (namespace, pod, container, kind, workload, workload_uid, pod_uid,
                    container_id, restart, source, stream)
        );

        CREATE TABLE chunks (
            id INTEGER PRIMARY KEY,        -- id of its first record; record i has id + i
            n INTEGER NOT NULL,            -- records in `data`, deleted ones included
            min_ts INTEGER NOT NULL,
            max_ts INTEGER NOT NULL,       -- max_ts - min_ts <= chunks.CHUNK_SPAN_NS
            received_ns INTEGER NOT NULL,
            origin INTEGER NOT NULL,       -- origins.id
            pod_ref INTEGER NOT NULL,      -- pod_refs.id of (namespace, pod)
            workload_ref INTEGER NOT NULL, -- workload_refs.id of (namespace, kind, workload)
            levels INTEGER NOT NULL,       -- bit 1 << rank for each level the records hold
            live INTEGER NOT NULL,         -- records not deleted
            size INTEGER NOT NULL,         -- UTF-8 bytes of their messages
            dead BLOB,                     -- tombstones: bit i set when record i is deleted
            data BLOB NOT NULL             -- the records' columns (chunks._HEADER)
        );
        -- Newest-first pages walk max_ts down, oldest-first pages min_ts up; the second column
        -- lets a cursor's straddling chunks be picked from the index alone.
        CREATE INDEX chunks_by_max ON chunks (max_ts, min_ts);
        CREATE INDEX chunks_by_min ON chunks (min_ts, max_ts);
        CREATE INDEX chunks_by_pod_max ON chunks (pod_ref, max_ts, min_ts);
        CREATE INDEX chunks_by_pod_min ON chunks (pod_ref, min_ts, max_ts);
        CREATE INDEX chunks_by_workload_max ON chunks (workload_ref, max_ts, min_ts);
        CREATE INDEX chunks_by_workload_min ON chunks (workload_ref, min_ts, max_ts);

        CREATE TABLE chunk_executions (
            execution_id TEXT NOT NULL,
            chunk INTEGER NOT NULL,
            PRIMARY KEY (execution_id, chunk)
        ) WITHOUT ROWID;

        -- One document per chunk: its messages and its workload's scope token
        -- (chunks.fts_text). Contentless: removing a document repeats its text, which
        -- the chunk's blob reproduces.
        CREATE VIRTUAL TABLE chunks_fts USING fts5(
            text, content='', columnsize=0, detail=none
        );
        """,
    ),
)


class MovingStep(Protocol):
    """A migration's Python part that moves data in slices, each its own transaction (see
    `sqlite_migration_3`): `begin` runs with the script, `advance` once per slice until it says
    nothing is left, `finish` with the recording of the version."""

    def started(self, conn: sqlite3.Connection) -> bool: ...
    def begin(self, conn: sqlite3.Connection) -> None: ...
    def advance(self, conn: sqlite3.Connection) -> bool: ...
    def finish(self, conn: sqlite3.Connection) -> None: ...


MIGRATION_STEPS: Final[dict[int, MovingStep]] = {3: sqlite_migration_3}

CURRENT_VERSION: Final = MIGRATIONS[-1][0]


class SchemaTooNew(Exception):
    """The database was written by a newer Tailrace; refusing to touch it."""


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the missing migrations; returns the schema version now in place."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, applied_ns INTEGER NOT NULL)"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    newest = max(applied, default=0)
    if newest > CURRENT_VERSION:
        raise SchemaTooNew(
            f"database schema version {newest} is newer than this server's {CURRENT_VERSION}"
        )
    for version, script in MIGRATIONS:
        if version in applied:
            continue
        step = MIGRATION_STEPS.get(version)
        if step is None:
            # executescript commits first; wrap the script so a failed migration leaves no trace.
            with _transaction(conn, script):
                _record(conn, version)
            continue
        if not step.started(conn):
            with _transaction(conn, script):
                step.begin(conn)
        while True:
            with _transaction(conn):
                if not step.advance(conn):
                    step.finish(conn)
                    _record(conn, version)
                    break
    return CURRENT_VERSION


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, script: str = "") -> Iterator[None]:
    """One write transaction (opened with `script` run first), committed unless it raises."""
    try:
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}")
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _record(conn: sqlite3.Connection, version: int) -> None:
    conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time_ns()))
