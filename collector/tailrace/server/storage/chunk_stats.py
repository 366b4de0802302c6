"""Folding the records picked out of chunks into the stats rows `contract_rows.stats` reads.

Both stores (SQLite and PostgreSQL) keep records in the same chunks (`chunks.Chunk`), so
the fold is one: each store only finds the chunks and the records of each that match.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tailrace import conventions, records
from tailrace.server.storage import chunks

_LEVELS = conventions.LEVELS


class StatsGroups:
    """Counts per (level, execution, container, namespace, kind, workload, pod): n, truncated,
    split, bytes, last ts."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[tuple[Any, ...], list[int]] = {}

    def add(self, chunk: chunks.Chunk, picked: Iterable[int]) -> None:
        """Count the records `picked` (indexes) of `chunk`."""
        groups = self._groups
        o = chunk.origin
        levels, flags, length, ts = chunk.levels, chunk.flags, chunk.length, chunk.ts
        executions = chunk.executions()
        for i in picked:
            key = (levels[i], executions.get(i, "") if executions else "")
            group = groups.get((*key, o.container, o.namespace, o.kind, o.workload, o.pod))
            if group is None:
                group = [0, 0, 0, 0, ts[i]]
                groups[(*key, o.container, o.namespace, o.kind, o.workload, o.pod)] = group
            group[0] += 1
            group[1] += bool(flags[i] & records.FLAG_TRUNCATED)
            group[2] += bool(flags[i] & records.FLAG_SPLIT)
            group[3] += length(i)
            group[4] = max(group[4], ts[i])

    def rows(self) -> list[tuple[Any, ...]]:
        """(level, container, execution, namespace, kind, workload, pod, n, truncated, split,
        bytes, last ts), as `contract_rows.stats` folds them."""
        return [
            (_LEVELS[level], container, execution, namespace, kind, workload, pod, *figures)
            for (level, execution, container, namespace, kind, workload, pod), figures in (
                self._groups.items()
            )
        ]
