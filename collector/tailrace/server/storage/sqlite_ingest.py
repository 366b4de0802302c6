"""Appending to the SQLite store: records grouped into chunks, written in one transaction.

An append turns each batch's new records into runs of one origin, cuts the runs into chunks
(`chunks.split`), and writes per chunk one `chunks` row, one FTS5 document and its
execution ids, with the sources' new high-water marks, dropped-line counts and the totals, in the
caller's transaction. Per record, Python only reads the fields into columns and stamps ids; the
b-trees see one row per chunk.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tailrace import conventions
from tailrace.server.storage import base, chunks, sqlite_attribution

_LEVEL_RANK = conventions.LEVEL_RANK
_INSERT_CHUNK = (
    "INSERT INTO chunks (id, n, min_ts, max_ts, received_ns, origin, pod_ref, workload_ref, "
    "levels, live, size, dead, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)"
)
_INSERT_FTS = "INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)"
_INSERT_EXECUTION = "INSERT OR IGNORE INTO chunk_executions VALUES (?, ?)"


@dataclass(slots=True)
class ChunkWriter:
    """Chunk rows gathered for one transaction, written by `flush` with one statement each."""

    chunks: list[tuple[Any, ...]] = field(default_factory=list)
    documents: list[tuple[int, str]] = field(default_factory=list)
    executions: list[tuple[str, int]] = field(default_factory=list)
    records: int = 0
    size: int = 0

    def add(
        self,
        first_id: int,
        chunk: Sequence[base.NewRecord],
        received_ns: int,
        refs: tuple[int, int, int],
    ) -> None:
        """One chunk: records of one origin (`refs`: origin, pod_ref, workload_ref) that get the
        ids first_id, first_id + 1, ..."""
        origin, pod_ref, workload_ref = refs
        encoded = chunks.encode(chunk)
        n = len(chunk)
        self.chunks.append(
            (
                first_id,
                n,
                encoded.min_ts,
                encoded.max_ts,
                received_ns,
                origin,
                pod_ref,
                workload_ref,
                encoded.levels,
                n,
                encoded.size,
                encoded.data,
            )
        )
        self.documents.append((first_id, chunks.fts_text(encoded.messages, workload_ref)))
        self.executions.extend((execution, first_id) for execution in encoded.executions)
        self.records += n
        self.size += encoded.size

    def flush(self, conn: sqlite3.Connection) -> None:
        if self.chunks:
            conn.executemany(_INSERT_CHUNK, self.chunks)
            conn.executemany(_INSERT_FTS, self.documents)
        if self.executions:
            conn.executemany(_INSERT_EXECUTION, self.executions)
        self.chunks.clear()
        self.documents.clear()
        self.executions.clear()


def add_totals(conn: sqlite3.Connection, rows: int, size: int) -> None:
    conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + "
        "(CASE key WHEN 'rows' THEN ? ELSE ? END) WHERE key IN ('rows', 'bytes')",
        (rows, size),
    )


@dataclass(slots=True)
class Appender:
    """One append's work inside the writer's transaction; `next_id` is the next free id."""

    conn: sqlite3.Connection
    refs: sqlite_attribution.Refs
    offsets: dict[str, int]  # the writer's cache of durable marks, updated as marks move
    next_id: int
    now: int
    writer: ChunkWriter = field(default_factory=ChunkWriter)

    def append(self, batches: Sequence[base.IngestBatch]) -> base.AppendResult:
        conn = self.conn
        attribution = sqlite_attribution.Attribution(conn)
        stored: list[base.StoredRecord] = []
        drops: list[tuple[Any, ...]] = []
        marks: dict[str, int] = {}
        duplicates = filtered = 0
        for batch in batches:
            keyed = bool(batch.source_key)
            mark = self._mark(batch.source_key) if keyed else -1
            records = batch.records
            if keyed:
                ends = batch.end_offsets
                fresh = [r for r, end in zip(records, ends, strict=True) if end > mark]
                duplicates += len(records) - len(fresh)
                records = fresh
            runs = [records] if batch.one_origin and records else chunks.runs(records)
            for run in runs:
                first = run[0]
                rank = attribution.resolve(first)
                if rank is None:
                    filtered += len(run)
                    continue
                if rank:
                    admitted = [r for r in run if _LEVEL_RANK.get(r.level, 2) >= rank]
                    filtered += len(run) - len(admitted)
                    run = admitted
                    if not run:
                        continue
                refs = self._refs(first, chunks.odd_stream(first.stream))
                stamped = self._stamp(run, first.kind, first.workload, first.workload_uid)
                for chunk in chunks.split(stamped):
                    self.writer.add(chunk[0].id, chunk, self.now, refs)
                stored.extend(stamped)
            if not keyed:
                continue
            new_mark = max(mark, batch.covered_offset, *batch.end_offsets)
            if batch.dropped_lines and new_mark > mark:
                probe = batch.attribution_probe()
                attribution.resolve(probe)
                drops.append(batch.drops_row(probe))
            marks[batch.source_key] = new_mark
            self.offsets[batch.source_key] = new_mark
        if drops:
            conn.executemany("INSERT INTO drops VALUES (?, ?, ?, ?, ?, ?, ?)", drops)
        if marks:
            conn.executemany(
                "INSERT INTO sources VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "durable_offset = excluded.durable_offset, updated_ns = excluded.updated_ns",
                [(key, mark, self.now) for key, mark in marks.items()],
            )
        return base.AppendResult(stored, duplicates, marks, filtered)

    def finish(self) -> None:
        """Write the chunks gathered, the next id and the totals."""
        writer = self.writer
        if not writer.records:
            return
        writer.flush(self.conn)
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (str(self.next_id),))
        add_totals(self.conn, writer.records, writer.size)

    def _stamp(
        self, run: list[base.NewRecord], kind: str, workload: str, workload_uid: str
    ) -> list[base.StoredRecord]:
        """The records of `run` with their ids and workload (ingest's own objects when they are
        `StoredRecord`s already)."""
        record_id, now = self.next_id, self.now
        stored_type = base.StoredRecord
        out: list[base.StoredRecord] = []
        for record in run:
            if type(record) is stored_type:
                record.id = record_id
                record.received_ns = now
            else:
                record = base.stamp(record, record_id, now)
            record.kind, record.workload, record.workload_uid = kind, workload, workload_uid
            out.append(record)
            record_id += 1
        self.next_id = record_id
        return out

    def _refs(self, record: base.NewRecord, odd_stream: str) -> tuple[int, int, int]:
        conn, refs = self.conn, self.refs
        pod_ref = refs.pod(conn, record.namespace, record.pod)
        workload_ref = refs.workload(conn, record.namespace, record.kind, record.workload)
        refs.pair(conn, workload_ref, pod_ref)
        origin = refs.origin(conn, (*chunks.origin_of(record), odd_stream))
        return origin, pod_ref, workload_ref

    def _mark(self, key: str) -> int:
        mark = self.offsets.get(key)
        if mark is None:
            row = self.conn.execute(
                "SELECT durable_offset FROM sources WHERE key = ?", (key,)
            ).fetchone()
            mark = row[0] if row else 0
            self.offsets[key] = mark
        return mark
