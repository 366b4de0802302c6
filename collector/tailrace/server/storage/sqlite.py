"""The embedded store: one SQLite file in WAL mode, records kept in chunks, FTS5 for text search.

Threads, because sqlite3 blocks: every write runs on one writer thread holding the one writing
connection (SQLite has a single writer anyway, and a thread of our own means no lock waits), and
reads run on a small pool of reader threads with their own connections, which WAL lets proceed while
a write is in progress. An in-memory database (`sqlite:///:memory:`) exists only inside its one
connection, so there every call goes through the writer thread.

Records are stored many to a row (`chunks`, ADR 0013): appends build chunks
(`sqlite_ingest`), reads walk them in page order (`sqlite_query` plans, `sqlite_scan` reads), and
deletes drop whole chunks or mark records dead in them (`sqlite_deletion`). An append is one
transaction: the chunks, their FTS5 documents and the new high-water marks of their sources, so a
crash can never store a line without its mark or a mark without its line.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson

from tailrace.server.storage import (
    base,
    chunks,
    contract_rows,
    retention_policy,
    sqlite_attribution,
    sqlite_deletion,
    sqlite_ingest,
    sqlite_query,
    sqlite_scan,
    sqlite_schema,
)

T = TypeVar("T")

_READERS = 2
# Deletes run in chunks so that appends interleave with a long retention pass or DELETE.
_DELETE_CHUNK = 20_000
# Appends queued while the writer is busy are committed together, up to about this many records.
_GROUP_RECORDS = 50_000


_PREFIXED_CHUNK_COLUMNS = ", ".join(f"c.{c}" for c in sqlite_query.CHUNK_COLUMNS.split(", "))


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
    return conn


class SQLiteStore:
    def __init__(
        self,
        path: str,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._path = path
        self._clock = clock
        self._memory = path == ":memory:"
        self._writer: sqlite3.Connection | None = None
        self._write_pool: ThreadPoolExecutor | None = None
        self._read_pool: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._next_id = 1  # the writer's, ahead of what is committed while a transaction runs
        self._visible_next_id = 1  # one past the newest committed id
        self._pending: collections.deque[
            tuple[Sequence[base.IngestBatch], asyncio.Future[base.AppendResult]]
        ] = collections.deque()
        self._drainer: asyncio.Future[None] | None = None
        # Writer-thread caches of committed state: source marks and the integer scope refs.
        self._offsets: dict[str, int] = {}
        self._refs = sqlite_attribution.Refs()
        self._origins = sqlite_scan.Origins()

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
        except (
            sqlite3.Error,
            OSError,
            base.StoreUnavailable,
            sqlite_schema.SchemaTooNew,
        ) as err:
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
        newest = conn.execute("SELECT id + n - 1 FROM chunks ORDER BY id DESC LIMIT 1").fetchone()
        max_id = newest[0] if newest else 0
        # next_id survives deleting the newest records, so ids never go back (live-tail cursors).
        self._next_id = max(int(stored_next[0]) if stored_next else 1, max_id + 1)
        self._visible_next_id = self._next_id
        if conn.execute("SELECT 1 FROM meta WHERE key = 'rows'").fetchone() is None:
            rows, size = conn.execute(
                "SELECT coalesce(sum(live), 0), coalesce(sum(size), 0) FROM chunks"
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
        # Group commit: appends that arrive while the writer is busy are written together in its
        # next transaction (one commit, one FTS5 segment), each still getting its own result.
        future: asyncio.Future[base.AppendResult] = asyncio.get_running_loop().create_future()
        self._pending.append((batches, future))
        if self._drainer is None:
            self._drainer = asyncio.ensure_future(self._drain())
        return await future

    async def append_records(self, records: Sequence[base.NewRecord]) -> list[base.StoredRecord]:
        result = await self.append([base.IngestBatch("", list(records), [], 0)])
        return result.stored

    async def _drain(self) -> None:
        try:
            while self._pending:
                group: list[tuple[Sequence[base.IngestBatch], asyncio.Future[Any]]] = []
                size = 0
                while self._pending and size < _GROUP_RECORDS:
                    item = self._pending.popleft()
                    group.append(item)
                    size += sum(len(batch.records) for batch in item[0])
                appends = [batches for batches, _ in group]
                try:
                    results = await self._write(
                        functools.partial(self._append_group, groups=appends)
                    )
                except Exception as err:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(err)
                    continue
                for (_, future), result in zip(group, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._drainer = None

    def _append_group(
        self, conn: sqlite3.Connection, groups: Sequence[Sequence[base.IngestBatch]]
    ) -> list[base.AppendResult]:
        appender = sqlite_ingest.Appender(conn, self._refs, self._offsets, self._next_id, 0)
        conn.execute("BEGIN IMMEDIATE")
        try:
            results = []
            for batches in groups:
                appender.now = self._clock()
                results.append(appender.append(batches))
            appender.finish()
            conn.execute("COMMIT")
        except BaseException:
            # The ids, marks and refs taken while appending were never made durable.
            self._offsets.clear()
            self._refs.forget()
            raise
        self._next_id = self._visible_next_id = appender.next_id
        return results

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
        return await self._read(lambda conn: sqlite_scan.page(conn, self._origins, query))

    async def count(self, query: base.Query) -> int:
        base.check_query(query)
        return await self._read(lambda conn: sqlite_scan.count(conn, self._origins, query))

    async def stats(self, query: base.Query) -> base.Stats:
        base.check_query(query)
        d = _drops_where(query)
        drops_sql = f"SELECT coalesce(sum(lines), 0) FROM drops WHERE {d.sql}"

        def work(conn: sqlite3.Connection) -> base.Stats:
            groups = sqlite_scan.stats(conn, self._origins, query)
            (dropped,) = conn.execute(drops_sql, d.params).fetchone()
            return contract_rows.stats(groups, int(dropped))

        return await self._read(work)

    async def last_id(self) -> int:
        # _visible_next_id moves only after COMMIT, so this never names an uncommitted id;
        # reading it here keeps live-tail start-ups from queueing behind appends.
        if self._writer is None:
            raise base.StoreUnavailable("the SQLite store is not open")
        return self._visible_next_id - 1

    async def totals(self) -> base.Totals:
        def work(conn: sqlite3.Connection) -> base.Totals:
            found = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('rows', 'bytes')"))
            return base.Totals(int(found.get("rows", 0)), int(found.get("bytes", 0)))

        return await self._read(work)

    # -- deleting -------------------------------------------------------------------------------

    async def delete(self, query: base.Query) -> int:
        base.check_query(query)
        return await self._delete(query, paging=False)

    async def _delete(self, query: base.Query, *, paging: bool) -> int:
        total, after = 0, 0
        while True:
            deleted, last = await self._write(
                functools.partial(
                    sqlite_deletion.delete_some,
                    origins=self._origins,
                    query=query,
                    paging=paging,
                    after_chunk=after,
                )
            )
            total += deleted
            if last is None:
                return total
            after = last

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
        return contract_rows.workload(row) if row else None

    async def find_workload(self, namespace: str | None, ident: str) -> base.Workload | None:
        def work(conn: sqlite3.Connection) -> base.Workload | None:
            row = conn.execute(
                "SELECT * FROM workloads WHERE uid = ? AND NOT deleted LIMIT 1", (ident,)
            ).fetchone()
            if row:
                return contract_rows.workload(row)
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
            return contract_rows.workload(rows[0]) if len(rows) == 1 else None

        return await self._read(work)

    async def list_workloads(self, namespace: str | None = None) -> list[base.Workload]:
        w = sqlite_query.Where()
        if namespace is not None:
            w.add("namespace = ?", namespace)
        sql = f"SELECT * FROM workloads WHERE {w.sql} ORDER BY namespace, kind, name"
        rows = await self._read(lambda conn: conn.execute(sql, w.params).fetchall())
        return [contract_rows.workload(row) for row in rows]

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
        same_pod = "AND (o.pod_uid = ? OR o.pod_uid = '')" if pod_uid else ""
        extra = [pod_uid] if pod_uid else []
        updated = 0
        try:
            ref = self._refs.workload(conn, namespace, workload.kind, workload.name)
            conn.execute(
                "INSERT OR IGNORE INTO workload_pods "
                "SELECT ?, id FROM pod_refs WHERE namespace = ? AND pod = ?",
                (ref, namespace, pod),
            )
            moved = conn.execute(
                f"SELECT {_PREFIXED_CHUNK_COLUMNS} FROM chunks AS c "
                "JOIN origins AS o ON o.id = c.origin "
                "WHERE c.pod_ref = (SELECT id FROM pod_refs WHERE namespace = ? AND pod = ?) "
                f"AND o.kind = '' {same_pod}",
                [namespace, pod, *extra],
            ).fetchall()
            for chunk_row in moved:
                chunk = sqlite_scan.decode(conn, self._origins, chunk_row)
                o = chunk.origin
                origin = self._refs.origin(
                    conn,
                    (
                        o.namespace,
                        workload.kind,
                        workload.name,
                        uid,
                        o.pod,
                        o.pod_uid,
                        o.container,
                        o.container_id,
                        o.restart,
                        o.source,
                        o.stream,
                    ),
                )
                # The chunk's FTS5 document names its workload ref: index it again under the
                # new one (removing the old repeats the old text).
                messages = chunk.messages()
                conn.execute(
                    "INSERT INTO chunks_fts (chunks_fts, rowid, text) VALUES ('delete', ?, ?)",
                    (chunk.id, chunks.fts_text(messages, chunk_row[6])),
                )
                conn.execute(
                    "INSERT INTO chunks_fts (rowid, text) VALUES (?, ?)",
                    (chunk.id, chunks.fts_text(messages, ref)),
                )
                conn.execute(
                    "UPDATE chunks SET origin = ?, workload_ref = ? WHERE id = ?",
                    (origin, ref, chunk.id),
                )
                updated += chunk_row[8]
            conn.execute(
                "UPDATE drops SET kind = ?, workload = ? "
                f"WHERE namespace = ? AND pod = ? AND kind = '' {same_pod.replace('o.', '')}",
                [workload.kind, workload.name, namespace, pod, *extra],
            )
        except BaseException:
            self._refs.forget()
            raise
        return updated

    async def get_pod(self, namespace: str, name: str) -> base.Pod | None:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT * FROM pods WHERE namespace = ? AND name = ?", (namespace, name)
            ).fetchone()
        )
        return contract_rows.pod(row) if row else None

    async def list_pods(self, workload: base.WorkloadKey | None = None) -> list[base.Pod]:
        w = sqlite_query.Where()
        if workload is not None:
            w.add("namespace = ? AND kind = ? AND workload = ?", *_key_tuple(workload))
        sql = f"SELECT * FROM pods WHERE {w.sql} ORDER BY namespace, name"
        rows = await self._read(lambda conn: conn.execute(sql, w.params).fetchall())
        return [contract_rows.pod(row) for row in rows]

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
            key = workload.key
            scope = base.Query(namespace=key.namespace, kind=key.kind, workload=key.name)
            cutoff = await self._read(
                functools.partial(
                    sqlite_deletion.retention_cutoff,
                    origins=self._origins,
                    scope=scope,
                    policy=policy,
                    now_ns=now_ns,
                )
            )
            if cutoff is None:
                continue
            # Everything at or before the cut-off: the keys below (ts_ns, id + 1), newest first.
            doomed = dataclasses.replace(scope, after=(cutoff[0], cutoff[1] + 1), order="desc")
            deleted += await self._delete(doomed, paging=True)
        return deleted

    async def meta(self) -> Mapping[str, str]:
        rows = await self._read(lambda conn: conn.execute("SELECT key, value FROM meta").fetchall())
        return {**dict(rows), "backend": "sqlite", "path": self._path}


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


def _key_tuple(key: base.WorkloadKey) -> tuple[str, str, str]:
    return (key.namespace, key.kind, key.name)


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
