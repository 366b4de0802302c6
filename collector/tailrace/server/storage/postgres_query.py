"""Translating a `Query` into SQL over the PostgreSQL store's chunks (the chunk half of a query).

As in the SQLite store (`sqlite_query`), a query becomes SQL that picks the chunks that may hold
a match (origin columns, a level bitmask, `executions @>`, `words @>` and time ranges that the
scope's (max_ts, min_ts) and (min_ts, max_ts) B-trees answer in page order) and
`sqlite_query.RecordTest`, which decides on each record of those chunks. The SQL may let through
chunks holding no match; it never leaves one out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tailrace import records
from tailrace.server.storage import base, postgres_chunks, sqlite_chunks, sqlite_query

SPAN = sqlite_chunks.CHUNK_SPAN_NS


@dataclass(slots=True)
class Where:
    terms: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, term: str, *params: Any) -> None:
        self.terms.append(term)
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.terms) if self.terms else "true"


@dataclass(slots=True)
class Plan:
    """The chunk half of a query, and the order a page walks it in."""

    where: Where
    descending: bool


def plan(query: base.Query, *, paging: bool, watermark: int | None = None) -> Plan | None:
    """The chunks `query` may match (None: no chunk can); with `watermark`, none above it (a
    chunk's records come from one append's block of ids, so the chunk's first id decides)."""
    w = Where()
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
        # Chunks holding an id above after_id; a chunk has at most CHUNK_RECORDS records.
        w.add(
            "id > %s AND id + n > %s",
            query.after_id - sqlite_chunks.CHUNK_RECORDS,
            query.after_id + 1,
        )
        return Plan(w, False)
    # Time bounds in page order: the leading bound is a range on the walked index, widened by
    # the span a chunk may cover; the other column of the index narrows within it.
    low = query.since_ns
    high = query.until_ns  # exclusive
    if paging and query.after is not None:
        # A tail pages forwards from its cursor, though it walks back from the newest.
        if query.order == "desc" and query.tail is None:
            high = query.after[0] + 1 if high is None else min(high, query.after[0] + 1)
        else:
            low = query.after[0] if low is None else max(low, query.after[0])
    if descending:
        if high is not None:
            w.add("max_ts < %s AND min_ts < %s", high + SPAN, high)
        if low is not None:
            w.add("max_ts >= %s", low)
    else:
        if low is not None:
            w.add("min_ts >= %s AND max_ts >= %s", low - SPAN, low)
        if high is not None:
            w.add("min_ts < %s", high)
    return Plan(w, descending)
