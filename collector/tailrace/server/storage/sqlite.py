"""The embedded store: one SQLite file in WAL mode, FTS5 for text search.

Threads, because sqlite3 blocks: every write runs on one writer thread holding the one writing
connection (SQLite has a single writer anyway, and a thread of our own means no lock waits), and
reads run on a small pool of reader threads with their own connections, which WAL lets proceed while
a write is in progress. An in-memory database (`sqlite:///:memory:`) exists only inside its one
connection, so there every call goes through the writer thread.

An append is one transaction: the rows (executemany), their FTS5 entries (one INSERT ... SELECT over
the new id range) and the new high-water marks of their sources, so a crash can never store a line
without its mark or a mark without its line.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import orjson

from tailrace import conventions, records
from tailrace.server.storage import base, retention_policy, sqlite_query, sqlite_schema

T = TypeVar("T")

_READERS = 2
# Deletes run in chunks so that appends interleave with a long retention pass or DELETE.
_DELETE_CHUNK = 20_000

_INSERT = (
    "INSERT INTO records (id, ts_ns, received_ns, namespace, kind, workload, workload_uid, pod, "
    "pod_uid, container, container_id, restart, stream, level, message, execution_id, attrs, "
    "source, flags, size, pod_ref, workload_ref) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_WORKLOAD_REF = "SELECT id FROM workload_refs WHERE namespace = ? AND kind = ? AND workload = ?"
_WORKLOAD_SCOPE = f"workload_ref = ({_WORKLOAD_REF})"
# A word with fewer matches than this is searched from the FTS index outward (all matches, then
# order); a more common word from the scope's (ts_ns, id) index outward, chunk by chunk, asking the
# FTS index only about each chunk's id range. Either way the work stays near `limit` rows.
_FTS_DRIVEN_MAX = 5_000
_CHUNK_MAX = 16_384
# Below one match in this many rows, a chunk's matches come from FTS5 rather than its messages.
_DENSE_FRACTION = 8
_LEVEL_RANK = conventions.LEVEL_RANK
_LEVELS = conventions.LEVELS


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 10000")
    if path != ":memory:":
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a committed append survives a process crash; only an OS crash or
        # power loss may lose the last transactions (their offsets are then not acked either).
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoint every ~32 MiB of WAL rather than 4 MiB: hot index pages rewritten by many
        # appends reach the database file once per checkpoint, and fsyncs are fewer.
        conn.execute("PRAGMA wal_autocheckpoint = 8192")
        conn.execute("PRAGMA journal_size_limit = 67108864")
        conn.execute("PRAGMA mmap_size = 268435456")
    conn.execute("PRAGMA cache_size = -65536")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.create_function(
        sqlite_query.PHRASE_FUNCTION, 2, sqlite_query.has_phrase, deterministic=True
    )
    return conn


class SQLiteStore:
    def __init__(
        self,
        path: str,
        clock: Callable[[], int] = time.time_ns,
        fts_driven_max: int = _FTS_DRIVEN_MAX,
    ) -> None:
        self._path = path
        self._fts_driven_max = fts_driven_max
        self._clock = clock
        self._memory = path == ":memory:"
        self._writer: sqlite3.Connection | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._next_id = 1
        # Writer-thread caches of committed state: source marks and the integer scope refs.
        self._offsets: dict[str, int] = {}
        self._refs = _Refs()

    @property
    def path(self) -> str:
        return self._path

    # -- plumbing -------------------------------------------------------------------------------

    async def open(self) -> None:
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="tailrace-sqlite-writer")
        if not self._memory:
            self._read_pool = ThreadPoolExecutor(
                _READERS, thread_name_prefix="tailrace-sqlite-reader"
            )
        try:
            await self._write(self._open_writer)
        except (sqlite3.Error, OSError) as err:
            await self.close()
            raise base.StoreUnavailable(f"cannot open SQLite store {self._path}: {err}") from err

    def _open_writer(self, conn: sqlite3.Connection | None) -> None:
        conn = _connect(self._path)
        sqlite_schema.migrate(conn)
        conn.execute("BEGIN IMMEDIATE")
        now = str(self._clock())
        for key, value in (("instance_id", uuid.uuid4().hex), ("created_ns", now)):
            conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)",
            (str(sqlite_schema.CURRENT_VERSION),),
        )
        stored_next = conn.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
        (max_id,) = conn.execute("SELECT coalesce(max(id), 0) FROM records").fetchone()
        # next_id survives deleting the newest records, so ids never go back (live-tail cursors).
        self._next_id = max(int(stored_next[0]) if stored_next else 1, max_id + 1)
        if conn.execute("SELECT 1 FROM meta WHERE key = 'rows'").fetchone() is None:
            rows, size = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0) FROM records"
            ).fetchone()
            conn.execute(
                "INSERT INTO meta VALUES ('rows', ?), ('bytes', ?)", (str(rows), str(size))
            )
        conn.execute("COMMIT")
        self._writer = conn

    async def close(self) -> None:
        pools = [p for p in (self._write_pool, self._read_pool) if p is not None]
        self._write_pool = self._read_pool = None
        for pool in pools:
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown, True)
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        pool = self._write_pool
        if pool is None:
            raise base.StoreUnavailable("the SQLite store is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._run_write, work)

    def _run_write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._writer
        if conn is None and work != self._open_writer:
            raise base.StoreUnavailable("the SQLite store is closed")
        try:
            return work(conn)  # type: ignore[arg-type]
        except sqlite3.OperationalError as err:
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise base.StoreUnavailable(f"SQLite: {err}") from err
        except BaseException:
            if conn is not None and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._memory:
            return await self._write(work)
        pool = self._read_pool
        if pool is None:
            raise base.StoreUnavailable("the SQLite store is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._run_read, work)

    def _run_read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self._path)
            conn.execute("PRAGMA query_only = 1")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        try:
            return work(conn)
        except sqlite3.OperationalError as err:
            raise base.StoreUnavailable(f"SQLite: {err}") from err

    # -- ingest ---------------------------------------------------------------------------------

    async def append(self, batches: Sequence[base.IngestBatch]) -> base.AppendResult:
        return await self._write(lambda conn: self._append(conn, batches))

    async def append_records(self, records: Sequence[base.NewRecord]) -> list[base.StoredRecord]:
        batch = base.IngestBatch("", list(records), [], 0)
        result = await self._write(lambda conn: self._append(conn, [batch]))
        return result.stored

    def _append(
        self, conn: sqlite3.Connection, batches: Sequence[base.IngestBatch]
    ) -> base.AppendResult:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = self._append_in_transaction(conn, batches)
            conn.execute("COMMIT")
        except BaseException:
            # The marks and refs cached while appending were never made durable.
            self._offsets.clear()
            self._refs.forget()
            raise
        self._next_id += len(result.stored)
        return result

    def _append_in_transaction(
        self, conn: sqlite3.Connection, batches: Sequence[base.IngestBatch]
    ) -> base.AppendResult:
        now = self._clock()
        attribution = _Attribution(conn)
        refs = self._refs
        stored: list[base.StoredRecord] = []
        rows: list[tuple[Any, ...]] = []
        drops: list[tuple[Any, ...]] = []
        marks: dict[str, int] = {}
        duplicates = filtered = 0
        next_id = first_id = self._next_id
        stored_type = base.StoredRecord
        last_key: tuple[str, ...] | None = None
        resolved: tuple[str, str, str] = ("", "", "")
        rank: int | None = 0
        pod_ref = workload_ref = 0
        for batch in batches:
            keyed = bool(batch.source_key)
            mark = self._mark(conn, batch.source_key) if keyed else -1
            ends = batch.end_offsets
            for index, record in enumerate(batch.records):
                if keyed and ends[index] <= mark:
                    duplicates += 1
                    continue
                # Records of one batch share their pod and workload: resolve them once.
                key = (
                    record.namespace,
                    record.pod,
                    record.pod_uid,
                    record.kind,
                    record.workload,
                    record.workload_uid,
                )
                if key != last_key:
                    last_key = key
                    rank = attribution.resolve(record)
                    resolved = (record.kind, record.workload, record.workload_uid)
                    pod_ref = refs.pod(conn, record.namespace, record.pod)
                    workload_ref = refs.workload(
                        conn, record.namespace, record.kind, record.workload
                    )
                else:
                    record.kind, record.workload, record.workload_uid = resolved
                level = _LEVEL_RANK.get(record.level, 2)
                if rank is None or level < rank:
                    filtered += 1
                    continue
                message = record.message
                rows.append(
                    (
                        next_id,
                        record.ts_ns,
                        now,
                        record.namespace,
                        resolved[0],
                        resolved[1],
                        resolved[2],
                        record.pod,
                        record.pod_uid,
                        record.container,
                        record.container_id,
                        record.restart,
                        record.stream,
                        level,
                        message,
                        record.execution_id,
                        orjson.dumps(record.attrs) if record.attrs else None,
                        record.source,
                        record.flags,
                        len(message) if message.isascii() else len(message.encode()),
                        pod_ref,
                        workload_ref,
                    )
                )
                if type(record) is stored_type:
                    record.id = next_id
                    record.received_ns = now
                    stored.append(record)
                else:
                    stored.append(base.stamp(record, next_id, now))
                next_id += 1
            if not keyed:
                continue
            new_mark = max(mark, batch.covered_offset, *batch.end_offsets)
            if batch.dropped_lines and new_mark > mark:
                probe = base.NewRecord(
                    ts_ns=0,
                    namespace=batch.namespace,
                    pod=batch.pod,
                    container=batch.container,
                    stream="stdout",
                    level="INFO",
                    message="",
                    kind=batch.kind,
                    workload=batch.workload,
                    pod_uid=batch.pod_uid,
                )
                attribution.resolve(probe)
                drops.append(
                    (
                        probe.namespace,
                        probe.kind,
                        probe.workload,
                        probe.pod,
                        probe.pod_uid,
                        probe.container,
                        batch.dropped_lines,
                    )
                )
            marks[batch.source_key] = new_mark
            self._offsets[batch.source_key] = new_mark
        if rows:
            conn.executemany(_INSERT, rows)
            conn.execute(
                "INSERT INTO records_fts (rowid, message) "
                "SELECT id, message FROM records WHERE id >= ? AND id < ?",
                (first_id, next_id),
            )
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('next_id', ?)", (str(next_id),))
            _add_totals(conn, len(rows), sum(row[19] for row in rows))
        if drops:
            conn.executemany("INSERT INTO drops VALUES (?, ?, ?, ?, ?, ?, ?)", drops)
        if marks:
            conn.executemany(
                "INSERT INTO sources VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "durable_offset = excluded.durable_offset, updated_ns = excluded.updated_ns",
                [(key, mark, now) for key, mark in marks.items()],
            )
        return base.AppendResult(stored, duplicates, marks, filtered)

    def _mark(self, conn: sqlite3.Connection, key: str) -> int:
        mark = self._offsets.get(key)
        if mark is None:
            row = conn.execute(
                "SELECT durable_offset FROM sources WHERE key = ?", (key,)
            ).fetchone()
            mark = row[0] if row else 0
            self._offsets[key] = mark
        return mark

    async def durable_offsets(self, keys: Sequence[str]) -> dict[str, int]:
        def work(conn: sqlite3.Connection) -> dict[str, int]:
            found: dict[str, int] = {}
            for chunk in _chunks(list(keys), 500):
                marks = ", ".join("?" for _ in chunk)
                found.update(
                    conn.execute(
                        f"SELECT key, durable_offset FROM sources WHERE key IN ({marks})", chunk
                    ).fetchall()
                )
            return found

        return await self._read(work)

    # -- reading --------------------------------------------------------------------------------

    async def query(self, query: base.Query) -> list[base.StoredRecord]:
        base.check_query(query)
        if query.text is not None and query.after_id is None:
            return await self._read(lambda conn: _text_query(conn, query, self._fts_driven_max))
        sql, params, reverse = sqlite_query.select(query)

        def work(conn: sqlite3.Connection) -> list[base.StoredRecord]:
            found = [_record(row) for row in conn.execute(sql, params)]
            if reverse:
                found.reverse()
            return found

        return await self._read(work)

    async def count(self, query: base.Query) -> int:
        base.check_query(query)
        w = sqlite_query.where(query, paging=False)
        sql = f"SELECT count(*) FROM records WHERE {w.sql}"
        return await self._read(lambda conn: int(conn.execute(sql, w.params).fetchone()[0]))

    async def stats(self, query: base.Query) -> base.Stats:
        base.check_query(query)
        w = sqlite_query.where(query, paging=False)
        sql = (
            "SELECT level, container, execution_id, namespace, kind, workload, pod, count(*), "
            f"sum(flags & {records.FLAG_TRUNCATED} != 0), sum(flags & {records.FLAG_SPLIT} != 0), "
            "sum(size), max(ts_ns) "
            f"FROM records WHERE {w.sql} "
            "GROUP BY level, container, execution_id, namespace, kind, workload, pod"
        )
        d = _drops_where(query)
        drops_sql = f"SELECT coalesce(sum(lines), 0) FROM drops WHERE {d.sql}"

        def work(conn: sqlite3.Connection) -> base.Stats:
            groups = conn.execute(sql, w.params).fetchall()
            (dropped,) = conn.execute(drops_sql, d.params).fetchone()
            return _stats(groups, int(dropped))

        return await self._read(work)

    async def last_id(self) -> int:
        return await self._write(lambda conn: self._next_id - 1)

    async def totals(self) -> base.Totals:
        def work(conn: sqlite3.Connection) -> base.Totals:
            found = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('rows', 'bytes')"))
            return base.Totals(int(found.get("rows", 0)), int(found.get("bytes", 0)))

        return await self._read(work)

    # -- deleting -------------------------------------------------------------------------------

    async def delete(self, query: base.Query) -> int:
        base.check_query(query)
        w = sqlite_query.where(query, paging=False)
        return await self._delete_where(w.sql, w.params)

    async def _delete_where(self, sql: str, params: Sequence[Any]) -> int:
        total = 0
        select = f"SELECT id FROM records WHERE {sql} LIMIT {_DELETE_CHUNK}"
        while True:
            deleted = await self._write(lambda conn: _delete_chunk(conn, select, params))
            total += deleted
            if deleted < _DELETE_CHUNK:
                return total

    # -- registry -------------------------------------------------------------------------------

    async def put_workload(self, workload: base.Workload) -> None:
        key = workload.key

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO workloads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key.namespace,
                    key.kind,
                    key.name,
                    workload.uid,
                    orjson.dumps(workload.spec),
                    workload.generation,
                    workload.created_ns,
                    int(workload.deleted),
                ),
            )

        await self._write(work)

    async def get_workload(self, key: base.WorkloadKey) -> base.Workload | None:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT * FROM workloads WHERE namespace = ? AND kind = ? AND name = ?",
                (key.namespace, key.kind, key.name),
            ).fetchone()
        )
        return _workload(row) if row else None

    async def find_workload(self, namespace: str | None, ident: str) -> base.Workload | None:
        def work(conn: sqlite3.Connection) -> base.Workload | None:
            row = conn.execute(
                "SELECT * FROM workloads WHERE uid = ? AND NOT deleted LIMIT 1", (ident,)
            ).fetchone()
            if row:
                return _workload(row)
            if namespace is None:
                rows = conn.execute(
                    "SELECT * FROM workloads WHERE name = ? AND NOT deleted LIMIT 2", (ident,)
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT * FROM workloads WHERE name = ? AND namespace = ? AND NOT deleted "
                    "LIMIT 2",
                    (ident, namespace),
                ).fetchall()
            return _workload(rows[0]) if len(rows) == 1 else None

        return await self._read(work)

    async def list_workloads(self, namespace: str | None = None) -> list[base.Workload]:
        w = sqlite_query.Where()
        if namespace is not None:
            w.add("namespace = ?", namespace)
        sql = f"SELECT * FROM workloads WHERE {w.sql} ORDER BY namespace, kind, name"
        rows = await self._read(lambda conn: conn.execute(sql, w.params).fetchall())
        return [_workload(row) for row in rows]

    async def delete_workload(self, key: base.WorkloadKey) -> None:
        await self._write(
            lambda conn: conn.execute(
                "DELETE FROM workloads WHERE namespace = ? AND kind = ? AND name = ?",
                (key.namespace, key.kind, key.name),
            )
        )

    async def put_pod(self, pod: base.Pod) -> None:
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT OR REPLACE INTO pods VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pod.namespace,
                    pod.name,
                    pod.uid,
                    orjson.dumps(pod.labels),
                    pod.workload.kind if pod.workload else None,
                    pod.workload.name if pod.workload else None,
                    pod.phase,
                    orjson.dumps(pod.obj),
                ),
            )
            if pod.workload is not None:
                self._assign(conn, pod.namespace, pod.name, pod.workload, pod.uid)
            conn.execute("COMMIT")

        await self._write(work)

    async def assign_pod_workload(
        self, namespace: str, pod: str, workload: base.WorkloadKey, pod_uid: str = ""
    ) -> int:
        def work(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            updated = self._assign(conn, namespace, pod, workload, pod_uid)
            conn.execute("COMMIT")
            return updated

        return await self._write(work)

    def _assign(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        pod: str,
        workload: base.WorkloadKey,
        pod_uid: str,
    ) -> int:
        row = conn.execute(
            "SELECT uid FROM workloads WHERE namespace = ? AND kind = ? AND name = ?",
            _key_tuple(workload),
        ).fetchone()
        uid = row[0] if row else ""
        same_pod = "AND (pod_uid = ? OR pod_uid = '')" if pod_uid else ""
        extra = [pod_uid] if pod_uid else []
        try:
            ref = self._refs.workload(conn, namespace, workload.kind, workload.name)
            cursor = conn.execute(
                "UPDATE records SET kind = ?, workload = ?, workload_uid = ?, workload_ref = ? "
                "WHERE pod_ref = (SELECT id FROM pod_refs WHERE namespace = ? AND pod = ?) "
                f"AND kind = '' {same_pod}",
                [workload.kind, workload.name, uid, ref, namespace, pod, *extra],
            )
            conn.execute(
                "UPDATE drops SET kind = ?, workload = ? "
                f"WHERE namespace = ? AND pod = ? AND kind = '' {same_pod}",
                [workload.kind, workload.name, namespace, pod, *extra],
            )
        except BaseException:
            self._refs.forget()
            raise
        return cursor.rowcount

    async def get_pod(self, namespace: str, name: str) -> base.Pod | None:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT * FROM pods WHERE namespace = ? AND name = ?", (namespace, name)
            ).fetchone()
        )
        return _pod(row) if row else None

    async def list_pods(self, workload: base.WorkloadKey | None = None) -> list[base.Pod]:
        w = sqlite_query.Where()
        if workload is not None:
            w.add("namespace = ? AND kind = ? AND workload = ?", *_key_tuple(workload))
        sql = f"SELECT * FROM pods WHERE {w.sql} ORDER BY namespace, name"
        rows = await self._read(lambda conn: conn.execute(sql, w.params).fetchall())
        return [_pod(row) for row in rows]

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "DELETE FROM pods WHERE namespace = ? AND name = ?", (namespace, name)
            )
        )

    # -- retention ------------------------------------------------------------------------------

    async def apply_retention(self, now_ns: int) -> int:
        deleted = 0
        for workload in await self.list_workloads():
            try:
                policy = retention_policy.of_spec(workload.spec)
            except retention_policy.InvalidRetention:
                continue
            if policy.unlimited:
                continue
            scope = (workload.key.namespace, workload.key.kind, workload.key.name)
            cutoff = await self._read(
                functools.partial(_retention_cutoff, scope=scope, policy=policy, now_ns=now_ns)
            )
            if cutoff is None:
                continue
            deleted += await self._delete_where(
                f"{_WORKLOAD_SCOPE} AND (ts_ns, id) <= (?, ?)", [*scope, *cutoff]
            )
        return deleted

    async def meta(self) -> Mapping[str, str]:
        rows = await self._read(lambda conn: conn.execute("SELECT key, value FROM meta").fetchall())
        return {**dict(rows), "backend": "sqlite", "path": self._path}


def _text_query(
    conn: sqlite3.Connection, query: base.Query, fts_driven_max: int
) -> list[base.StoredRecord]:
    assert query.text is not None
    terms = sqlite_query.fts_terms(query.text)
    (matches,) = conn.execute(
        "SELECT count(*) FROM (SELECT rowid FROM records_fts WHERE records_fts MATCH ? LIMIT ?)",
        (terms, fts_driven_max),
    ).fetchone()
    if matches < fts_driven_max:
        sql, params, reverse = sqlite_query.select(query)
        found = [_record(row) for row in conn.execute(sql, params)]
        if reverse:
            found.reverse()
        return found
    return _text_query_by_chunks(conn, query, terms)


def _text_query_by_chunks(
    conn: sqlite3.Connection, query: base.Query, terms: str
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
    chunk = max(32, want + want // 4)
    position: tuple[int, int] | None = None
    dense = True
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
                    found.append(_record(row))
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
    marks = ", ".join("?" for _ in matched)
    by_id = {
        row[0]: row
        for row in conn.execute(
            f"SELECT {sqlite_query.COLUMNS} FROM records WHERE id IN ({marks})", matched
        )
    }
    found = []
    for record_id in matched:
        row = by_id[record_id]
        if len(tokens) > 1 and not sqlite_query.holds(row[14], tokens):
            continue
        found.append(_record(row))
        if len(found) == want:
            break
    return found


class _Refs:
    """The integer ids standing for (namespace, pod) and (namespace, kind, workload) in indexes."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], int] = {}
        self._workloads: dict[tuple[str, str, str], int] = {}

    def forget(self) -> None:
        # After a rollback a cached ref may name a row that was never committed.
        self._pods.clear()
        self._workloads.clear()

    def pod(self, conn: sqlite3.Connection, namespace: str, pod: str) -> int:
        key = (namespace, pod)
        ref = self._pods.get(key)
        if ref is None:
            ref = _ref(conn, "pod_refs", ("namespace", "pod"), key)
            self._pods[key] = ref
        return ref

    def workload(self, conn: sqlite3.Connection, namespace: str, kind: str, name: str) -> int:
        key = (namespace, kind, name)
        ref = self._workloads.get(key)
        if ref is None:
            ref = _ref(conn, "workload_refs", ("namespace", "kind", "workload"), key)
            self._workloads[key] = ref
        return ref


