"""Translating a `Query` into SQL over the `records` table of the SQLite store.

Kept apart from the store so the translation can be read (and tested) as one thing: which WHERE
terms a query becomes, which ORDER BY, and how cursors turn into row-value ranges that the
(…, ts_ns, id) indexes answer without sorting.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from tailrace.server.storage import base

COLUMNS = (
    "id, ts_ns, received_ns, namespace, kind, workload, workload_uid, pod, pod_uid, container, "
    "container_id, restart, stream, level, message, execution_id, attrs, source, flags"
)


@dataclass(slots=True)
class Where:
    terms: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, term: str, *params: Any) -> None:
        self.terms.append(term)
        self.params.extend(params)

    def add_in(self, column: str, values: tuple[Any, ...] | list[Any]) -> None:
        marks = ", ".join("?" for _ in values)
        self.add(f"{column} IN ({marks})", *values)

    @property
    def sql(self) -> str:
        return " AND ".join(self.terms) if self.terms else "1"


PHRASE_FUNCTION = "tailrace_has_phrase"


def fts_terms(text: str) -> str:
    """An FTS5 MATCH expression: every token of `text` (letters and digits only, so no quoting
    trouble). The index has no positions (detail=none); `has_phrase` checks their order."""
    return " ".join(f'"{token}"' for token in base.text_tokens(text))


def has_phrase(message: str, phrase: str) -> bool:
    """SQL function: does `message` hold the tokens of `phrase` consecutively?"""
    return holds(message, base.text_tokens(phrase))


def holds(message: str, tokens: list[str]) -> bool:
    if tokens[0] not in message.casefold():
        return False  # cheap and necessary: the first token must occur as a substring
    words = base.text_tokens(message)
    if len(tokens) == 1:
        return tokens[0] in words
    width = len(tokens)
    return any(words[i : i + width] == tokens for i in range(len(words) - width + 1))


def where(query: base.Query, *, paging: bool) -> Where:
    w = Where()
    # Equalities on the scope go through the integer refs the indexes are keyed on. A ref implies
    # its text columns, which are then not compared again: that keeps a walk over a scope's
    # index from reading each row (the index covers ref, ts_ns and id).
    by_pod = query.namespace is not None and query.pod is not None
    by_workload = (
        query.namespace is not None and query.kind is not None and query.workload is not None
    )
    if by_pod:
        w.add(
            "pod_ref = (SELECT id FROM pod_refs WHERE namespace = ? AND pod = ?)",
            query.namespace,
            query.pod,
        )
    if by_workload:
        w.add(
            "workload_ref = (SELECT id FROM workload_refs "
            "WHERE namespace = ? AND kind = ? AND workload = ?)",
            query.namespace,
            query.kind,
            query.workload,
        )
    if query.namespace is not None and not by_pod and not by_workload:
        w.add("namespace = ?", query.namespace)
    if query.kind is not None and not by_workload:
        w.add("kind = ?", query.kind)
    if query.workload is not None and not by_workload:
        w.add("workload = ?", query.workload)
    if query.pod is not None and not by_pod:
        w.add("pod = ?", query.pod)
    if query.containers:
        w.add_in("container", query.containers)
    if query.streams:
        w.add_in("stream", query.streams)
    if query.levels:
        w.add_in("level", [base.level_rank(level) for level in query.levels])
    if query.min_level is not None:
        w.add("level >= ?", base.level_rank(query.min_level))
    if query.execution_id is not None:
        w.add("execution_id = ?", query.execution_id)
        if query.execution_id:
            w.add("execution_id <> ''")  # lets SQLite use the partial index
    if query.restart is not None:
        w.add("restart = ?", query.restart)
    if query.sources:
        w.add_in("source", query.sources)
    if query.since_ns is not None:
        w.add("ts_ns >= ?", query.since_ns)
    if query.until_ns is not None:
        w.add("ts_ns < ?", query.until_ns)
    if query.text is not None and paging and query.after_id is not None:
        # Live tails: FTS5 answers a rowid range without reading the older matches.
        w.add(
            "id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ? AND rowid > ?)",
            fts_terms(query.text),
            query.after_id,
        )
    elif query.text is not None:
        w.add(
            "id IN (SELECT rowid FROM records_fts WHERE records_fts MATCH ?)",
            fts_terms(query.text),
        )
        if len(base.text_tokens(query.text)) > 1:
            w.add(f"{PHRASE_FUNCTION}(message, ?)", query.text)
    if paging and query.after_id is not None:
        w.add("id > ?", query.after_id)
    elif paging and query.after is not None:
        ascending = query.order == "asc" or query.tail is not None
        w.add("(ts_ns, id) > (?, ?)" if ascending else "(ts_ns, id) < (?, ?)", *query.after)
    return w


def namespace_unknown(conn: sqlite3.Connection, query: base.Query) -> bool:
    """True when the query names a namespace that never logged.

    No scope index serves a namespace alone (it walks the time index), so a namespace with no
    record would otherwise cost a walk over the whole table to find nothing.
    """
    if query.namespace is None:
        return False
    row = conn.execute(
        "SELECT 1 FROM pod_refs WHERE namespace = ? LIMIT 1", (query.namespace,)
    ).fetchone()
    return row is None


def select(query: base.Query) -> tuple[str, list[Any], bool]:
    """SQL and parameters for `query`, and whether the rows come back newest first (tail)."""
    w = where(query, paging=True)
    if query.after_id is not None:
        order, limit, reverse = "id", query.limit, False
    elif query.tail is not None:
        order, limit, reverse = "ts_ns DESC, id DESC", query.tail, True
    elif query.order == "desc":
        order, limit, reverse = "ts_ns DESC, id DESC", query.limit, False
    else:
        order, limit, reverse = "ts_ns, id", query.limit, False
    sql = f"SELECT {COLUMNS} FROM records WHERE {w.sql} ORDER BY {order} LIMIT ?"
    return sql, [*w.params, limit], reverse
