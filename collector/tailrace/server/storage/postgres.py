"""The shared store: PostgreSQL, for several server replicas behind one Service.

`postgresql://user@host:port/db?schema=tailrace&pool_max=8` (other query parameters go to libpq).
One psycopg 3 async pool; every append is one transaction that locks the high-water mark rows of
its sources (`SELECT ... FOR UPDATE`), so two replicas handed the same resend store it once: the
second waits for the first to commit and then sees the mark already past it. Records are kept in
chunks of up to 256, a row each (`postgres_chunks`, as the SQLite store does: ADR 0013), written
with binary COPY into a table partitioned by day; retention drops whole day partitions when every
chunk in them has expired. Ids come from one sequence through `allocate_ids`; `safe_watermark` and
`watch` let a follower on any replica read new records in id order without ever skipping one that
commits late (see docs/decisions/0005-postgres-store.md).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import orjson
import psycopg
import psycopg_pool
from psycopg import sql

from tailrace.server.storage import (
    base,
    chunk_bounds,
    contract_rows,
    postgres_deletion,
    postgres_feed,
    postgres_ingest,
    postgres_migration_4,
    postgres_retention,
    postgres_scan,
    postgres_schema,
    postgres_statistics,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SCHEMA: Final = "tailrace"
DEFAULT_POOL_MAX: Final = 8
WORK_MEM: Final = "64MB"
# A live-tail watcher polls at least this often even when no notification arrives, so a dropped
# notification (or one from an aborted transaction's neighbour) delays a record, never loses it.
WATCH_POLL_S: Final = 1.0
# estimated_totals scales the chunk count by the live records and bytes of this many newest ones.
TOTALS_SAMPLE: Final = 1_000
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def parse_url(url: str) -> tuple[str, str, int]:
    """(libpq conninfo URL, schema, pool size) from a store URL."""
    parts = urllib.parse.urlsplit(url)
    params = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schema, pool_max = DEFAULT_SCHEMA, DEFAULT_POOL_MAX
    rest: list[tuple[str, str]] = []
    for key, value in params:
        if key == "schema":
            schema = value
        elif key == "pool_max":
            if not value.isdigit() or int(value) < 1:
                raise base.UnknownStoreURL(f"pool_max must be a positive integer, got {value!r}")
            pool_max = int(value)
        else:
            rest.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise base.UnknownStoreURL(
            f"schema must be a lower-case SQL identifier ([a-z_][a-z0-9_]*), got {schema!r}"
        )
    scheme = "postgresql" if parts.scheme in ("postgresql", "postgres") else parts.scheme
    conninfo = urllib.parse.urlunsplit(
        (scheme, parts.netloc, parts.path, urllib.parse.urlencode(rest), "")
    )
    return conninfo, schema, pool_max


class PostgresStore:
    """`base.Store` on PostgreSQL, shared by replicas (`watch` feeds each one's live tail)."""

    def __init__(
        self,
        url: str,
        clock: Callable[[], int] = time.time_ns,
        analyze: bool | None = None,
    ) -> None:
        """`analyze`: whether this replica analyzes the day partitions it appends to
        (`postgres_statistics`); None decides at open: only where autovacuum is off."""
        self._conninfo, self._schema, self._pool_max = parse_url(url)
        self._clock = clock
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._partitions: set[int] = set()
        self._closing = asyncio.Event()
        self._analyze = analyze
        self._analyzer: postgres_statistics.PartitionAnalyzer | None = None

    @property
    def schema(self) -> str:
        return self._schema

    @property
    def analyzes(self) -> bool:
        """Whether this replica analyzes the day partitions it appends to (once open)."""
        return self._analyzer is not None

    @property
    def conninfo(self) -> str:
        """The libpq URL the store connects with (without our own `schema`/`pool_max`)."""
        return self._conninfo

    @property
    def channel(self) -> str:
        """The NOTIFY channel new records are announced on."""
        return f"tailrace_{self._schema}"[:63]

    # -- plumbing -------------------------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        # Custom plans always: how common a searched word is decides the plan (walk the scope's
        # B-tree in time order for a common word, the word GIN index for a rare one), and a
        # generic plan cached after five runs would pick one for every word. work_mem keeps
        # bitmaps exact: a lossy page rechecks `words @>` on every row it holds. No JIT:
        # these plans' costs pass jit_above_cost at millions of rows, and compiling them takes
        # longer (15 ms and more) than running them.
        options = (
            f"-c search_path={self._schema},public -c plan_cache_mode=force_custom_plan "
            f"-c work_mem={WORK_MEM} -c jit=off"
        )
        return {"autocommit": True, "options": options, "application_name": "tailrace-server"}

    async def open(self) -> None:
        try:
            await self._migrate()
            pool: psycopg_pool.AsyncConnectionPool[Any] = psycopg_pool.AsyncConnectionPool(
                self._conninfo,
                min_size=1,
                max_size=self._pool_max,
                kwargs=self._connect_kwargs(),
                open=False,
                timeout=10.0,
                name=f"tailrace-{self._schema}",
            )
            await pool.open(wait=True, timeout=10.0)
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as err:
            raise base.StoreUnavailable(f"cannot open PostgreSQL store: {err}") from err
        self._pool = pool
        await self.ensure_partitions([postgres_schema.day_of(self._clock())])
        analyze = self._analyze
        if analyze is None:
            analyze = not await self._run(postgres_statistics.autovacuum_on)
        if analyze:
            self._analyzer = postgres_statistics.PartitionAnalyzer(self._schema, self._run)

    async def close(self) -> None:
        self._closing.set()
        if self._analyzer is not None:
            await self._analyzer.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self) -> None:
        """Bring the schema to CURRENT_VERSION. A session-level advisory lock (replicas starting
        together migrate once) rather than one transaction: migration 4 moves records in slices,
        a transaction each, so that a start killed part way keeps what it did."""
        conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._connect_kwargs())
        schema = sql.Identifier(self._schema)
        async with conn:
            await conn.execute("SELECT pg_advisory_lock(%s, %s)", postgres_schema.MIGRATION_LOCK)
            async with conn.transaction():
                await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                await conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {}.schema_version (version int NOT NULL)"
                    ).format(schema)
                )
            row = await (
                await conn.execute(
                    sql.SQL("SELECT max(version) FROM {}.schema_version").format(schema)
                )
            ).fetchone()
            current = row[0] if row and row[0] is not None else 0
            if current > postgres_schema.CURRENT_VERSION:
                raise base.StoreError(
                    f"schema {self._schema} is at version {current}, newer than this "
                    f"server's {postgres_schema.CURRENT_VERSION}: upgrade the server"
                )
            steps = postgres_schema.migrations(self._schema)
            for version in range(current + 1, postgres_schema.CURRENT_VERSION + 1):
                if version == 4:
                    await postgres_migration_4.migrate(conn, self._schema)
                    continue
                async with conn.transaction():
                    for statement in steps[version]:
                        await conn.execute(statement.encode())
                    await conn.execute(
                        sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(schema),
                        (version,),
                    )
            now = str(self._clock())
            for key, value, update in (
                ("instance_id", uuid.uuid4().hex, False),
                ("created_ns", now, False),
                ("schema_version", str(postgres_schema.CURRENT_VERSION), True),
            ):
                conflict = "DO UPDATE SET value = excluded.value" if update else "DO NOTHING"
                await conn.execute(
                    sql.SQL(f"INSERT INTO {{}}.meta VALUES (%s, %s) ON CONFLICT (key) {conflict}")
                    .format(schema)
                    .as_string(conn)
                    .encode(),
                    (key, value),
                )

    async def _run(self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]]) -> T:
        pool = self._pool
        if pool is None:
            raise base.StoreUnavailable("the PostgreSQL store is not open")
        try:
            async with pool.connection() as conn:
                return await work(conn)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as err:
            raise base.StoreUnavailable(f"PostgreSQL: {err}") from err
        except psycopg_pool.PoolClosed as err:
            raise base.StoreUnavailable("the PostgreSQL store is closed") from err

    async def _fetch(
        self, query: str | bytes | sql.Composed, params: Sequence[Any] = ()
    ) -> list[Any]:
        async def work(conn: psycopg.AsyncConnection[Any]) -> list[Any]:
            cursor = await conn.execute(query, params)
            return await cursor.fetchall()

        return await self._run(work)

    async def ensure_partitions(self, days: Iterable[int]) -> None:
        """Create the day partitions rows are about to land in (before the ingest transaction:
        creating a partition locks the parent table, which must not wait inside one)."""
        missing = sorted(set(days) - self._partitions)
        if not missing:
            return

        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            for day in missing:
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, %s)",
                        postgres_schema.partition_lock(self._schema),
                    )
                    cursor = await conn.execute(
                        "SELECT to_regclass(%s)",
                        (f'"{self._schema}".{postgres_schema.partition_name(day)}',),
                    )
                    row = await cursor.fetchone()
                    if row is None or row[0] is None:
                        await conn.execute(
                            postgres_schema.create_partition_sql(self._schema, day).encode()
                        )

        await self._run(work)
        self._partitions.update(missing)

    # -- ingest ---------------------------------------------------------------------------------

    async def append(self, batches: Sequence[base.IngestBatch]) -> base.AppendResult:
        records_by_day = collections.Counter(
            postgres_schema.day_of(r.ts_ns) for b in batches for r in b.records
        )
        days = records_by_day.keys()
        await self.ensure_partitions(days)
        try:
            result = await self._run(
                lambda conn: postgres_ingest.append(conn, batches, self._clock(), self.channel)
            )
        except psycopg.errors.CheckViolation:
            # A partition was dropped by another replica's retention since we cached it.
            self._partitions.clear()
            await self.ensure_partitions(days)
            result = await self._run(
                lambda conn: postgres_ingest.append(conn, batches, self._clock(), self.channel)
            )
        if self._analyzer is not None and result.stored:
            self._analyzer.appended(records_by_day)
        return result

    async def append_records(self, records: Sequence[base.NewRecord]) -> list[base.StoredRecord]:
        result = await self.append([base.IngestBatch("", list(records), [], 0)])
        return result.stored

    async def durable_offsets(self, keys: Sequence[str]) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT key, durable_offset FROM sources WHERE key = ANY(%s)",
            (list(keys),),
        )
        return {key: int(mark) for key, mark in rows}

    # -- reading --------------------------------------------------------------------------------

    async def query(self, query: base.Query) -> list[base.StoredRecord]:
        base.check_query(query)

        async def work(conn: psycopg.AsyncConnection[Any]) -> list[base.StoredRecord]:
            # Reads stop at the watermark: no reader (a page, a tail, a follower's catch-up) sees
            # a record while an id below it may still appear from another replica.
            watermark = await postgres_feed.watermark(conn)
            return await postgres_scan.page(conn, query, watermark)

        return await self._run(work)

    async def count(self, query: base.Query) -> int:
        base.check_query(query)
        return await self._run(lambda conn: postgres_scan.count(conn, query))

    async def stats(self, query: base.Query) -> base.Stats:
        base.check_query(query)
        d = _drops_where(query)
        drops_sql = f"SELECT coalesce(sum(lines), 0) FROM drops WHERE {d.sql}"

        async def work(conn: psycopg.AsyncConnection[Any]) -> base.Stats:
            groups = await postgres_scan.stats(conn, query)
            dropped = await (await conn.execute(drops_sql.encode(), d.params)).fetchone()
            return contract_rows.stats(groups, int(dropped[0]) if dropped else 0)

        return await self._run(work)

    async def estimated_totals(self) -> base.Totals:
        """Records and message bytes estimated without a scan, so a metrics scrape stays cheap
        at any size: the chunk count from the planner's statistics of each day partition (as
        fresh as the last ANALYZE or autovacuum) times the live records and bytes of an average
        chunk among the newest TOTALS_SAMPLE."""

        async def work(conn: psycopg.AsyncConnection[Any]) -> base.Totals:
            cursor = await conn.execute(
                "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::float8 "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass",
                (f'"{self._schema}".chunks',),
            )
            row = await cursor.fetchone()
            chunks = float(row[0]) if row else 0.0
            cursor = await conn.execute(
                "SELECT coalesce(avg(live), 0)::float8, coalesce(avg(size), 0)::float8 FROM "
                f"(SELECT live, size FROM chunks ORDER BY id DESC LIMIT {TOTALS_SAMPLE:d}) AS s"
            )
            average = await cursor.fetchone()
            if average is None:
                return base.Totals(0, 0)
            return base.Totals(round(chunks * average[0]), round(chunks * average[1]))

        return await self._run(work)

    async def last_id(self) -> int:
        """The highest id below which no record can still appear (see `safe_watermark`)."""
        return await self._run(postgres_feed.watermark)

    async def watch(self, after_id: int) -> AsyncIterator[list[base.StoredRecord]]:
        """Records with id above `after_id`, in id order, as replicas commit them; forever.

        A record is yielded only once every id below it is committed or abandoned, so a follower
        that resumes from the last id it delivered never skips one. LISTEN/NOTIFY only wakes the
        loop early; the poll by id is what is delivered, so lost notifications lose nothing.
        """
        last = after_id
        log.info("live-tail feed: following records after id %d", after_id)
        listener: psycopg.AsyncConnection[Any] | None = None
        backoff = 0.1
        try:
            while not self._closing.is_set():
                try:
                    if listener is None:
                        listener = await psycopg.AsyncConnection.connect(
                            self._conninfo, **self._connect_kwargs()
                        )
                        await listener.execute(
                            sql.SQL("LISTEN {}").format(sql.Identifier(self.channel))
                        )
                    while True:
                        found, last = await self._run(
                            functools.partial(postgres_feed.read, last=last)
                        )
                        if found:
                            yield found
                        if len(found) < postgres_feed.BATCH:
                            break
                    async for _ in listener.notifies(timeout=WATCH_POLL_S, stop_after=1):
                        pass
                    backoff = 0.1
                except (psycopg.OperationalError, base.StoreUnavailable) as err:
                    log.warning("live-tail watch lost PostgreSQL, retrying: %s", err)
                    if listener is not None:
                        await listener.close()
                        listener = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            if listener is not None:
                await listener.close()

    # -- deleting -------------------------------------------------------------------------------

    async def delete(self, query: base.Query) -> int:
        base.check_query(query)
        return await self._run(lambda conn: postgres_deletion.delete(conn, query, paging=False))

    # -- registry -------------------------------------------------------------------------------

    async def put_workload(self, workload: base.Workload) -> None:
        key = workload.key
        await self._run(
            lambda conn: conn.execute(
                "INSERT INTO workloads VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (namespace, kind, name) DO UPDATE SET uid = excluded.uid, "
                "spec = excluded.spec, generation = excluded.generation, "
                "created_ns = excluded.created_ns, deleted = excluded.deleted",
                (
                    key.namespace,
                    key.kind,
                    key.name,
                    workload.uid,
                    orjson.dumps(workload.spec).decode(),
                    workload.generation,
                    workload.created_ns,
                    workload.deleted,
                ),
            )
        )

    async def get_workload(self, key: base.WorkloadKey) -> base.Workload | None:
        rows = await self._fetch(
            f"SELECT {_WORKLOAD_COLUMNS} FROM workloads "
            "WHERE namespace = %s AND kind = %s AND name = %s",
            (key.namespace, key.kind, key.name),
        )
        return contract_rows.workload(rows[0]) if rows else None

    async def find_workload(self, namespace: str | None, ident: str) -> base.Workload | None:
        rows = await self._fetch(
            f"SELECT {_WORKLOAD_COLUMNS} FROM workloads WHERE uid = %s AND NOT deleted LIMIT 1",
            (ident,),
        )
        if rows:
            return contract_rows.workload(rows[0])
        if namespace is None:
            rows = await self._fetch(
                f"SELECT {_WORKLOAD_COLUMNS} FROM workloads WHERE name = %s AND NOT deleted "
                "LIMIT 2",
                (ident,),
            )
        else:
            rows = await self._fetch(
                f"SELECT {_WORKLOAD_COLUMNS} FROM workloads "
                "WHERE name = %s AND namespace = %s AND NOT deleted LIMIT 2",
                (ident, namespace),
            )
        return contract_rows.workload(rows[0]) if len(rows) == 1 else None

    async def list_workloads(self, namespace: str | None = None) -> list[base.Workload]:
        if namespace is None:
            rows = await self._fetch(f"SELECT {_WORKLOAD_COLUMNS} FROM workloads {_WORKLOAD_ORDER}")
        else:
            rows = await self._fetch(
                f"SELECT {_WORKLOAD_COLUMNS} FROM workloads WHERE namespace = %s {_WORKLOAD_ORDER}",
                (namespace,),
            )
        return [contract_rows.workload(row) for row in rows]

    async def delete_workload(self, key: base.WorkloadKey) -> None:
        await self._run(
            lambda conn: conn.execute(
                "DELETE FROM workloads WHERE namespace = %s AND kind = %s AND name = %s",
                (key.namespace, key.kind, key.name),
            )
        )

    async def put_pod(self, pod: base.Pod) -> None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO pods VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (namespace, name) DO UPDATE SET uid = excluded.uid, "
                    "labels = excluded.labels, workload_kind = excluded.workload_kind, "
                    "workload_name = excluded.workload_name, phase = excluded.phase, "
                    "obj = excluded.obj",
                    (
                        pod.namespace,
                        pod.name,
                        pod.uid,
                        orjson.dumps(pod.labels).decode(),
                        pod.workload.kind if pod.workload else None,
                        pod.workload.name if pod.workload else None,
                        pod.phase,
                        orjson.dumps(pod.obj).decode(),
                    ),
                )
                if pod.workload is not None:
                    await _assign(conn, pod.namespace, pod.name, pod.workload, pod.uid)

        await self._run(work)

    async def assign_pod_workload(
        self, namespace: str, pod: str, workload: base.WorkloadKey, pod_uid: str = ""
    ) -> int:
        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            async with conn.transaction():
                return await _assign(conn, namespace, pod, workload, pod_uid)

        return await self._run(work)

    async def get_pod(self, namespace: str, name: str) -> base.Pod | None:
        rows = await self._fetch(
            f"SELECT {_POD_COLUMNS} FROM pods WHERE namespace = %s AND name = %s",
            (namespace, name),
        )
        return contract_rows.pod(rows[0]) if rows else None

    async def list_pods(self, workload: base.WorkloadKey | None = None) -> list[base.Pod]:
        if workload is None:
            rows = await self._fetch(f"SELECT {_POD_COLUMNS} FROM pods {_POD_ORDER}")
        else:
            rows = await self._fetch(
                f"SELECT {_POD_COLUMNS} FROM pods WHERE namespace = %s AND workload_kind = %s "
                f"AND workload_name = %s {_POD_ORDER}",
                (workload.namespace, workload.kind, workload.name),
            )
        return [contract_rows.pod(row) for row in rows]

    async def delete_pod(self, namespace: str, name: str) -> None:
        await self._run(
            lambda conn: conn.execute(
                "DELETE FROM pods WHERE namespace = %s AND name = %s", (namespace, name)
            )
        )

    # -- retention ------------------------------------------------------------------------------

    async def apply_retention(self, now_ns: int) -> int:
        workloads = await self.list_workloads()
        deleted = await self._run(
            lambda conn: postgres_retention.apply(conn, self._schema, workloads, now_ns)
        )
        self._partitions.clear()  # some may be gone; the next append re-checks
        await self.ensure_partitions([postgres_schema.day_of(now_ns)])
        return deleted

    async def meta(self) -> Mapping[str, str]:
        rows = await self._fetch("SELECT key, value FROM meta")
        return {**dict(rows), "backend": "postgresql", "schema": self._schema}