def _ref(
    conn: sqlite3.Connection, table: str, columns: tuple[str, ...], key: tuple[str, ...]
) -> int:
    match = " AND ".join(f"{column} = ?" for column in columns)
    row = conn.execute(f"SELECT id FROM {table} WHERE {match}", key).fetchone()
    if row:
        return int(row[0])
    marks = ", ".join("?" for _ in columns)
    cursor = conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", key)
    return int(cursor.lastrowid or 0)


class _Attribution:
    """Resolves each record's workload (and what its spec admits) once per pod per append."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pods: dict[tuple[str, str, str], tuple[str, str] | None] = {}
        self._workloads: dict[tuple[str, str, str], tuple[str, int | None] | None] = {}

    def resolve(self, record: base.NewRecord) -> int | None:
        """Fill the record's workload fields; the lowest level rank it admits (None: nothing)."""
        if not record.kind:
            owner = self._owner(record.namespace, record.pod, record.pod_uid)
            if owner is None:
                return 0
            record.kind, record.workload = owner
        found = self._workload((record.namespace, record.kind, record.workload))
        if found is None:
            return 0
        uid, rank = found
        if not record.workload_uid:
            record.workload_uid = uid
        return rank

    def _owner(self, namespace: str, pod: str, pod_uid: str) -> tuple[str, str] | None:
        key = (namespace, pod, pod_uid)
        if key not in self._pods:
            row = self._conn.execute(
                "SELECT uid, kind, workload FROM pods WHERE namespace = ? AND name = ?",
                (namespace, pod),
            ).fetchone()
            owner = None
            if row and row[1] and (not row[0] or not pod_uid or row[0] == pod_uid):
                owner = (row[1], row[2])
            self._pods[key] = owner
        return self._pods[key]

    def _workload(self, key: tuple[str, str, str]) -> tuple[str, int | None] | None:
        if key not in self._workloads:
            row = self._conn.execute(
                "SELECT uid, spec FROM workloads WHERE namespace = ? AND kind = ? AND name = ?",
                key,
            ).fetchone()
            self._workloads[key] = (
                (row[0], base.admitted_rank(orjson.loads(row[1]))) if row else None
            )
        return self._workloads[key]


