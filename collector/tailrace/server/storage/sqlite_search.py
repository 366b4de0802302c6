"""Answering `Query.text` in the SQLite store: two plans, picked by how common the word is.

FTS5 with `detail=none` can list the rows holding a word, fast, but not in (ts_ns, id) order, and
probing it for single rowids is slow. So a rare word is searched from the FTS index outward (all
its matches, then SQLite orders them), and a common one from the scope's (ts_ns, id) index outward
in chunks, reading each chunk's messages while matches are dense and asking FTS5 about the chunk's
id range once they thin out. Either way the work stays near `limit` rows, not near the table size.

A query scoped to a workload or a pod first narrows the word to that scope inside FTS5: every row's
FTS5 text carries a token naming its workload ref (`sqlite_schema.FTS_TEXT`), and `workload_pods`
names the workloads a pod's rows can belong to. Whether the word is rare is then judged within the
scope, so a word in 1 % of all rows but a few thousand of the workload's is fetched from its FTS5
matches rather than found by walking the workload.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from typing import Any

import orjson

from tailrace.server.storage import base, sqlite_query, sqlite_rows, sqlite_schema

FTS_DRIVEN_MAX = 5_000
_CHUNK_MAX = 16_384
# Below one match in this many rows, a chunk's matches come from FTS5 rather than its messages.
_DENSE_FRACTION = 8
# How many of the newest ids a common word's density is measured over.
_DENSITY_WINDOW = 20_000
# A pod that has logged for more workloads than this is searched without naming them to FTS5.
_SCOPE_WORKLOADS_MAX = 8


def text_query(
    conn: sqlite3.Connection, query: base.Query, fts_driven_max: int
) -> list[base.StoredRecord]:
    assert query.text is not None
    if sqlite_query.namespace_unknown(conn, query):
        return []
    terms = sqlite_query.fts_terms(query.text)
    scope = _scope_terms(conn, query)
    if scope == "":
        return []
    if scope is not None:
        scoped = f"{terms} AND {scope}"
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT rowid FROM records_fts WHERE records_fts MATCH ? ORDER BY rowid LIMIT ?",
                (scoped, fts_driven_max),
            )
        ]
        if len(ids) < fts_driven_max:
            return _candidates(conn, query, ids)
        return _text_query_by_chunks(conn, query, scoped, _density(conn, terms))
    (matches,) = conn.execute(
        "SELECT count(*) FROM (SELECT rowid FROM records_fts WHERE records_fts MATCH ? LIMIT ?)",
        (terms, fts_driven_max),
    ).fetchone()
    if matches < fts_driven_max:
        sql, params, reverse = sqlite_query.select(query)
        found = [sqlite_rows.record(row) for row in conn.execute(sql, params)]
        if reverse:
            found.reverse()
        return found
    return _text_query_by_chunks(conn, query, terms, _density(conn, terms))


def _scope_terms(conn: sqlite3.Connection, query: base.Query) -> str | None:
    """An FTS5 expression for the workload refs the query's rows can hold: None when the query
    names no workload or pod (or a pod of too many workloads), "" when no row can match."""
    if query.namespace is None:
        return None
    if query.kind is not None and query.workload is not None:
        row = conn.execute(
            "SELECT id FROM workload_refs WHERE namespace = ? AND kind = ? AND workload = ?",
            (query.namespace, query.kind, query.workload),
        ).fetchone()
        return sqlite_schema.scope_token(row[0]) if row else ""
    if query.pod is None:
        return None
    refs = conn.execute(
        "SELECT workload_ref FROM workload_pods WHERE pod_ref = (SELECT id FROM pod_refs "
        "WHERE namespace = ? AND pod = ?) LIMIT ?",
        (query.namespace, query.pod, _SCOPE_WORKLOADS_MAX + 1),
    ).fetchall()
    if len(refs) > _SCOPE_WORKLOADS_MAX:
        return None
    tokens = [sqlite_schema.scope_token(ref) for (ref,) in refs]
    if len(tokens) == 1:
        return tokens[0]
    return f"({' OR '.join(tokens)})" if tokens else ""


def _candidates(
    conn: sqlite3.Connection, query: base.Query, ids: list[int]
) -> list[base.StoredRecord]:
    """The page among the rows `ids` (every match of the words in the scope, ascending).

    Ids follow arrival, and timestamps mostly follow ids, so the candidates are examined from the
    end the page starts at, in growing batches, until `want` of them pass the other filters. The
    rest can then only enter the page by beating the `want`-th key found; the scope's (ts_ns, id)
    index lists the rows that do (usually none), and those are checked too. Only (ts_ns, id) of the
    candidates is read this way; the full rows of the page come last. Reading and sorting every
    candidate's full row costs several times more.
    """
    assert query.text is not None
    w = sqlite_query.where(replace(query, text=None), paging=True)
    if len(base.text_tokens(query.text)) > 1:
        w.add(f"{sqlite_query.PHRASE_FUNCTION}(message, ?)", query.text)
    reverse = query.tail is not None
    descending = query.order == "desc" or reverse
    want = query.tail if query.tail is not None else query.limit
    ordered = ids[::-1] if descending else ids
    # CROSS JOIN keeps the candidates as the outer loop: SQLite must not walk the scope's index
    # in order and probe the candidates, which reads the whole scope when matches are old.
    passing = (
        "SELECT ts_ns, id FROM (SELECT value AS candidate FROM json_each(?)) "
        f"CROSS JOIN records ON records.id = candidate WHERE {w.sql}"
    )
    keys: list[tuple[int, int]] = []
    examined, batch = 0, max(2 * want, 256)
    while examined < len(ordered) and len(keys) < want:
        chunk = ordered[examined : examined + batch]
        examined += len(chunk)
        keys.extend(conn.execute(passing, [orjson.dumps(chunk).decode(), *w.params]))
        batch *= 4
    keys.sort(reverse=descending)
    if examined < len(ordered):
        rest = set(ordered[examined:])
        beaten = _beating(conn, query, keys[want - 1], ordered[examined - 1], descending)
        late = [key[1] for key in beaten if key[1] in rest]
        if late:
            keys.extend(conn.execute(passing, [orjson.dumps(late).decode(), *w.params]))
            keys.sort(reverse=descending)
    page = [key[1] for key in keys[:want]]
    if not page:
        return []
    found = [sqlite_rows.record(row) for row in _rows_in_order(conn, page)]
    if reverse:
        found.reverse()
    return found


def _beating(
    conn: sqlite3.Connection,
    query: base.Query,
    bound: tuple[int, int],
    boundary: int,
    descending: bool,
) -> list[tuple[int, int]]:
    """Keys of the scope's rows beyond id `boundary` (in the direction not yet examined) whose
    (ts_ns, id) comes before `bound` in page order: the only rows left that can enter the page."""
    scope = base.Query(
        namespace=query.namespace, kind=query.kind, workload=query.workload, pod=query.pod
    )
    w = sqlite_query.where(scope, paging=False)
    if descending:
        w.add("(ts_ns, id) > (?, ?) AND id < ?", *bound, boundary)
    else:
        w.add("(ts_ns, id) < (?, ?) AND id > ?", *bound, boundary)
    return [
        (row[0], row[1])
        for row in conn.execute(f"SELECT ts_ns, id FROM records WHERE {w.sql}", w.params)
    ]


def _density(conn: sqlite3.Connection, terms: str) -> float:
    """The share of the newest records that match: where a scope walk starts, and how big."""
    (newest,) = conn.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()
    (oldest,) = conn.execute("SELECT coalesce(min(id), 0) FROM records").fetchone()
    newest, oldest = int(newest), int(oldest)
    low = max(oldest, newest - _DENSITY_WINDOW)
    (hits,) = conn.execute(
        "SELECT count(*) FROM records_fts WHERE records_fts MATCH ? AND rowid >= ?", (terms, low)
    ).fetchone()
    return int(hits) / max(1, newest - low + 1)


def _text_query_by_chunks(
    conn: sqlite3.Connection, query: base.Query, terms: str, density: float
) -> list[base.StoredRecord]:
    """Walk the scope in (ts_ns, id) order, chunk by chunk, keeping the records that match.

    While matches are dense, each chunk's messages are read and checked here (a common word needs
    about `limit` rows). Once they thin out, each chunk asks FTS5 for the matches within its id
    range instead, which costs little when the word is rare in that range. (FTS5 probes of single
    rowids are slow, so the dense case never asks it.)
    """
    assert query.text is not None
    tokens = base.text_tokens(query.text)
    descending = query.order == "desc" or query.tail is not None
    want = query.tail if query.tail is not None else query.limit
    w = sqlite_query.where(replace(query, text=None), paging=True)
    order = "ts_ns DESC, id DESC" if descending else "ts_ns, id"
    step = "(ts_ns, id) < (?, ?)" if descending else "(ts_ns, id) > (?, ?)"
    found: list[base.StoredRecord] = []
    # Size the first chunk for `want` matches at the measured density; the walk adapts as it goes.
    dense = density * _DENSE_FRACTION >= 1
    chunk = max(32, min(_CHUNK_MAX, int(want * 1.25 / max(density, 1e-6)) + 1))
    position: tuple[int, int] | None = None
    while len(found) < want:
        terms_sql = w.sql if position is None else f"{w.sql} AND {step}"
        params = [*w.params, *(position or ()), chunk]
        if dense:
            rows = conn.execute(
                f"SELECT {sqlite_query.COLUMNS} FROM records WHERE {terms_sql} "
                f"ORDER BY {order} LIMIT ?",
                params,
            ).fetchall()
            if not rows:
                break
            hits = 0
            for row in rows:
                if sqlite_query.holds(row[14], tokens):
                    hits += 1
                    found.append(sqlite_rows.record(row))
                    if len(found) == want:
                        break
            dense = hits * _DENSE_FRACTION >= len(rows)
            last = rows[-1][1], rows[-1][0]
        else:
            keys = conn.execute(
                f"SELECT ts_ns, id FROM records WHERE {terms_sql} ORDER BY {order} LIMIT ?",
                params,
            ).fetchall()
            if not keys:
                break
            found.extend(_fts_matches_in(conn, keys, terms, tokens, want - len(found)))
            rows, last = keys, keys[-1]
        if len(rows) < chunk:
            break
        position = (last[0], last[1])
        chunk = min(chunk * (2 if dense else 4), _CHUNK_MAX)
    if query.tail is not None:
        found.reverse()
    return found


def _fts_matches_in(
    conn: sqlite3.Connection, keys: list[Any], terms: str, tokens: list[str], want: int
) -> list[base.StoredRecord]:
    """The records among `keys` (in their order) that match, asking FTS5 about their id range."""
    ids = [key[1] for key in keys]
    hits = {
        row[0]
        for row in conn.execute(
            "SELECT rowid FROM records_fts WHERE records_fts MATCH ? AND rowid BETWEEN ? AND ?",
            (terms, min(ids), max(ids)),
        )
    }
    matched = [i for i in ids if i in hits]
    if not matched:
        return []
    found = []
    for row in _rows_in_order(conn, matched):
        if len(tokens) > 1 and not sqlite_query.holds(row[14], tokens):
            continue
        found.append(sqlite_rows.record(row))
        if len(found) == want:
            break
    return found


def _rows_in_order(conn: sqlite3.Connection, ids: list[int]) -> list[Any]:
    """The full rows of `ids` (all present), in the order of `ids`."""
    marks = ", ".join("?" for _ in ids)
    query = f"SELECT {sqlite_query.COLUMNS} FROM records WHERE id IN ({marks})"
    by_id = {row[0]: row for row in conn.execute(query, ids)}
    return [by_id[record_id] for record_id in ids]
