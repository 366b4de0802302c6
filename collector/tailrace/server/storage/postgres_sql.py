"""From a `Query` to SQL over the PostgreSQL records table, and from rows back to records.

Kept apart from the store so the filter semantics (the same as SQLite's for every `Query` field)
read in one place. Full-text search matches `base.text_tokens` exactly: each record carries its
message's tokens as `search` (' tok tok ... ', computed in Python at ingest), and `Query.text`
becomes `search LIKE '% a b %'`, with a word-level GIN index (tsvector of the tokens) to find the
candidate rows.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from tailrace import conventions
from tailrace.server.storage import base, postgres_schema

COLUMNS: Final = (
    "id",
    "ts_ns",
    "received_ns",
    "namespace",
    "kind",
    "workload",
    "workload_uid",
    "pod",
    "pod_uid",
    "container",
    "container_id",
    "restart",
    "stream",
    "level",
    "level_rank",
    "message",
    "search",
    "execution_id",
    "attrs",
    "source",
    "flags",
    "size",
)
COPY_TYPES: Final = (
    "int8",
    "int8",
    "int8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "text",
    "text",
    "int2",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "int4",
)
# What a read returns: every column but the derived ones (level_rank, search, size).
SELECT_COLUMNS: Final = (
    "id, ts_ns, received_ns, namespace, kind, workload, workload_uid, pod, pod_uid, container, "
    "container_id, restart, stream, level, message, execution_id, attrs, source, flags"
)

Params = list[Any]
_MAX_WORD_BYTES: Final = 2047  # longer words are left out of a tsvector


# ASCII letters and digits to themselves (upper case folded), every other byte to a space.
_ASCII_TOKENS: Final = bytes(
    (c + 32 if 65 <= c <= 90 else c) if chr(c).isascii() and chr(c).isalnum() else 32
    for c in range(256)
)


def search_text(message: str) -> str:
    """The `search` column: the message's tokens between single spaces, padded with spaces.

    The tokens are `base.text_tokens`; pure-ASCII messages (most log lines) take a byte-table
    path that gives the same tokens about four times faster than the regular expression.
    """
    if message.isascii():
        tokens = message.encode().translate(_ASCII_TOKENS).split()
        return f" {b' '.join(tokens).decode()} " if tokens else " "
    words = base.text_tokens(message)
    return f" {' '.join(words)} " if words else " "


def level_rank(level: str) -> int:
    return conventions.LEVEL_RANK.get(level, conventions.LEVEL_RANK["INFO"])


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a log line may (binary garbage). U+FFFD keeps its place.
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


_INFO_RANK: Final = conventions.LEVEL_RANK["INFO"]


def copy_row(record: base.StoredRecord) -> tuple[Any, ...]:
    """The record as a COPY row (the hot path of ingest: one encode of the message, no calls
    that are not needed)."""
    message = record.message
    raw = message.encode()
    if raw.isascii():
        tokens = raw.translate(_ASCII_TOKENS).split()
        search = f" {b' '.join(tokens).decode()} " if tokens else " "
    else:
        search = search_text(message)
    if "\x00" in message:
        message = message.replace("\x00", "\ufffd")
    level = record.level
    rank = conventions.LEVEL_RANK.get(level)
    if rank is None:
        # Stored levels are the known names; anything else reads back as INFO (as in SQLite).
        level, rank = "INFO", _INFO_RANK
    execution_id = record.execution_id
    return (
        record.id,
        record.ts_ns,
        record.received_ns,
        record.namespace,
        record.kind,
        record.workload,
        record.workload_uid,
        record.pod,
        record.pod_uid,
        record.container,
        record.container_id,
        record.restart,
        record.stream,
        level,
        rank,
        message,
        search,
        _text(execution_id) if execution_id else "",
        orjson.dumps(record.attrs).decode() if record.attrs else "{}",
        record.source,
        record.flags,
        len(raw),
    )


def from_row(row: tuple[Any, ...]) -> base.StoredRecord:
    (
        record_id,
        ts_ns,
        received_ns,
        namespace,
        kind,
        workload,
        workload_uid,
        pod,
        pod_uid,
        container,
        container_id,
        restart,
        stream,
        level,
        message,
        execution_id,
        attrs,
        source,
        flags,
    ) = row
    return base.StoredRecord(
        ts_ns=ts_ns,
        namespace=namespace,
        pod=pod,
        container=container,
        stream=stream,
        level=level,
        message=message,
        kind=kind,
        workload=workload,
        workload_uid=workload_uid,
        pod_uid=pod_uid,
        container_id=container_id,
        restart=restart,
        execution_id=execution_id,
        attrs=orjson.loads(attrs) if attrs != "{}" else {},
        source=source,
        flags=flags,
        id=record_id,
        received_ns=received_ns,
    )


def phrase_pattern(tokens: list[str]) -> str:
    """The LIKE pattern matching `tokens` as a phrase in the `search` column."""
    return f"% {' '.join(tokens)} %"


def filters(query: base.Query, *, text: bool = True) -> tuple[list[str], Params]:
    """WHERE terms (joined with AND) and their parameters for the query's filters, no paging
    (without the text search when `text` is false: a walk tests it itself)."""
    terms: list[str] = []
    params: Params = []

    def equal(column: str, value: object) -> None:
        terms.append(f"{column} = %s")
        params.append(value)

    def any_of(column: str, values: tuple[str, ...]) -> None:
        terms.append(f"{column} = ANY(%s)")
        params.append(list(values))

    if query.namespace is not None:
        equal("namespace", query.namespace)
    if query.kind is not None:
        equal("kind", query.kind)
    if query.workload is not None:
        equal("workload", query.workload)
    if query.pod is not None:
        equal("pod", query.pod)
    if query.containers:
        any_of("container", query.containers)
    if query.streams:
        any_of("stream", query.streams)
    if query.levels:
        any_of("level", query.levels)
    if query.min_level is not None:
        terms.append("level_rank >= %s")
        params.append(base.level_rank(query.min_level))
    if query.text is not None and text:
        tokens = base.text_tokens(query.text)
        if tokens:
            # Tokens hold letters and digits only, so they need no LIKE or tsquery escaping.
            # The LIKE is the match; the tsquery (every word, in any order) only lets the GIN
            # index find candidates: the tokens as lexemes (short rows), the same through the
            # text parser (long rows; see postgres_schema.SEARCH_VECTOR), and the long-row
            # marker. Words PostgreSQL will not index (2 KiB and more) are left out of it rather
            # than making it match nothing.
            words = [f"'{token}'" for token in tokens if len(token.encode()) < _MAX_WORD_BYTES]
            if words:
                terms.append(
                    f"{postgres_schema.SEARCH_VECTOR} @@ (%s::tsquery || "
                    f"to_tsquery('simple'::regconfig, %s) || '{postgres_schema.LONG_ROW}'::tsquery)"
                )
                params.extend([" & ".join(words)] * 2)
            terms.append("search LIKE %s")
            params.append(phrase_pattern(tokens))
        else:
            terms.append("false")
    if query.execution_id is not None:
        equal("execution_id", query.execution_id)
    if query.restart is not None:
        equal("restart", query.restart)
    if query.sources:
        any_of("source", query.sources)
    if query.since_ns is not None:
        terms.append("ts_ns >= %s")
        params.append(query.since_ns)
    if query.until_ns is not None:
        terms.append("ts_ns < %s")
        params.append(query.until_ns)
    return terms, params


def where(terms: list[str]) -> str:
    return f"WHERE {' AND '.join(terms)}" if terms else ""


def select(
    query: base.Query,
    watermark: int,
    *,
    beyond: tuple[int, int] | None = None,
    limit: int | None = None,
) -> tuple[str, Params]:
    """The SELECT answering `Store.query`, blind to ids above `watermark` (see the store).

    `beyond` (a (ts_ns, id) key) and `limit` continue a `walk` that stopped short: only rows past
    that key in the walk's direction, and at most `limit` of them (instead of the query's).
    """
    terms, params = filters(query)
    terms.append("id <= %s")
    params.append(watermark)
    if query.after_id is not None:
        terms.append("id > %s")
        params.append(query.after_id)
        sql = f"SELECT {SELECT_COLUMNS} FROM records {where(terms)} ORDER BY id LIMIT %s"
        return sql, [*params, query.limit]
    if beyond is not None:
        descending = query.tail is not None or query.order == "desc"
        terms.append("(ts_ns, id) < (%s, %s)" if descending else "(ts_ns, id) > (%s, %s)")
        params.extend(beyond)
    if query.tail is not None:
        if query.after is not None:
            terms.append("(ts_ns, id) > (%s, %s)")
            params.extend(query.after)
        inner = (
            f"SELECT {SELECT_COLUMNS} FROM records {where(terms)} "
            "ORDER BY ts_ns DESC, id DESC LIMIT %s"
        )
        sql = f"SELECT * FROM ({inner}) AS newest ORDER BY ts_ns, id"
        return sql, [*params, query.tail if limit is None else limit]
    if query.after is not None:
        terms.append("(ts_ns, id) > (%s, %s)" if query.order == "asc" else "(ts_ns, id) < (%s, %s)")
        params.extend(query.after)
    direction = "" if query.order == "asc" else " DESC"
    sql = (
        f"SELECT {SELECT_COLUMNS} FROM records {where(terms)} "
        f"ORDER BY ts_ns{direction}, id{direction} LIMIT %s"
    )
    return sql, [*params, query.limit if limit is None else limit]


def walk(query: base.Query, watermark: int, rows: int) -> tuple[str, Params]:
    """A text search that walks the scope's (ts_ns, id) order and tests each row's words, for a
    word common enough that the wanted rows come within the first `rows` rows of the scope.

    It reads at most `rows` rows, in walk order (newest first for a tail or a descending query),
    and returns (ts_ns, id, hit, n) for the matching ones (`hit`) and for the row where it gave
    up (`n = rows`), at most as many as wanted: fewer hits than wanted and no row numbered `rows`
    means the scope ended. `rows_by_key` reads the hits' full rows afterwards.

    A workload's walk (`walks_words_index`) reads only the rows whose tokens fit the walk index
    (postgres_schema.WALK_INDEX_PREDICATE) and only columns it holds, so it is an index-only scan
    over index pages (a hundred rows or so each) instead of one heap page per row (a workload's
    rows are interleaved with every other workload's); `walk_long` then finds the long rows in
    the same stretch.
    """
    assert query.text is not None
    assert query.after_id is None
    terms, params = _walk_terms(query, watermark)
    if walks_words_index(query):
        terms.append(postgres_schema.WALK_INDEX_PREDICATE)
    inner = (
        f"SELECT ts_ns, id, search FROM records {where(terms)} {_walk_order(query)} LIMIT {rows:d}"
    )
    numbering = (
        "SELECT ts_ns, id, search LIKE %s AS hit, row_number() OVER () AS n "
        f"FROM ({inner}) AS walked"
    )
    sql = f"SELECT * FROM ({numbering}) AS numbered WHERE hit OR n = {rows:d} LIMIT %s"
    return sql, [_walk_pattern(query), *params, _wanted(query)]


def walk_long(
    query: base.Query, watermark: int, before: tuple[int, int] | None
) -> tuple[str, Params]:
    """The (ts_ns, id) of the long rows (not in the walk index) a workload's `walk` would have
    matched, in walk order, up to (not including) `before`, where that walk stopped; at most as
    many as wanted."""
    terms, params = _walk_terms(query, watermark)
    terms.append(postgres_schema.LONG_INDEX_PREDICATE)
    if before is not None:
        terms.append("(ts_ns, id) > (%s, %s)" if _descending(query) else "(ts_ns, id) < (%s, %s)")
        params.extend(before)
    terms.append("search LIKE %s")
    params.append(_walk_pattern(query))
    sql = f"SELECT ts_ns, id FROM records {where(terms)} {_walk_order(query)} LIMIT %s"
    return sql, [*params, _wanted(query)]


def _descending(query: base.Query) -> bool:
    return query.tail is not None or query.order == "desc"


def _wanted(query: base.Query) -> int:
    return query.tail if query.tail is not None else query.limit


def _walk_pattern(query: base.Query) -> str:
    assert query.text is not None
    return phrase_pattern(base.text_tokens(query.text))


def _walk_order(query: base.Query) -> str:
    direction = " DESC" if _descending(query) else ""
    return f"ORDER BY ts_ns{direction}, id{direction}"


def _walk_terms(query: base.Query, watermark: int) -> tuple[list[str], Params]:
    terms, params = filters(query, text=False)
    terms.append("id <= %s")
    params.append(watermark)
    if query.after is not None:
        upward = query.tail is not None or query.order == "asc"
        terms.append("(ts_ns, id) > (%s, %s)" if upward else "(ts_ns, id) < (%s, %s)")
        params.extend(query.after)
    return terms, params


def walks_words_index(query: base.Query) -> bool:
    """Whether every filter of the query (but its text) is one the walk index holds: a workload,
    and times."""
    return (
        query.namespace is not None
        and query.kind is not None
        and query.workload is not None
        and query.pod is None
        and not query.containers
        and not query.streams
        and not query.levels
        and query.min_level is None
        and query.execution_id is None
        and query.restart is None
        and not query.sources
    )


def rows_by_key(keys: list[tuple[int, int]]) -> tuple[str, Params]:
    """The full rows of `keys` ((ts_ns, id) pairs, at least one), in no particular order; the
    time bounds let PostgreSQL skip day partitions none of them is in."""
    sql = f"SELECT {SELECT_COLUMNS} FROM records WHERE id = ANY(%s) AND ts_ns >= %s AND ts_ns <= %s"
    times = [ts for ts, _ in keys]
    return sql, [[record_id for _, record_id in keys], min(times), max(times)]


def drops_filters(query: base.Query) -> tuple[list[str], list[Any]]:
    terms: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("namespace", query.namespace),
        ("kind", query.kind),
        ("workload", query.workload),
        ("pod", query.pod),
    ):
        if value is not None:
            terms.append(f"{column} = %s")
            params.append(value)
    if query.containers:
        terms.append("container = ANY(%s)")
        params.append(list(query.containers))
    return terms, params