def _add_totals(conn: sqlite3.Connection, rows: int, size: int) -> None:
    conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + "
        "(CASE key WHEN 'rows' THEN ? ELSE ? END) WHERE key IN ('rows', 'bytes')",
        (rows, size),
    )


def _delete_chunk(conn: sqlite3.Connection, select: str, params: Sequence[Any]) -> int:
    conn.execute("BEGIN IMMEDIATE")
    ids = [(row[0],) for row in conn.execute(select, params)]
    if ids:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY)")
        conn.execute("DELETE FROM doomed")
        conn.executemany("INSERT INTO doomed VALUES (?)", ids)
        # External-content FTS5 needs the old text to remove an entry.
        conn.execute(
            "INSERT INTO records_fts (records_fts, rowid, message) "
            "SELECT 'delete', id, message FROM records WHERE id IN (SELECT id FROM doomed)"
        )
        (size,) = conn.execute(
            "SELECT coalesce(sum(size), 0) FROM records WHERE id IN (SELECT id FROM doomed)"
        ).fetchone()
        conn.execute("DELETE FROM records WHERE id IN (SELECT id FROM doomed)")
        conn.execute("DELETE FROM doomed")
        _add_totals(conn, -len(ids), -size)
    conn.execute("COMMIT")
    return len(ids)