# -- transaction pieces ---------------------------------------------------------------------------


async def _assign(
    conn: psycopg.AsyncConnection[Any],
    namespace: str,
    pod: str,
    workload: base.WorkloadKey,
    pod_uid: str,
) -> int:
    cursor = await conn.execute(
        "SELECT uid FROM workloads WHERE namespace = %s AND kind = %s AND name = %s",
        (workload.namespace, workload.kind, workload.name),
    )
    row = await cursor.fetchone()
    uid = row[0] if row else ""
    same_pod = "AND (pod_uid = %s OR pod_uid = '')" if pod_uid else ""
    extra = [pod_uid] if pod_uid else []
    # A chunk's records share their origin, so the chunk row's columns are all there is to move.
    cursor = await conn.execute(
        "UPDATE chunks SET kind = %s, workload = %s, workload_uid = %s "
        f"WHERE namespace = %s AND pod = %s AND kind = '' {same_pod} RETURNING live".encode(),
        [workload.kind, workload.name, uid, namespace, pod, *extra],
    )
    updated = sum(int(live) for (live,) in await cursor.fetchall())
    await conn.execute(
        "UPDATE drops SET kind = %s, workload = %s "
        f"WHERE namespace = %s AND pod = %s AND kind = '' {same_pod}".encode(),
        [workload.kind, workload.name, namespace, pod, *extra],
    )
    return updated


def _drops_where(query: base.Query) -> chunk_bounds.Where:
    w = chunk_bounds.Where()
    for column, value in (
        ("namespace", query.namespace),
        ("kind", query.kind),
        ("workload", query.workload),
        ("pod", query.pod),
    ):
        if value is not None:
            w.add(f"{column} = %s", value)
    if query.containers:
        w.add("container = ANY(%s)", list(query.containers))
    return w


_WORKLOAD_COLUMNS: Final = "namespace, kind, name, uid, spec, generation, created_ns, deleted"
_POD_COLUMNS: Final = "namespace, name, uid, labels, workload_kind, workload_name, phase, obj"
# Byte order, as SQLite sorts, whatever the database's collation.
_WORKLOAD_ORDER: Final = 'ORDER BY namespace COLLATE "C", kind COLLATE "C", name COLLATE "C"'
_POD_ORDER: Final = 'ORDER BY namespace COLLATE "C", name COLLATE "C"'
