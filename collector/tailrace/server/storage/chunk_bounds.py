"""The id and time bounds of a query over chunks, as SQL terms for either store, and the WHERE
clause both stores build their statements with.

Both stores keep the same chunk columns (id, n, min_ts, max_ts) and walk them through the same
pair of (max_ts, min_ts) / (min_ts, max_ts) indexes, so the bounds a page puts on them are one;
only the parameter placeholder differs (`?` for SQLite, `%s` for psycopg).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tailrace.server.storage import base, chunks

SPAN = chunks.CHUNK_SPAN_NS


@dataclass(slots=True)
class Where:
    """A WHERE clause being built: terms joined by AND, their parameters in order."""

    terms: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, term: str, *params: Any) -> None:
        self.terms.append(term)
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.terms) if self.terms else "true"


def add_after_id(w: Where, after_id: int, *, mark: str) -> None:
    """Chunks holding an id above `after_id`; a chunk has at most CHUNK_RECORDS records."""
    w.add(
        f"id > {mark} AND id + n > {mark}",
        after_id - chunks.CHUNK_RECORDS,
        after_id + 1,
    )


def add_time_bounds(
    w: Where, query: base.Query, *, paging: bool, descending: bool, mark: str
) -> None:
    """Time bounds in page order: the leading bound is a range on the walked index, widened by
    the span a chunk may cover; the other column of the index narrows within it."""
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
            w.add(f"max_ts < {mark} AND min_ts < {mark}", high + SPAN, high)
        if low is not None:
            w.add(f"max_ts >= {mark}", low)
    else:
        if low is not None:
            w.add(f"min_ts >= {mark} AND max_ts >= {mark}", low - SPAN, low)
        if high is not None:
            w.add(f"min_ts < {mark}", high)