def _retention_cutoff(
    conn: sqlite3.Connection,
    *,
    scope: tuple[str, str, str],
    policy: retention_policy.RetentionPolicy,
    now_ns: int,
) -> tuple[int, int] | None:
    """The newest (ts_ns, id) that must go: everything at or before it is deleted."""
    scoped = _WORKLOAD_SCOPE
    candidates: list[tuple[int, int]] = []
    if policy.max_age_ns is not None:
        row = conn.execute(
            f"SELECT ts_ns, id FROM records WHERE {scoped} AND ts_ns < ? "
            "ORDER BY ts_ns DESC, id DESC LIMIT 1",
            (*scope, now_ns - policy.max_age_ns),
        ).fetchone()
        if row:
            candidates.append((row[0], row[1]))
    if policy.max_lines is not None:
        row = conn.execute(
            f"SELECT ts_ns, id FROM records WHERE {scoped} "
            "ORDER BY ts_ns DESC, id DESC LIMIT 1 OFFSET ?",
            (*scope, policy.max_lines),
        ).fetchone()
        if row:
            candidates.append((row[0], row[1]))
    if policy.max_bytes is not None:
        row = conn.execute(
            "SELECT ts_ns, id FROM (SELECT ts_ns, id, sum(size) OVER "
            "(ORDER BY ts_ns DESC, id DESC ROWS UNBOUNDED PRECEDING) AS running "
            f"FROM records WHERE {scoped}) WHERE running > ? LIMIT 1",
            (*scope, policy.max_bytes),
        ).fetchone()
        if row:
            candidates.append((row[0], row[1]))
    return max(candidates) if candidates else None


