"""Translating a `Query` into what the SQLite store reads: SQL over chunks, then a record test.

A query becomes two halves. The chunk half is SQL over `chunks`: the scope's refs, the origin
fields (container, restart, source...), a level bitmask, execution ids, FTS5 for words, and time
ranges that the (scope, max_ts) and (scope, min_ts) indexes answer in page order. It may let
through chunks holding no match; it never leaves one out. The record half (`RecordTest`) then
decides on each record of those chunks, with exactly the meaning of `base.record_filter`.
"""

from __future__ import annotations

import bisect
import sqlite3
from dataclasses import dataclass
from typing import Any

from tailrace import conventions, records
from tailrace.server.storage import base, chunk_bounds, chunks

CHUNK_COLUMNS = "id, n, min_ts, max_ts, received_ns, origin, workload_ref, dead, live, size"
# A pod that has logged for more workloads than this is searched without naming them to FTS5.
_SCOPE_WORKLOADS_MAX = 8


class Where(chunk_bounds.Where):
    __slots__ = ()

    def add_in(self, column: str, values: tuple[Any, ...] | list[Any]) -> None:
        marks = ", ".join("?" for _ in values)
        self.add(f"{column} IN ({marks})", *values)


def fts_terms(text: str) -> str:
    """An FTS5 MATCH expression: every token of `text` (letters and digits only, so no quoting
    trouble). The index has no positions (detail=none); the record test checks the phrase."""
    return " ".join(f'"{token}"' for token in base.text_tokens(text))


def holds(message: str, tokens: list[str]) -> bool:
    """Does `message` hold `tokens` consecutively (as whole, case-folded words)?"""
    if tokens[0] not in message.casefold():
        return False  # cheap and necessary: the first token must occur as a substring
    words = base.text_tokens(message)
    if len(tokens) == 1:
        return tokens[0] in words
    width = len(tokens)
    return any(words[i : i + width] == tokens for i in range(len(words) - width + 1))


@dataclass(slots=True)
class Plan:
    """The chunk half of a query: which chunks, in which order, through which index."""

    where: Where
    index: str  # chunks_by_{scope}_{max|min}
    descending: bool


def plan(conn: sqlite3.Connection, query: base.Query, *, paging: bool) -> Plan | None:
    """The chunks `query` may match (None: no chunk can), ordered for its page."""
    if query.namespace is not None and not _namespace_known(conn, query.namespace):
        return None
    w = Where()
    scope = "global"
    by_pod = query.namespace is not None and query.pod is not None
    by_workload = (
        query.namespace is not None and query.kind is not None and query.workload is not None
    )
    if by_workload:
        row = conn.execute(
            "SELECT id FROM workload_refs WHERE namespace = ? AND kind = ? AND workload = ?",
            (query.namespace, query.kind, query.workload),
        ).fetchone()
        if row is None:
            return None
        w.add("workload_ref = ?", row[0])
        scope = "workload"
    if by_pod:
        row = conn.execute(
            "SELECT id FROM pod_refs WHERE namespace = ? AND pod = ?",
            (query.namespace, query.pod),
        ).fetchone()
        if row is None:
            return None
        w.add("pod_ref = ?", row[0])
        scope = "pod"
    origin = Where()
    if query.namespace is not None and not by_pod and not by_workload:
        origin.add("namespace = ?", query.namespace)
    if query.kind is not None and not by_workload:
        origin.add("kind = ?", query.kind)
    if query.workload is not None and not by_workload:
        origin.add("workload = ?", query.workload)
    if query.pod is not None and not by_pod:
        origin.add("pod = ?", query.pod)
    if query.containers:
        origin.add_in("container", query.containers)
    if query.restart is not None:
        origin.add("restart = ?", query.restart)
    if query.sources:
        origin.add_in("source", query.sources)
    if query.streams and not any(s in records.STREAM_CODES for s in query.streams):
        origin.add_in("stream", query.streams)
    if origin.terms:
        w.add(f"origin IN (SELECT id FROM origins WHERE {origin.sql})", *origin.params)
    mask = level_mask(query)
    if mask is not None:
        if not mask:
            return None
        w.add("levels & ? != 0", mask)
    if query.execution_id:
        w.add(
            "id IN (SELECT chunk FROM chunk_executions WHERE execution_id = ?)",
            query.execution_id,
        )
    if query.text is not None:
        terms = fts_terms(query.text)
        scoped = _scope_terms(conn, query)
        if scoped == "":
            return None
        if scoped is not None:
            terms = f"{terms} AND {scoped}"
        if paging and query.after_id is not None:
            # Live tails: FTS5 answers a rowid range without listing the older matches.
            w.add(
                "id IN (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid > ?)",
                terms,
                query.after_id - chunks.CHUNK_RECORDS,
            )
        else:
            w.add("id IN (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ?)", terms)
    descending = query.order == "desc" or query.tail is not None
    if paging and query.after_id is not None:
        chunk_bounds.add_after_id(w, query.after_id, mark="?")
        return Plan(w, "", False)
    chunk_bounds.add_time_bounds(w, query, paging=paging, descending=descending, mark="?")
    return Plan(
        w,
        f"chunks_by_{'' if scope == 'global' else scope + '_'}{'max' if descending else 'min'}",
        descending,
    )


