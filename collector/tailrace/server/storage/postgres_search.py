"""How a PostgreSQL text search is run: walk the scope in time order, or go through the word index.

A `limit=100` search for a word in 1 % of a workload's rows is the shape the planner gets wrong. Its
plan intersects the word's GIN bitmap with the workload's B-tree bitmap, which reads every entry of
both (the word's 100,000 rows and the workload's 250,000 at ten million rows: 250 ms and more),
while walking the workload's (ts_ns, id) index newest first and testing each row's words finds the
100 newest in about 10,000 rows. Which one wins depends on how common the word is, and PostgreSQL
keeps that at hand: ANALYZE stores the most common lexemes of the word index (`records_search`)
with their frequencies, per day partition. `WordFrequencies` reads them (once a minute at most), and
`should_walk` says walk when the rarest word of the query is common enough for the wanted rows to
come within `WALK_EXPECTED` rows; rarer words (a word ANALYZE did not list is rarer than every
listed one) go through the word index as before. The walk is bounded (`postgres_sql.walk`): when
the word turns out rarer in this scope than overall, or other filters thin it out, the store goes
on past the last walked row through the word index, so a wrong guess costs one bounded walk.

A workload's walk reads the walk index (migration 3: the workload's rows in time order with their
tokens, for rows whose tokens fit a B-tree entry) with an index-only scan, about 8,000 rows in 190
index pages instead of 8,000 heap pages, then the same stretch's long rows through their own
index, then the page's full rows by key.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import psycopg

from tailrace.server.storage import base

# A walk is chosen when the wanted rows are expected within WALK_EXPECTED rows of the scope
# (about 2.5 us of PostgreSQL time per row on the 2-core test machine), and reads at most
# WALK_ROWS rows before the word index takes over.
WALK_EXPECTED: Final = 20_000
WALK_ROWS: Final = 30_000
# Statistics change when (auto)ANALYZE runs; re-reading them once a minute is plenty.
REFRESH_S: Final = 60.0

_STATS_SQL: Final = """
SELECT greatest(c.reltuples, 0)::float8, s.most_common_elems::text::text[],
       s.most_common_elem_freqs
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  LEFT JOIN pg_stats s ON s.schemaname = %s AND s.tablename = c.relname
 WHERE i.inhparent = to_regclass(%s)
"""


@dataclass(frozen=True, slots=True)
class Frequencies:
    """The fraction of all rows holding each common word (words absent are rarer)."""

    by_word: Mapping[str, float]

    def of(self, word: str) -> float:
        return self.by_word.get(word, 0.0)


def combine(partitions: list[tuple[float, list[str] | None, list[float] | None]]) -> Frequencies:
    """Row-weighted frequencies over partitions: (rows, most common lexemes, their frequencies).

    The frequency array ends with two extra numbers (the lowest and highest frequency); a
    partition ANALYZE has not reached yet counts with its rows and no words.
    """
    total = sum(rows for rows, _, _ in partitions)
    weighted: dict[str, float] = {}
    if total <= 0:
        return Frequencies(weighted)
    for rows, words, freqs in partitions:
        if not words or not freqs:
            continue
        for word, freq in zip(words, freqs, strict=False):
            weighted[word] = weighted.get(word, 0.0) + freq * rows / total
    return Frequencies(weighted)


class WordFrequencies:
    """The word index's statistics for one schema, re-read at most every `REFRESH_S`."""

    def __init__(self, schema: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._schema = schema
        self._clock = clock
        self._current: Frequencies | None = None
        self._read_at = 0.0

    async def get(self, conn: psycopg.AsyncConnection[Any]) -> Frequencies:
        now = self._clock()
        if self._current is None or now - self._read_at >= REFRESH_S:
            cursor = await conn.execute(
                _STATS_SQL, (self._schema, f'"{self._schema}".records_search')
            )
            self._current = combine(
                [(float(rows), words, freqs) for rows, words, freqs in await cursor.fetchall()]
            )
            self._read_at = now
        return self._current


def should_walk(query: base.Query, frequencies: Frequencies) -> bool:
    """Whether the query's wanted rows are expected within `WALK_EXPECTED` rows of its scope."""
    if query.text is None or query.after_id is not None:
        return False
    tokens = base.text_tokens(query.text)
    if not tokens:
        return False
    wanted = query.tail if query.tail is not None else query.limit
    rarest = min(frequencies.of(token) for token in tokens)
    return rarest > 0 and wanted <= rarest * WALK_EXPECTED
