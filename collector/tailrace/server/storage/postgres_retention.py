"""Retention for the PostgreSQL store: drop whole day partitions, delete chunks only at the edge.

Each workload's policy (`retention_policy`) gives a cutoff, the newest (ts_ns, id) that must go,
exactly as the SQLite store computes it (`postgres_deletion.retention_cutoff`). A day partition in
which every chunk is at or before its workload's cutoff is dropped whole (no dead rows, no
vacuum); in the other partitions, chunks are deleted or tombstoned as a DELETE does. A
partition is checked without locks first (that read may take a while) and then dropped
under the table lock after re-checking only the rows that committed since (ids above the
watermark the first check read under), so a late record landing in an old partition is never
dropped with it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg
from psycopg import sql

from tailrace.server.storage import (
    base,
    chunks,
    postgres_deletion,
    postgres_schema,
    retention_policy,
)

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
        key = workload.key
        scope = base.Query(namespace=key.namespace, kind=key.kind, workload=key.name)
        cutoff = await postgres_deletion.retention_cutoff(
            conn, scope=scope, policy=policy, now_ns=now_ns
        )
        if cutoff is not None:
            cutoffs.append((key.namespace, key.kind, key.name, *cutoff))
    if not cutoffs:
        return 0
    deleted = await _drop_expired_partitions(conn, schema, cutoffs)
    for namespace, kind, name, ts_ns, record_id in cutoffs:
        # Everything at or before the cut-off: the keys below (ts_ns, id + 1), newest first.
        doomed = base.Query(namespace=namespace, kind=kind, workload=name, order="desc")
        doomed = replace(doomed, after=(ts_ns, record_id + 1))
        deleted += await postgres_deletion.delete(conn, doomed, paging=True)
    return deleted


# A chunk of the partition holding a record after its workload's cut-off (its newest time with
# its last id bounds every record's (ts_ns, id) from above).
_UNEXPIRED = """
SELECT 1 FROM {part} AS p
 WHERE {extra} NOT EXISTS (
   SELECT 1 FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
       AS c(namespace, kind, workload, ts_ns, id)
    WHERE c.namespace = p.namespace AND c.kind = p.kind AND c.workload = p.workload
      AND (p.max_ts, p.id + p.n - 1) <= (c.ts_ns, c.id))
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
        (f'"{schema}".chunks', schema),
    )
    dropped = 0
    for (name,) in await cursor.fetchall():
        day = postgres_schema.day_of_partition(name)
        # Only partitions lying wholly before the newest cutoff can be wholly expired (a chunk
        # reaches at most a span past its partition's end).
        if day is None:
            continue
        if (day + 1) * postgres_schema.DAY_NS + chunks.CHUNK_SPAN_NS > newest_cut + 1:
            continue
        part = sql.Identifier(schema, name)
        watermark_row = await (await conn.execute("SELECT safe_watermark()")).fetchone()
        watermark = int(watermark_row[0]) if watermark_row else 0
        probe = sql.SQL(_UNEXPIRED).format(part=part, extra=sql.SQL(""))
        if await (await conn.execute(probe, columns)).fetchone():
            continue
        async with conn.transaction():
            # Dropping a partition locks the parent table anyway; take that lock first so no
            # insert is in flight, then look only at chunks that committed since the check above.
            await conn.execute(
                sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    sql.Identifier(schema, "chunks")
                )
            )
            recheck = sql.SQL(_UNEXPIRED).format(part=part, extra=sql.SQL("p.id > %s AND"))
            if await (await conn.execute(recheck, [watermark, *columns])).fetchone():
                continue
            count_row = await (
                await conn.execute(sql.SQL("SELECT coalesce(sum(live), 0) FROM {}").format(part))
            ).fetchone()
            await conn.execute(sql.SQL("DROP TABLE {}").format(part))
            dropped += int(count_row[0]) if count_row else 0
    return dropped