def _namespace_known(conn: sqlite3.Connection, namespace: str) -> bool:
    row = conn.execute("SELECT 1 FROM pod_refs WHERE namespace = ? LIMIT 1", (namespace,))
    return row.fetchone() is not None


def level_mask(query: base.Query) -> int | None:
    ranks = set(range(len(conventions.LEVELS)))
    narrowed = False
    if query.levels:
        ranks &= {base.level_rank(level) for level in query.levels}
        narrowed = True
    if query.min_level is not None:
        ranks &= set(range(base.level_rank(query.min_level), len(conventions.LEVELS)))
        narrowed = True
    if not narrowed:
        return None
    mask = 0
    for rank in ranks:
        mask |= 1 << rank
    return mask


def _scope_terms(conn: sqlite3.Connection, query: base.Query) -> str | None:
    """An FTS5 expression for the workload refs the query's chunks can hold: None when the query
    names no workload or pod (or a pod of too many workloads), "" when no chunk can match."""
    if query.namespace is None:
        return None
    if query.kind is not None and query.workload is not None:
        row = conn.execute(
            "SELECT id FROM workload_refs WHERE namespace = ? AND kind = ? AND workload = ?",
            (query.namespace, query.kind, query.workload),
        ).fetchone()
        return chunks.scope_token(row[0]) if row else ""
    if query.pod is None:
        return None
    refs = conn.execute(
        "SELECT workload_ref FROM workload_pods WHERE pod_ref = (SELECT id FROM pod_refs "
        "WHERE namespace = ? AND pod = ?) LIMIT ?",
        (query.namespace, query.pod, _SCOPE_WORKLOADS_MAX + 1),
    ).fetchall()
    if len(refs) > _SCOPE_WORKLOADS_MAX:
        return None
    tokens = [chunks.scope_token(ref) for (ref,) in refs]
    if len(tokens) == 1:
        return tokens[0]
    return f"({' OR '.join(tokens)})" if tokens else ""


