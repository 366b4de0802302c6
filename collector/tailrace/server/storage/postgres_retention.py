"""Retention for the PostgreSQL store: drop whole day partitions, delete rows only at the edge.

Each workload's policy (`retention_policy`) gives a cutoff, the newest (ts_ns, id) that must go,
exactly as the SQLite store computes it. A day partition in which every row is at or before its
workload's cutoff is dropped whole (no dead rows, no vacuum); rows of the other partitions are
deleted. A partition is checked without locks first (that read may take a while) and then dropped
under the table lock after re-checking only the rows that committed since (ids above the
watermark the first check read under), so a late record landing in an old partition is never
dropped with it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from tailrace.server.storage import base, postgres_schema, retention_policy

Cutoff = tuple[str, str, str, int, int]  # namespace, kind, workload, ts_ns, id


async def apply(
    conn: psycopg.AsyncConnection[Any],
    schema: str,
    workloads: list[base.Workload],
    now_ns: int,
) -> int:
    cutoffs: list[Cutoff] = []
    for workload in workloads:
        try:
            policy = retention_policy.of_spec(workload.spec)
        except retention_policy.InvalidRetention:
            continue
        if policy.unlimited:
            continue
        scope = (workload.key.namespace, workload.key.kind, workload.key.name)
        cutoff = await _cutoff(conn, scope, policy, now_ns)
        if cutoff is not None:
            cutoffs.append((*scope, *cutoff))
    if not cutoffs:
        return 0
    deleted = await _drop_expired_partitions(conn, schema, cutoffs)
    for namespace, kind, name, ts_ns, record_id in cutoffs:
        cursor = await conn.execute(
            "DELETE FROM records WHERE namespace = %s AND kind = %s AND workload = %s "
            "AND (ts_ns, id) <= (%s, %s)",
            (namespace, kind, name, ts_ns, record_id),
        )
        deleted += cursor.rowcount
    return deleted


async def _cutoff(
    conn: psycopg.AsyncConnection[Any],
    scope: tuple[str, str, str],
    policy: retention_policy.RetentionPolicy,
    now_ns: int,
) -> tuple[int, int] | None:
    """The newest (ts_ns, id) of the workload that must go: everything at or before it goes."""
    scoped = "namespace = %s AND kind = %s AND workload = %s"
    candidates: list[tuple[int, int]] = []
    statements: list[tuple[str, tuple[Any, ...]]] = []
    if policy.max_age_ns is not None:
        statements.append(
            (
                f"SELECT ts_ns, id FROM records WHERE {scoped} AND ts_ns < %s "
                "ORDER BY ts_ns DESC, id DESC LIMIT 1",
                (*scope, now_ns - policy.max_age_ns),
            )
        )
    if policy.max_lines is not None:
        statements.append(
            (
                f"SELECT ts_ns, id FROM records WHERE {scoped} "
                "ORDER BY ts_ns DESC, id DESC LIMIT 1 OFFSET %s",
                (*scope, policy.max_lines),
            )
        )
    if policy.max_bytes is not None:
        statements.append(
            (
                "SELECT ts_ns, id FROM (SELECT ts_ns, id, sum(size) OVER "
                "(ORDER BY ts_ns DESC, id DESC ROWS UNBOUNDED PRECEDING) AS running "
                f"FROM records WHERE {scoped}) AS r WHERE running > %s "
                "ORDER BY ts_ns DESC, id DESC LIMIT 1",
                (*scope, policy.max_bytes),
            )
        )
    for statement, params in statements:
        row = await (await conn.execute(statement.encode(), params)).fetchone()
        if row:
            candidates.append((int(row[0]), int(row[1])))
    return max(candidates) if candidates else None


_UNEXPIRED = """
SELECT 1 FROM {part} AS p
 WHERE {extra} NOT EXISTS (
   SELECT 1 FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
       AS c(namespace, kind, workload, ts_ns, id)
    WHERE c.namespace = p.namespace AND c.kind = p.kind AND c.workload = p.workload
      AND (p.ts_ns, p.id) <= (c.ts_ns, c.id))
 LIMIT 1
"""


async def _drop_expired_partitions(
    conn: psycopg.AsyncConnection[Any], schema: str, cutoffs: list[Cutoff]
) -> int:
    newest_cut = max(ts_ns for *_, ts_ns, _ in cutoffs)
    columns = [list(column) for column in zip(*cutoffs, strict=True)]
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.inhparent = %s::regclass AND n.nspname = %s",
        (f'"{schema}".records', schema),
    )
    dropped = 0
    for (name,) in await cursor.fetchall():
        day = postgres_schema.day_of_partition(name)
        # Only partitions lying wholly before the newest cutoff can be wholly expired.
        if day is None or (day + 1) * postgres_schema.DAY_NS > newest_cut + 1:
            continue
        part = sql.Identifier(schema, name)
        watermark_row = await (await conn.execute("SELECT safe_watermark()")).fetchone()
        watermark = int(watermark_row[0]) if watermark_row else 0
        probe = sql.SQL(_UNEXPIRED).format(part=part, extra=sql.SQL(""))
        if await (await conn.execute(probe, columns)).fetchone():
            continue
        async with conn.transaction():
            # Dropping a partition locks the parent table anyway; take that lock first so no
            # insert is in flight, then look only at rows that committed since the check above.
            await conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(schema, "records")
                )
            )
            recheck = sql.SQL(_UNEXPIRED).format(part=part, extra=sql.SQL("p.id > %s AND"))
            if await (await conn.execute(recheck, [watermark, *columns])).fetchone():
                continue
            count_row = await (
                await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(part))
            ).fetchone()
            await conn.execute(sql.SQL("DROP TABLE {}").format(part))
            dropped += int(count_row[0]) if count_row else 0
    return dropped
