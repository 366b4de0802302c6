"""One PostgreSQL append: high-water marks, attribution, id allocation and COPY in a transaction.

The `sources` rows of the batch's keys are locked first (created if missing, then `SELECT ... FOR
UPDATE`, in key order so concurrent appends never deadlock): a resend reaching two replicas at once
waits here for the first to commit and then finds the mark already past it. Records are attributed
to workloads from the pods registry and filtered by the workload's `spec.logs`, exactly as the
SQLite store does, then get a block of ids from `allocate_ids`, are cut into chunks of one origin
(`chunks.runs` and `split`) and go in as chunk rows with one binary COPY.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import psycopg

from tailrace import conventions
from tailrace.server.storage import base, chunks, postgres_chunks


async def append(
    conn: psycopg.AsyncConnection[Any],
    batches: Sequence[base.IngestBatch],
    now: int,
    channel: str,
) -> base.AppendResult:
    """Store what is new in `batches` in one transaction; NOTIFY `channel` when rows went in."""
    keys = sorted({b.source_key for b in batches if b.source_key})
    async with conn.transaction():
        marks = await _lock_marks(conn, keys)
        before = dict(marks)
        attribution = _Attribution(conn)
        runs: list[list[base.NewRecord]] = []
        drops: list[tuple[Any, ...]] = []
        duplicates = filtered = 0
        for batch in batches:
            keyed = bool(batch.source_key)
            mark = marks.get(batch.source_key, 0) if keyed else -1
            kept: list[base.NewRecord] = []
            for index, record in enumerate(batch.records):
                if keyed and batch.end_offsets[index] <= mark:
                    duplicates += 1
                    continue
                hit, rank = attribution.known(record)
                if not hit:
                    rank = await attribution.resolve(record)
                if rank is None or conventions.LEVEL_RANK.get(record.level, 2) < rank:
                    filtered += 1
                    continue
                kept.append(record)
            if kept:
                runs.extend([kept] if batch.one_origin else chunks.runs(kept))
            if not keyed:
                continue
            new_mark = max(mark, batch.covered_offset, *batch.end_offsets)
            if batch.dropped_lines and new_mark > mark:
                drops.append(await _drop_row(attribution, batch))
            marks[batch.source_key] = new_mark
        stored: list[base.StoredRecord] = []
        if runs:
            cursor = await conn.execute("SELECT allocate_ids(%s)", (sum(map(len, runs)),))
            row = await cursor.fetchone()
            assert row is not None
            rows: list[tuple[Any, ...]] = []
            next_id = int(row[0])
            for run in runs:
                stamped = _stamp(run, next_id, now)
                next_id += len(stamped)
                rows.extend(map(postgres_chunks.row, chunks.split(stamped)))
                stored.extend(stamped)
            await postgres_chunks.copy(conn, rows)
        if drops:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO drops VALUES (%s, %s, %s, %s, %s, %s, %s)", drops
                )
        changed = [(key, mark, now) for key, mark in marks.items() if mark != before.get(key)]
        if changed:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "UPDATE sources SET durable_offset = %s, updated_ns = %s WHERE key = %s",
                    [(mark, ts, key) for key, mark, ts in changed],
                )
        if stored:
            await conn.execute("SELECT pg_notify(%s, '')", (channel,))
    return base.AppendResult(stored, duplicates, {k: marks[k] for k in keys}, filtered)


def _stamp(run: list[base.NewRecord], first_id: int, now: int) -> list[base.StoredRecord]:
    """The records of `run` with the ids first_id, first_id + 1, ... (ingest's own objects when
    they are `StoredRecord`s already)."""
    stored_type = base.StoredRecord
    out: list[base.StoredRecord] = []
    record_id = first_id
    for record in run:
        if type(record) is stored_type:
            record.id = record_id
            record.received_ns = now
        else:
            record = base.stamp(record, record_id, now)
        out.append(record)
        record_id += 1
    return out


async def _lock_marks(conn: psycopg.AsyncConnection[Any], keys: list[str]) -> dict[str, int]:
    """Lock the high-water mark rows of `keys` (in key order, so appends never deadlock)."""
    if not keys:
        return {}
    async with conn.cursor() as cur:
        await cur.execute(
            "INSERT INTO sources (key, durable_offset, updated_ns) "
            "SELECT k, 0, 0 FROM unnest(%s::text[]) AS k ORDER BY k ON CONFLICT (key) DO NOTHING",
            (keys,),
        )
        await cur.execute(
            "SELECT key, durable_offset FROM sources WHERE key = ANY(%s) ORDER BY key FOR UPDATE",
            (keys,),
        )
        return {key: int(mark) for key, mark in await cur.fetchall()}


class _Attribution:
    """Resolves each record's workload (and what its spec admits) once per pod per append."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn
        self._pods: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        self._workloads: dict[tuple[str, str, str], tuple[str, int | None] | None] = {}
        # Per (namespace, pod, pod_uid, kind, workload, workload_uid) as a record arrives: what
        # `resolve` filled in and returned, so the records after the first skip the awaits.
        self._seen: dict[tuple[str, ...], tuple[str, str, str, int | None]] = {}

    def known(self, record: base.NewRecord) -> tuple[bool, int | None]:
        """`resolve` without I/O for a record like one seen before: (False, 0) otherwise."""
        seen = self._seen.get(
            (
                record.namespace,
                record.pod,
                record.pod_uid,
                record.kind,
                record.workload,
                record.workload_uid,
            )
        )
        if seen is None:
            return False, 0
        record.kind, record.workload, record.workload_uid, rank = seen
        return True, rank

    async def resolve(self, record: base.NewRecord) -> int | None:
        """Fill the record's workload fields; the lowest level rank it admits (None: nothing)."""
        arrived = (
            record.namespace,
            record.pod,
            record.pod_uid,
            record.kind,
            record.workload,
            record.workload_uid,
        )
        rank = await self._resolve(record)
        self._seen[arrived] = (record.kind, record.workload, record.workload_uid, rank)
        return rank

    async def _resolve(self, record: base.NewRecord) -> int | None:
        if not record.kind:
            owner = await self._owner(record.namespace, record.pod, record.pod_uid)
            if owner is None:
                return 0
            record.kind, record.workload = owner
        found = await self._workload((record.namespace, record.kind, record.workload))
        if found is None:
            return 0
        uid, rank = found
        if not record.workload_uid:
            record.workload_uid = uid
        return rank

    async def _owner(self, namespace: str, pod: str, pod_uid: str) -> tuple[str, str] | None:
        key = (namespace, pod, pod_uid)
        if key not in self._pods:
            cursor = await self._conn.execute(
                "SELECT uid, workload_kind, workload_name FROM pods "
                "WHERE namespace = %s AND name = %s",
                (namespace, pod),
            )
            row = await cursor.fetchone()
            owner = None
            if row and row[1] and (not row[0] or not pod_uid or row[0] == pod_uid):
                owner = (row[1], row[2])
            self._pods[key] = owner
        return self._pods[key]

    async def _workload(self, key: tuple[str, str, str]) -> tuple[str, int | None] | None:
        if key not in self._workloads:
            cursor = await self._conn.execute(
                "SELECT uid, spec FROM workloads WHERE namespace = %s AND kind = %s AND name = %s",
                key,
            )
            row = await cursor.fetchone()
            self._workloads[key] = (
                (row[0], base.admitted_rank(orjson.loads(row[1]))) if row else None
            )
        return self._workloads[key]


async def _drop_row(attribution: _Attribution, batch: base.IngestBatch) -> tuple[Any, ...]:
    probe = batch.attribution_probe()
    await attribution.resolve(probe)
    return batch.drops_row(probe)