class RecordTest:
    """The record half of a query: which records of a chunk match, paging included or not."""

    def __init__(self, query: base.Query, *, paging: bool) -> None:
        self.since = query.since_ns
        self.until = query.until_ns
        self.after_id = query.after_id if paging else None
        self.after: tuple[int, int] | None = None
        self.ascending = query.order == "asc" or query.tail is not None
        self.ascending_walk = query.order == "asc" and query.tail is None
        if paging and query.after_id is None and query.after is not None:
            self.after = query.after
        level_ranks: set[int] | None = None
        if query.levels:
            level_ranks = {base.level_rank(level) for level in query.levels}
        if query.min_level is not None:
            floor = set(range(base.level_rank(query.min_level), len(conventions.LEVELS)))
            level_ranks = floor if level_ranks is None else level_ranks & floor
        self.level_ranks = frozenset(level_ranks) if level_ranks is not None else None
        self.streams = frozenset(query.streams) if query.streams else None
        self.execution_id = query.execution_id
        self.tokens = base.text_tokens(query.text) if query.text else None
        self.needs_decoding = any(
            (
                self.level_ranks is not None,
                self.streams is not None,
                self.execution_id is not None,
                self.tokens is not None,
            )
        )

    def covers(self, min_ts: int, max_ts: int) -> bool:
        """Whether every record of a chunk spanning [min_ts, max_ts] passes the time bounds
        (the only test left when `needs_decoding` is false)."""
        if self.after is not None or self.after_id is not None:
            return False
        return (self.since is None or min_ts >= self.since) and (
            self.until is None or max_ts < self.until
        )

    def select(self, chunk: chunks.Chunk, beaten: int | None = None) -> list[int]:
        """Indexes of the chunk's live records that match; with `beaten` (the timestamp of a
        page's last record so far), only those that may still enter the page."""
        picked = chunk.live()
        ts = chunk.ts
        if beaten is not None:
            # Most records of a chunk fall out here, before any other test looks at them.
            if self.ascending_walk:
                picked = [i for i in picked if ts[i] <= beaten]
            else:
                picked = [i for i in picked if ts[i] >= beaten]
        if self.since is not None:
            since = self.since
            picked = [i for i in picked if ts[i] >= since]
        if self.until is not None:
            until = self.until
            picked = [i for i in picked if ts[i] < until]
        if self.after_id is not None:
            first = self.after_id - chunk.id + 1
            picked = [i for i in picked if i >= first]
        if self.after is not None:
            after_ts, after_id = self.after
            base_id = chunk.id
            if self.ascending:
                picked = [i for i in picked if (ts[i], base_id + i) > (after_ts, after_id)]
            else:
                picked = [i for i in picked if (ts[i], base_id + i) < (after_ts, after_id)]
        if not picked or not self.needs_decoding:
            return picked
        if self.level_ranks is not None:
            ranks, levels = self.level_ranks, chunk.levels
            picked = [i for i in picked if levels[i] in ranks]
        if self.streams is not None:
            wanted, origin_stream = self.streams, chunk.origin.stream
            codes = {records.STREAM_CODES[s] for s in wanted if s in records.STREAM_CODES}
            streams = chunk.streams
            picked = [
                i
                for i in picked
                if (streams[i] in codes if streams[i] else origin_stream in wanted)
            ]
        if self.execution_id is not None:
            executions, wanted_id = chunk.executions(), self.execution_id
            picked = [i for i in picked if executions.get(i, "") == wanted_id]
        if self.tokens is not None and picked:
            picked = _holding(chunk, picked, self.tokens)
        return picked


_ASCII_TOKEN_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _holding(chunk: chunks.Chunk, picked: list[int], tokens: list[str]) -> list[int]:
    """The records of `picked` whose message holds `tokens` (see `holds`)."""
    text = chunk.text
    if not text.isascii():
        messages = chunk.messages()
        return [i for i in picked if holds(messages[i], tokens)]
    # ASCII: the first token is looked for in the whole column at once. For one token, a find
    # with a non-token byte (or the message's edge) on both sides is a match; a phrase is then
    # checked word by word, in the records found only.
    lowered = text.lower()
    needle = tokens[0].encode()
    width = len(needle)
    ends = chunk.ends
    single = len(tokens) == 1
    word = _ASCII_TOKEN_BYTES
    hits: set[int] = set()
    position = lowered.find(needle)
    while position >= 0:
        record = bisect.bisect_right(ends, position)
        start, end = (ends[record - 1] if record else 0), ends[record]
        stop = position + width
        if stop > end:  # runs into the next message: not a find in this one
            position = lowered.find(needle, end)
            continue
        whole = (position == start or lowered[position - 1] not in word) and (
            stop == end or lowered[stop] not in word
        )
        if whole or not single:
            hits.add(record)
            position = lowered.find(needle, end)
        else:
            position = lowered.find(needle, position + 1)
    if single:
        return [i for i in picked if i in hits]
    messages = chunk.messages()
    return [i for i in picked if i in hits and holds(messages[i], tokens)]
