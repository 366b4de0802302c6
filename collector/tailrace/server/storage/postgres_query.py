"""Translating a `Query` into SQL over the PostgreSQL store's chunks (the chunk half of a query).

As in the SQLite store (`sqlite_query`), a query becomes SQL that picks the chunks that may hold
a match (origin columns, a level bitmask, `executions @>`, `words @>` and time ranges that the
scope's (max_ts, min_ts) and (min_ts, max_ts) B-trees answer in page order) and
`sqlite_query.RecordTest`, which decides on each record of those chunks. The SQL may let through
chunks holding no match; it never leaves one out.
"""

from __future__ import annotations

from dataclasses import dataclass

from tailrace import records
from tailrace.server.storage import base, chunk_bounds, postgres_chunks, sqlite_query


@dataclass(slots=True)
class Plan:
    """The chunk half of a query, and the order a page walks it in."""

    where: chunk_bounds.Where
    descending: bool


def plan(query: base.Query, *, paging: bool, watermark: int | None = None) -> Plan | None:
    """The chunks `query` may match (None: no chunk can); with `watermark`, none above it (a
    chunk's records come from one append's block of ids, so the chunk's first id decides)."""
    w = chunk_bounds.Where()
    for column, value in (
        ("namespace", query.namespace),
        ("kind", query.kind),
        ("workload", query.workload),
        ("pod", query.pod),
        ("restart", query.restart),
    ):
        if value is not None:
            w.add(f"{column} = %s", value)
    if query.containers:
        w.add("container = ANY(%s)", list(query.containers))
    if query.sources:
        w.add("source = ANY(%s)", list(query.sources))
    if query.streams and not any(s in records.STREAM_CODES for s in query.streams):
        w.add("stream = ANY(%s)", [postgres_chunks.without_nul(s) for s in query.streams])
    mask = sqlite_query.level_mask(query)
    if mask is not None:
        if not mask:
            return None
        w.add("levels & %s <> 0", mask)
    if query.execution_id is not None:
        w.add("executions @> ARRAY[%s]::text[]", postgres_chunks.without_nul(query.execution_id))
    if query.text is not None:
        tokens = base.text_tokens(query.text)
        if not tokens:
            return None
        indexed = postgres_chunks.query_words(tokens)
        if indexed:
            w.add("words @> %s::text[]", indexed)
    if watermark is not None:
        w.add("id <= %s", watermark)
    descending = query.order == "desc" or query.tail is not None
    if paging and query.after_id is not None:
        chunk_bounds.add_after_id(w, query.after_id, mark="%s")
        return Plan(w, False)
    chunk_bounds.add_time_bounds(w, query, paging=paging, descending=descending, mark="%s")
    return Plan(w, descending)
