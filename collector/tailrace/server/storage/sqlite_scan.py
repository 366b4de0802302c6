"""Reading records back out of chunks: pages in (ts_ns, id) order, counts and stats.

Chunks overlap in time (each pod's batches interleave), so a page is gathered rather than read
off an index: the chunks of the scope come newest-first by `max_ts` (or oldest-first by
`min_ts`), each is decoded and its matching records kept, and the walk stops once the next chunk
cannot hold a record that beats the page's last one. Only the page's records become
`StoredRecord`s.
"""

from __future__ import annotations

import heapq
import sqlite3
import threading
from collections.abc import Generator, Iterator
from dataclasses import replace
from typing import Any

from tailrace.server.storage import base, chunk_stats, chunks, sqlite_query

_LIVE, _DATA = 8, 10  # positions in a row of `_chunks`

Hit = tuple[int, int, chunks.Chunk, int]  # (ts_ns, id, chunk, index in chunk)


class Origins:
    """Origin rows by id, cached: a row never changes once committed (attribution moves a chunk
    to another origin instead), so every reader thread may share them."""

    def __init__(self) -> None:
        self._rows: dict[int, chunks.Origin] = {}
        self._lock = threading.Lock()

    def get(self, conn: sqlite3.Connection, origin_id: int) -> chunks.Origin:
        found = self._rows.get(origin_id)
        if found is None:
            row = conn.execute(
                "SELECT namespace, kind, workload, workload_uid, pod, pod_uid, container, "
                "container_id, restart, source, stream FROM origins WHERE id = ?",
                (origin_id,),
            ).fetchone()
            found = chunks.Origin(*row)
            with self._lock:
                self._rows[origin_id] = found
        return found


def _chunks(
    conn: sqlite3.Connection, p: sqlite_query.Plan, order: str | None, *, data: bool
) -> sqlite3.Cursor:
    """The planned chunks' rows (`sqlite_query.CHUNK_COLUMNS`, then `data` if asked) in order."""
    indexed = f" INDEXED BY {p.index}" if p.index else ""
    columns = f"{sqlite_query.CHUNK_COLUMNS}, data" if data else sqlite_query.CHUNK_COLUMNS
    sql = f"SELECT {columns} FROM chunks{indexed} WHERE {p.where.sql}"
    if order is not None:
        sql += f" ORDER BY {order}"
    return conn.execute(sql, p.where.params)


def decode(conn: sqlite3.Connection, origins: Origins, row: tuple[Any, ...]) -> chunks.Chunk:
    """The chunk of a row from `_chunks`, its data read now unless the row holds it."""
    chunk_id, n, _, _, received_ns, origin, _, dead = row[:8]
    if len(row) > _DATA:
        data = row[_DATA]
    else:
        (data,) = conn.execute("SELECT data FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
    return chunks.Chunk(
        chunk_id, n, received_ns, origins.get(conn, origin), chunks.dead_bits(dead), data
    )


def page(conn: sqlite3.Connection, origins: Origins, query: base.Query) -> list[base.StoredRecord]:
    """What `Store.query` answers."""
    p = sqlite_query.plan(conn, query, paging=True)
    if p is None:
        return []
    test = sqlite_query.RecordTest(query, paging=True)
    if query.after_id is not None:
        found: list[base.StoredRecord] = []
        for row in _chunks(conn, p, "id", data=True):
            chunk = decode(conn, origins, row)
            for i in test.select(chunk):
                found.append(chunk.record(i))
                if len(found) >= query.limit:
                    return found
        return found
    want = query.tail if query.tail is not None else query.limit
    if want <= 0:
        return []
    descending = p.descending
    hits: list[Hit] = []
    kth: int | None = None  # ts_ns of the want-th hit so far
    order = "max_ts DESC" if descending else "min_ts"
    for row in _chunks(conn, p, order, data=True):
        min_ts, max_ts = row[2], row[3]
        if kth is not None and (max_ts < kth if descending else min_ts > kth):
            break
        chunk = decode(conn, origins, row)
        chunk_id, ts = chunk.id, chunk.ts
        picked = test.select(chunk, kth)
        if not picked:
            continue
        hits.extend((ts[i], chunk_id + i, chunk, i) for i in picked)
        if len(hits) >= want:
            hits.sort(key=_key, reverse=descending)
            del hits[want:]
            kth = hits[-1][0]
    hits.sort(key=_key, reverse=descending)
    found = [chunk.record(i) for _, _, chunk, i in hits[:want]]
    if query.tail is not None:
        found.reverse()
    return found


def _key(hit: Hit) -> tuple[int, int]:
    return hit[0], hit[1]


def matching(
    conn: sqlite3.Connection,
    origins: Origins,
    query: base.Query,
    *,
    paging: bool = False,
    after_chunk: int | None = None,
) -> Generator[tuple[tuple[Any, ...], chunks.Chunk | None, list[int] | None]]:
    """Every chunk holding records that match `query`: (row, chunk, indexes), or (row, None,
    None) when every live record of the chunk matches without decoding it. With `after_chunk`,
    only chunks of higher ids, in id order (a long delete resumes where it stopped)."""
    p = sqlite_query.plan(conn, query, paging=paging)
    if p is None:
        return
    test = sqlite_query.RecordTest(query, paging=paging)
    order = None
    if after_chunk is not None:
        p.where.add("id > ?", after_chunk)
        order = "id"
    for row in _chunks(conn, p, order, data=False):
        if not test.needs_decoding and test.covers(row[2], row[3]):
            yield row, None, None
            continue
        chunk = decode(conn, origins, row)
        picked = test.select(chunk)
        if picked:
            yield row, chunk, picked


def newest_first(
    conn: sqlite3.Connection, origins: Origins, query: base.Query
) -> Iterator[tuple[int, int, int]]:
    """(ts_ns, id, bytes) of every record matching `query`, newest first, read lazily."""
    p = sqlite_query.plan(conn, replace(query, order="desc", tail=None), paging=False)
    if p is None:
        return
    test = sqlite_query.RecordTest(query, paging=False)
    pending: list[tuple[int, int, int]] = []  # (-ts_ns, -id, bytes): a heap, newest on top
    for row in _chunks(conn, p, "max_ts DESC", data=True):
        max_ts = row[3]
        # Nothing in this chunk or later ones is newer than max_ts: what is, is final.
        while pending and -pending[0][0] > max_ts:
            ts, record_id, size = heapq.heappop(pending)
            yield -ts, -record_id, size
        chunk = decode(conn, origins, row)
        ts_column = chunk.ts
        for i in test.select(chunk):
            heapq.heappush(pending, (-ts_column[i], -(chunk.id + i), chunk.length(i)))
    while pending:
        ts, record_id, size = heapq.heappop(pending)
        yield -ts, -record_id, size


def count(conn: sqlite3.Connection, origins: Origins, query: base.Query) -> int:
    total = 0
    for row, _, picked in matching(conn, origins, query):
        if picked is None:
            total += row[_LIVE]
        else:
            total += len(picked)
    return total


def stats(conn: sqlite3.Connection, origins: Origins, query: base.Query) -> list[tuple[Any, ...]]:
    """Rows grouped as `contract_rows.stats` folds them (`chunk_stats.StatsGroups.rows`)."""
    groups = chunk_stats.StatsGroups()
    for row, chunk, picked in matching(conn, origins, query):
        if chunk is None:
            chunk = decode(conn, origins, row)
            picked = chunk.live()
        assert picked is not None
        groups.add(chunk, picked)
    return groups.rows()
