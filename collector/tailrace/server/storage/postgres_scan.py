"""Reading records back out of the PostgreSQL store's chunks: pages, counts, stats, feeds.

The same walk as the SQLite store's (`sqlite_scan`): chunks overlap in time, so a page comes
from the scope's chunks newest-first by `max_ts` (oldest-first by `min_ts`), each decoded and its
matching records kept, until the next chunk cannot hold a record that beats the page's last one.
Chunk rows are fetched in small keyset batches that grow (`FIRST_BATCH` up to `MAX_BATCH`), each
statement bounded by the page's last record once there is one, so a page reads a few more chunks
than it uses at most and the planner is asked for the first rows of an ordered scan every time
(a scope's B-tree walk for common words, the word GIN index for rare ones).
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import replace
from typing import Any, Final

import psycopg

from tailrace.server.storage import (
    base,
    chunk_stats,
    chunks,
    postgres_chunks,
    postgres_query,
)
from tailrace.server.storage.sqlite_query import RecordTest

FIRST_BATCH: Final = 16
MAX_BATCH: Final = 64
# A search starts at MAX_BATCH: the planner weighs a rare word's GIN scan and sort against walking
# the B-tree by the LIMIT, and at LIMIT 16 it walked for a word in 1.4 % of the chunks (testing
# `words @>` on 3,380 chunks, 28 ms, each row's word array read from TOAST) where LIMIT 64 takes
# the GIN index (2.8 ms): `q=deadlock` over 16 M records, p50 99 ms with 16 first.
# Chunks per statement when every matching chunk is read (counts, stats, deletes), in id order.
ID_BATCH: Final = 256

_ID, _N, _MIN_TS, _MAX_TS = (
    postgres_chunks.ID,
    postgres_chunks.N,
    postgres_chunks.MIN_TS,
    postgres_chunks.MAX_TS,
)
_LIVE, _DATA = postgres_chunks.LIVE, postgres_chunks.DATA
# Reads ask for binary results: a blob then travels as its bytes instead of twice as many hex
# digits that both ends would have to encode and decode.
_SELECT: Final = f"SELECT {postgres_chunks.READ_COLUMNS}, data FROM chunks"
_SELECT_META: Final = f"SELECT {postgres_chunks.READ_COLUMNS} FROM chunks"

Row = tuple[Any, ...]
Hit = tuple[int, int, chunks.Chunk, int]  # (ts_ns, id, chunk, index in chunk)


class _Walk:
    """A plan's chunk rows (with their blobs) in page order, fetched in growing keyset batches;
    `bound` (a timestamp) leaves out the chunks that cannot hold a record as new (descending) or
    as old (ascending) as it, from the next batch on."""

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], p: postgres_query.Plan, first: int = FIRST_BATCH
    ) -> None:
        self._conn = conn
        self._plan = p
        self._first = first
        self.bound: int | None = None

    async def rows(self) -> AsyncGenerator[Row]:
        descending = self._plan.descending
        if descending:
            order, key, after, near = "max_ts DESC, min_ts DESC, id DESC", (3, 2, 0), "<", ">="
            columns = "(max_ts, min_ts, id)"
        else:
            order, key, after, near = "min_ts, max_ts, id", (2, 3, 0), ">", "<="
            columns = "(min_ts, max_ts, id)"
        leading = "max_ts" if descending else "min_ts"
        last: Row | None = None
        size = self._first
        while True:
            terms = list(self._plan.where.terms)
            params = list(self._plan.where.params)
            if last is not None:
                terms.append(f"{columns} {after} (%s, %s, %s)")
                params.extend(last[i] for i in key)
            if self.bound is not None:
                terms.append(f"{leading} {near} %s")
                params.append(self.bound)
            statement = f"{_SELECT} WHERE {' AND '.join(terms) or 'true'} ORDER BY {order} "
            cursor = await self._conn.execute(
                f"{statement}LIMIT {size:d}".encode(), params, binary=True
            )
            rows = await cursor.fetchall()
            for row in rows:
                yield row
            if len(rows) < size:
                return
            last = rows[-1]
            size = min(size * 2, MAX_BATCH)


async def page(
    conn: psycopg.AsyncConnection[Any], query: base.Query, watermark: int
) -> list[base.StoredRecord]:
    """What `Store.query` answers, blind to ids above `watermark`."""
    p = postgres_query.plan(query, paging=True, watermark=watermark)
    if p is None:
        return []
    test = RecordTest(query, paging=True)
    if query.after_id is not None:
        return await _after_id(conn, p, test, query.limit)
    want = query.tail if query.tail is not None else query.limit
    if want <= 0:
        return []
    descending = p.descending
    hits: list[Hit] = []
    kth: int | None = None  # ts_ns of the want-th hit so far
    walk = _Walk(conn, p, MAX_BATCH if query.text else FIRST_BATCH)
    async with contextlib.aclosing(walk.rows()) as rows:
        async for row in rows:
            if kth is not None and (row[_MAX_TS] < kth if descending else row[_MIN_TS] > kth):
                break
            chunk = postgres_chunks.decode(row)
            chunk_id, ts = chunk.id, chunk.ts
            picked = test.select(chunk, kth)
            if not picked:
                continue
            hits.extend((ts[i], chunk_id + i, chunk, i) for i in picked)
            if len(hits) >= want:
                # (ts_ns, id) decide: ids are unique, so the chunks are never compared.
                hits.sort(reverse=descending)
                del hits[want:]
                kth = walk.bound = hits[-1][0]
    hits.sort(reverse=descending)
    found = [chunk.record(i) for _, _, chunk, i in hits[:want]]
    if query.tail is not None:
        found.reverse()
    return found


async def _after_id(
    conn: psycopg.AsyncConnection[Any], p: postgres_query.Plan, test: RecordTest, limit: int
) -> list[base.StoredRecord]:
    found: list[base.StoredRecord] = []
    after = -1 << 63
    while True:
        rows = await _by_id(conn, p, after, MAX_BATCH, data=True)
        for row in rows:
            chunk = postgres_chunks.decode(row)
            for i in test.select(chunk):
                found.append(chunk.record(i))
                if len(found) >= limit:
                    return found
        if len(rows) < MAX_BATCH:
            return found
        after = rows[-1][_ID]


async def _by_id(
    conn: psycopg.AsyncConnection[Any],
    p: postgres_query.Plan,
    after: int,
    limit: int,
    *,
    data: bool,
    lock: bool = False,
) -> list[Row]:
    """Up to `limit` planned chunk rows with ids above `after`, in id order."""
    where = f"{p.where.sql} AND id > %s"
    statement = f"{_SELECT if data else _SELECT_META} WHERE {where} ORDER BY id LIMIT {limit:d}"
    if lock:
        statement += " FOR UPDATE"
    cursor = await conn.execute(statement.encode(), [*p.where.params, after], binary=True)
    return await cursor.fetchall()


async def _with_data(conn: psycopg.AsyncConnection[Any], rows: Sequence[Row]) -> list[Row]:
    """`rows` (read without their blobs) with them, in the same order."""
    if not rows:
        return []
    cursor = await conn.execute(
        "SELECT id, data FROM chunks WHERE id = ANY(%s) AND min_ts >= %s AND min_ts <= %s",
        (
            [row[_ID] for row in rows],
            min(row[_MIN_TS] for row in rows),
            max(row[_MIN_TS] for row in rows),
        ),
        binary=True,
    )
    blobs = dict(await cursor.fetchall())
    return [(*row, blobs[row[_ID]]) for row in rows if row[_ID] in blobs]


Match = tuple[Row, chunks.Chunk | None, list[int] | None]


async def matching(
    conn: psycopg.AsyncConnection[Any],
    query: base.Query,
    *,
    paging: bool = False,
    after_chunk: int = -1 << 63,
    limit: int = ID_BATCH,
    lock: bool = False,
    blobs: bool = False,
) -> tuple[list[Match], int | None]:
    """The chunks among the next `limit` planned ones above `after_chunk` (in id order) that
        hold records matching `query`: (row, chunk, indexes), or (row, None, None) when every live
        record of the chunk matches without decoding it; and the last chunk id looked at (None when
        there was none left). `lock` locks the rows for an update in the caller's transaction;
    `blobs` reads every row with its blob (for a caller that decodes them all)."""
    p = postgres_query.plan(query, paging=paging)
    if p is None:
        return [], None
    test = RecordTest(query, paging=paging)
    data = test.needs_decoding or blobs
    rows = await _by_id(conn, p, after_chunk, limit, data=data, lock=lock)
    if not rows:
        return [], None
    found: list[Match] = []
    undecided: list[Row] = []
    for row in rows:
        if not test.needs_decoding and test.covers(row[_MIN_TS], row[_MAX_TS]):
            found.append((row, None, None))
        else:
            undecided.append(row)
    if not data:
        undecided = await _with_data(conn, undecided)
    for row in undecided:
        chunk = postgres_chunks.decode(row)
        picked = test.select(chunk)
        if picked:
            found.append((row, chunk, picked))
    return found, rows[-1][_ID]


async def all_matching(
    conn: psycopg.AsyncConnection[Any], query: base.Query, *, blobs: bool = False
) -> AsyncIterator[Match]:
    after: int | None = -1 << 63
    while after is not None:
        found, after = await matching(conn, query, after_chunk=after, blobs=blobs)
        for match in found:
            yield match


async def count(conn: psycopg.AsyncConnection[Any], query: base.Query) -> int:
    total = 0
    async for row, _, picked in all_matching(conn, query):
        total += row[_LIVE] if picked is None else len(picked)
    return total


async def stats(conn: psycopg.AsyncConnection[Any], query: base.Query) -> list[Row]:
    """Rows grouped as `contract_rows.stats` folds them (`chunk_stats.StatsGroups.rows`)."""
    groups = chunk_stats.StatsGroups()
    async for row, chunk, picked in all_matching(conn, query, blobs=True):
        if chunk is None:
            chunk = postgres_chunks.decode(row)
            picked = chunk.live()
        assert picked is not None
        groups.add(chunk, picked)
    return groups.rows()


async def newest_first(
    conn: psycopg.AsyncConnection[Any], query: base.Query
) -> AsyncGenerator[tuple[int, int, int]]:
    """(ts_ns, id, bytes) of every record matching `query`, newest first, read lazily."""
    p = postgres_query.plan(replace(query, order="desc", tail=None), paging=False)
    if p is None:
        return
    test = RecordTest(query, paging=False)
    pending: list[tuple[int, int, int]] = []  # (-ts_ns, -id, bytes): a heap, newest on top
    async for row in _Walk(conn, p).rows():
        max_ts = row[_MAX_TS]
        # Nothing in this chunk or later ones is newer than max_ts: what is, is final.
        while pending and -pending[0][0] > max_ts:
            ts, record_id, size = heapq.heappop(pending)
            yield -ts, -record_id, size
        chunk = postgres_chunks.decode(row)
        ts_column = chunk.ts
        for i in test.select(chunk):
            heapq.heappush(pending, (-ts_column[i], -(chunk.id + i), chunk.length(i)))
    while pending:
        ts, record_id, size = heapq.heappop(pending)
        yield -ts, -record_id, size


async def feed(
    conn: psycopg.AsyncConnection[Any], last: int, upto: int, limit: int
) -> list[base.StoredRecord]:
    """Records with ids in (last, upto], in id order: at most `limit` (and the rest of the last
    chunk read)."""
    found: list[base.StoredRecord] = []
    after = last - chunks.CHUNK_RECORDS
    while len(found) < limit:
        cursor = await conn.execute(
            f"{_SELECT} WHERE id > %s AND id <= %s ORDER BY id LIMIT {MAX_BATCH:d}".encode(),
            (after, upto),
            binary=True,
        )
        rows = await cursor.fetchall()
        for row in rows:
            chunk = postgres_chunks.decode(row)
            first = max(last - chunk.id + 1, 0)
            found.extend(
                chunk.record(i) for i in chunk.live() if i >= first and chunk.id + i <= upto
            )
        if len(rows) < MAX_BATCH:
            break
        after = rows[-1][_ID]
    return found
