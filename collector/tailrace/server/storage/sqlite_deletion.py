"""Deleting from the SQLite store: whole chunks when all their records go, tombstones otherwise;
and the cut-off point of a workload's retention.

A chunk whose every live record is deleted goes with its FTS5 document (removed by repeating the
text its blob reproduces) and its execution ids. A chunk that keeps some records only gets their
bits set in its tombstone bitmap and its live count and bytes lowered: kept records never change
id, and the FTS5 document still lists the deleted words, which the record test filters out.
"""

from __future__ import annotations

import itertools
import sqlite3
from dataclasses import replace

from tailrace.server.storage import (
    base,
    chunks,
    retention_policy,
    sqlite_ingest,
    sqlite_scan,
)

# Chunks handled per transaction, so that appends interleave with a long DELETE or retention.
CHUNKS_PER_TRANSACTION = 200


def delete_some(
    conn: sqlite3.Connection,
    origins: sqlite_scan.Origins,
    query: base.Query,
    *,
    paging: bool,
    after_chunk: int,
) -> tuple[int, int | None]:
    """Delete the matching records of up to CHUNKS_PER_TRANSACTION chunks above `after_chunk`,
    in one transaction; (records deleted, the last chunk handled, or None when none was left)."""
    conn.execute("BEGIN IMMEDIATE")
    deleted = size = 0
    last: int | None = None
    found = sqlite_scan.matching(conn, origins, query, paging=paging, after_chunk=after_chunk)
    # Read first, then write: the chunks table must not change under a running SELECT.
    batch = list(itertools.islice(found, CHUNKS_PER_TRANSACTION))
    found.close()
    for row, chunk, picked in batch:
        chunk_id, live, chunk_size = row[0], row[8], row[9]
        last = chunk_id
        if chunk is None:
            chunk = sqlite_scan.decode(conn, origins, row)
        if picked is None or len(picked) == live:
            remove_chunk(conn, chunk, row[6])
            deleted += live
            size += chunk_size
            continue
        gone = sum(map(chunk.length, picked))
        bits = chunk.dead
        for i in picked:
            bits |= 1 << i
        conn.execute(
            "UPDATE chunks SET dead = ?, live = live - ?, size = size - ? WHERE id = ?",
            (chunks.dead_blob(bits), len(picked), gone, chunk_id),
        )
        deleted += len(picked)
        size += gone
    if deleted:
        sqlite_ingest.add_totals(conn, -deleted, -size)
    conn.execute("COMMIT")
    return deleted, last


def remove_chunk(conn: sqlite3.Connection, chunk: chunks.Chunk, workload_ref: int) -> None:
    conn.execute(
        "INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', ?, ?)",
        (chunk.id, chunks.fts_text(chunk.messages(), workload_ref)),
    )
    conn.executemany(
        "DELETE FROM chunk_executions WHERE execution_id = ? AND chunk = ?",
        [(execution, chunk.id) for execution in set(chunk.executions().values())],
    )
    conn.execute("DELETE FROM chunks WHERE id = ?", (chunk.id,))


def retention_cutoff(
    conn: sqlite3.Connection,
    origins: sqlite_scan.Origins,
    *,
    scope: base.Query,
    policy: retention_policy.RetentionPolicy,
    now_ns: int,
) -> tuple[int, int] | None:
    """The newest (ts_ns, id) of the workload `scope` that must go: everything at or before it
    is deleted."""
    candidates: list[tuple[int, int]] = []
    if policy.max_age_ns is not None:
        old = replace(scope, until_ns=now_ns - policy.max_age_ns, order="desc", limit=1)
        newest_old = sqlite_scan.page(conn, origins, old)
        if newest_old:
            candidates.append((newest_old[0].ts_ns, newest_old[0].id))
    if policy.max_lines is not None or policy.max_bytes is not None:
        live, size = _scope_totals(conn, scope)
        if policy.over(live, size):
            running = 0
            for lines, (ts, record_id, length) in enumerate(
                sqlite_scan.newest_first(conn, origins, scope), start=1
            ):
                running += length
                if policy.over(lines, running):
                    candidates.append((ts, record_id))
                    break
    return max(candidates) if candidates else None


def _scope_totals(conn: sqlite3.Connection, scope: base.Query) -> tuple[int, int]:
    row = conn.execute(
        "SELECT coalesce(sum(live), 0), coalesce(sum(size), 0) FROM chunks WHERE workload_ref = "
        "(SELECT id FROM workload_refs WHERE namespace = ? AND kind = ? AND workload = ?)",
        (scope.namespace, scope.kind, scope.workload),
    ).fetchone()
    return int(row[0]), int(row[1])
