"""Deleting from the PostgreSQL store: whole chunk rows when all their records go, tombstones
otherwise (as `sqlite_deletion` does); and the cut-off point of a workload's retention.

A chunk that keeps some records only gets their bits set in its tombstone bitmap (`dead`) and its
live count and bytes lowered: kept records never change id, and the chunk's `words` still list
the deleted words, which the record test filters out. Deletes run a bounded number of chunks per
transaction, with the rows locked (`FOR UPDATE`) so two replicas deleting at once never lose each
other's tombstones.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any, Final

import psycopg

from tailrace.server.storage import (
    base,
    chunks,
    postgres_chunks,
    postgres_scan,
    retention_policy,
)

# Chunks handled per transaction, so that a long DELETE or retention pass holds few row locks.
CHUNKS_PER_TRANSACTION: Final = 200


async def delete(conn: psycopg.AsyncConnection[Any], query: base.Query, *, paging: bool) -> int:
    """Delete the records matching `query` (with `paging`, its cursor bounds them too)."""
    total = 0
    after: int | None = -1 << 63
    while after is not None:
        async with conn.transaction():
            found, after = await postgres_scan.matching(
                conn,
                query,
                paging=paging,
                after_chunk=after,
                limit=CHUNKS_PER_TRANSACTION,
                lock=True,
            )
            for row, chunk, picked in found:
                total += await _delete_from(conn, row, chunk, picked)
    return total


async def _delete_from(
    conn: psycopg.AsyncConnection[Any],
    row: tuple[Any, ...],
    chunk: chunks.Chunk | None,
    picked: list[int] | None,
) -> int:
    chunk_id, min_ts, live = (
        row[postgres_chunks.ID],
        row[postgres_chunks.MIN_TS],
        row[postgres_chunks.LIVE],
    )
    if chunk is None or picked is None or len(picked) == live:
        # min_ts names the partition: PostgreSQL looks in that one only.
        await conn.execute("DELETE FROM chunks WHERE id = %s AND min_ts = %s", (chunk_id, min_ts))
        return int(live)
    bits = chunk.dead
    for i in picked:
        bits |= 1 << i
    await conn.execute(
        "UPDATE chunks SET dead = %s, live = live - %s, size = size - %s "
        "WHERE id = %s AND min_ts = %s",
        (
            chunks.dead_blob(bits),
            len(picked),
            sum(map(chunk.length, picked)),
            chunk_id,
            min_ts,
        ),
    )
    return len(picked)


async def retention_cutoff(
    conn: psycopg.AsyncConnection[Any],
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
        newest_old = await postgres_scan.page(conn, old, 1 << 62)
        if newest_old:
            candidates.append((newest_old[0].ts_ns, newest_old[0].id))
    if policy.max_lines is not None or policy.max_bytes is not None:
        cursor = await conn.execute(
            "SELECT coalesce(sum(live), 0), coalesce(sum(size), 0) FROM chunks "
            "WHERE namespace = %s AND kind = %s AND workload = %s",
            (scope.namespace, scope.kind, scope.workload),
        )
        totals = await cursor.fetchone()
        live, size = (int(totals[0]), int(totals[1])) if totals else (0, 0)
        if policy.over(live, size):
            lines = running = 0
            newest = postgres_scan.newest_first(conn, scope)
            async with contextlib.aclosing(newest) as records:
                async for ts, record_id, length in records:
                    lines += 1
                    running += length
                    if policy.over(lines, running):
                        candidates.append((ts, record_id))
                        break
    return max(candidates) if candidates else None
