"""Deleting from the SQLite store: chunked deletes that keep FTS5 and the counters in step, and
the cut-off point of a workload's retention.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from tailrace.server.storage import retention_policy, sqlite_schema

_WORKLOAD_REF = "SELECT id FROM workload_refs WHERE namespace = ? AND kind = ? AND workload = ?"
WORKLOAD_SCOPE = f"workload_ref = ({_WORKLOAD_REF})"


def add_totals(conn: sqlite3.Connection, rows: int, size: int) -> None:
    conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + "
        "(CASE key WHEN 'rows' THEN ? ELSE ? END) WHERE key IN ('rows', 'bytes')",
        (rows, size),
    )


def delete_chunk(conn: sqlite3.Connection, select: str, params: Sequence[Any]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    ids = [(row[0],) for row in conn.execute(select, params)]
    if ids:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM doomed")
        conn.executemany("INSERT INTO doomed VALUES (?)", ids)
        # External-content FTS5 needs the indexed text to remove an entry.
        conn.execute(sqlite_schema.fts_unindex("id IN (SELECT id FROM doomed)"))
        (size,) = conn.execute(
            "SELECT coalesce(sum(size), 0) FROM records WHERE id IN (SELECT id FROM doomed)"
        ).fetchone()
        conn.execute("DELETE FROM records WHERE id IN (SELECT id FROM doomed)")
        conn.execute("DELETE FROM doomed")
        add_totals(conn, -len(ids), -size)
    conn.execute("COMMIT")
    return len(ids)


def retention_cutoff(
    conn: sqlite3.Connection,
    *,
    scope: tuple[str, str, str],
    policy: retention_policy.RetentionPolicy,
    now_ns: int,
) -> tuple[int, int] | None:
    """The newest (ts_ns, id) that must go: everything at or before it is deleted."""
    scoped = WORKLOAD_SCOPE
    candidates: list[tuple[int, int]] = []
    if policy.max_age_ns is not None:
        row = conn.execute(
            f"SELECT ts_ns, id FROM records WHERE {scoped} AND ts_ns < ? "
            "ORDER BY ts_ns DESC, id DESC LIMIT 1",
            (*scope, now_ns - policy.max_age_ns),
        ).fetchone()
        if row:
            candidates.append((row[0], row[1]))
    if policy.max_lines is not None:
        row = conn.execute(
            f"SELECT ts_ns, id FROM records WHERE {scoped} "
            "ORDER BY ts_ns DESC, id DESC LIMIT 1 OFFSET ?",
            (*scope, policy.max_lines),
        ).fetchone()
        if row:
            candidates.append((row[0], row[1]))
    if policy.max_bytes is not None:
        row = conn.execute(
            "SELECT ts_ns, id FROM (SELECT ts_ns, id, sum(size) OVER "
            "(ORDER BY ts_ns DESC, id DESC ROWS UNBOUNDED PRECEDING) AS running "
            f"FROM records WHERE {scoped}) WHERE running > ? LIMIT 1",
            (*scope, policy.max_bytes),
        ).fetchone()
        if row:
            candidates.append((row[0], row[1]))
    return max(candidates) if candidates else None