def _drops_where(query: base.Query) -> sqlite_query.Where:
    w = sqlite_query.Where()
    for column, value in (
        ("namespace", query.namespace),
        ("kind", query.kind),
        ("workload", query.workload),
        ("pod", query.pod),
    ):
        if value is not None:
            w.add(f"{column} = ?", value)
    if query.containers:
        w.add_in("container", query.containers)
    return w


def _stats(groups: Iterable[tuple[Any, ...]], dropped: int) -> base.Stats:
    by: dict[str, dict[str, int]] = {
        name: {} for name in ("level", "container", "execution", "namespace", "workload", "pod")
    }
    total = truncated = split = size = 0
    last: int | None = None
    for level, container, execution, namespace, kind, workload, pod, n, t, s, b, ts in groups:
        total += n
        truncated += t
        split += s
        size += b
        last = ts if last is None else max(last, ts)
        for name, key in (
            ("level", _LEVELS[level]),
            ("container", container),
            ("execution", execution),
            ("namespace", namespace),
            ("workload", f"{kind}/{workload}" if kind else ""),
            ("pod", pod),
        ):
            if key:
                by[name][key] = by[name].get(key, 0) + n
    return base.Stats(
        total=total,
        by_level=by["level"],
        by_container=by["container"],
        by_execution=by["execution"],
        by_namespace=by["namespace"],
        by_workload=by["workload"],
        truncated_lines=truncated,
        split_lines=split,
        dropped_lines=dropped,
        last_ts_ns=last,
        bytes=size,
        by_pod=by["pod"],
    )


