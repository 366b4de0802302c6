"""The PostgreSQL store's chunk rows: records many to a row, as in the SQLite store (ADR 0013).

A row of `chunks` holds up to `chunks.CHUNK_RECORDS` consecutive records of one origin
(the same blob, `chunks.encode`), the origin's fields as columns (what the scope B-trees
and the planner need), and two arrays for the GIN indexes: the chunk's distinct words and its
execution ids. A query asks `words @> ARRAY[...]` for candidates; `sqlite_query.RecordTest`
decides on each record with the exact token semantics of `base.record_filter`.

Words longer than `WORD_BYTES_MAX` are left out of `words` (a GIN entry must stay well below
PostgreSQL's ~2.7 KB limit, and such words are rare): a query leaves its long words out of the
`@>` too and the record test alone checks them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import psycopg

from tailrace.server.storage import base, chunks

WORD_BYTES_MAX: Final = 256

# The columns a chunk row is written with, in COPY order, and their binary COPY types.
COLUMNS: Final = (
    "id",
    "n",
    "min_ts",
    "max_ts",
    "received_ns",
    *chunks.ORIGIN_FIELDS,
    "stream",
    "levels",
    "live",
    "size",
    "dead",
    "executions",
    "words",
    "data",
)
_COPY_TYPES: Final = (
    "int8",
    "int4",
    "int8",
    "int8",
    "int8",
    *("int4" if field == "restart" else "text" for field in chunks.ORIGIN_FIELDS),
    "text",
    "int4",
    "int4",
    "int8",
    "bytea",
    "text[]",
    "text[]",
    "bytea",
)
_COPY_SQL: Final = f"COPY chunks ({', '.join(COLUMNS)}) FROM STDIN (FORMAT BINARY)"

# What a read selects (`decode` takes it apart), with or without the blob.
READ_COLUMNS: Final = (
    f"id, n, min_ts, max_ts, received_ns, {', '.join(chunks.ORIGIN_FIELDS)}, stream, "
    "dead, live, size"
)
ID, N, MIN_TS, MAX_TS = 0, 1, 2, 3
_ORIGIN = slice(5, 16)  # the origin fields and the stream
DEAD, LIVE, SIZE, DATA = 16, 17, 18, 19

# ASCII letters and digits to themselves (upper case folded), every other byte to a space: the
# tokens of `base.text_tokens` for ASCII text, about four times faster than its expression.
_ASCII_TOKENS: Final = bytes(
    (c + 32 if 65 <= c <= 90 else c) if chr(c).isascii() and chr(c).isalnum() else 32
    for c in range(256)
)


def words(messages: Sequence[str]) -> list[str]:
    """The distinct tokens of `messages` that are short enough to index."""
    text = "\n".join(messages)
    if text.isascii():
        tokens = set(text.encode().translate(_ASCII_TOKENS).split())
        return [token.decode() for token in tokens if len(token) <= WORD_BYTES_MAX]
    return [word for word in set(base.text_tokens(text)) if len(word.encode()) <= WORD_BYTES_MAX]


def query_words(tokens: Sequence[str]) -> list[str]:
    """The tokens of a query a chunk holding them all must list in `words`."""
    return sorted({token for token in tokens if len(token.encode()) <= WORD_BYTES_MAX})


def without_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL (the blob, bytea, keeps the original).
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def row(chunk: Sequence[base.StoredRecord]) -> tuple[Any, ...]:
    """The `chunks` row (in `COLUMNS` order) of records of one origin with consecutive ids."""
    first = chunk[0]
    encoded = chunks.encode(chunk)
    origin = [
        without_nul(value) if isinstance(value, str) else value for value in chunks.origin_of(first)
    ]
    return (
        first.id,
        len(chunk),
        encoded.min_ts,
        encoded.max_ts,
        first.received_ns,
        *origin,
        without_nul(chunks.odd_stream(first.stream)),
        encoded.levels,
        len(chunk),
        encoded.size,
        None,
        sorted(map(without_nul, encoded.executions)),
        words(encoded.messages),
        encoded.data,
    )


async def copy(conn: psycopg.AsyncConnection[Any], rows: Sequence[tuple[Any, ...]]) -> None:
    """Write chunk rows with one binary COPY."""
    async with conn.cursor().copy(_COPY_SQL) as writer:
        writer.set_types(list(_COPY_TYPES))
        for chunk_row in rows:
            await writer.write_row(chunk_row)


def decode(chunk_row: Sequence[Any]) -> chunks.Chunk:
    """The chunk of a row read with `READ_COLUMNS, data`."""
    return chunks.Chunk(
        chunk_row[ID],
        chunk_row[N],
        chunk_row[4],
        chunks.Origin(*chunk_row[_ORIGIN]),
        chunks.dead_bits(chunk_row[DEAD]),
        chunk_row[DATA],
    )