def _record(row: tuple[Any, ...]) -> base.StoredRecord:
    attrs = row[16]
    return base.StoredRecord(
        id=row[0],
        ts_ns=row[1],
        received_ns=row[2],
        namespace=row[3],
        kind=row[4],
        workload=row[5],
        workload_uid=row[6],
        pod=row[7],
        pod_uid=row[8],
        container=row[9],
        container_id=row[10],
        restart=row[11],
        stream=row[12],
        level=_LEVELS[row[13]],
        message=row[14],
        execution_id=row[15],
        attrs=orjson.loads(attrs) if attrs else {},
        source=row[17],
        flags=row[18],
    )


def _workload(row: tuple[Any, ...]) -> base.Workload:
    namespace, kind, name, uid, spec, generation, created_ns, deleted = row
    return base.Workload(
        key=base.WorkloadKey(namespace, kind, name),
        uid=uid,
        spec=orjson.loads(spec),
        generation=generation,
        created_ns=created_ns,
        deleted=bool(deleted),
    )


def _pod(row: tuple[Any, ...]) -> base.Pod:
    namespace, name, uid, labels, kind, workload, phase, obj = row
    return base.Pod(
        namespace=namespace,
        name=name,
        uid=uid,
        labels=orjson.loads(labels),
        workload=base.WorkloadKey(namespace, kind, workload) if kind else None,
        phase=phase,
        obj=orjson.loads(obj),
    )


def _key_tuple(key: base.WorkloadKey) -> tuple[str, str, str]:
    return (key.namespace, key.kind, key.name)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
