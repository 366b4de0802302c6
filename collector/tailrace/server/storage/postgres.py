"""The shared store: PostgreSQL, for several server replicas behind one Service.

`postgresql://user@host:port/db?schema=tailrace&pool_max=8` (other query parameters go to libpq).
One psycopg 3 async pool; every append is one transaction that locks the high-water mark rows of
its sources (`SELECT ... FOR UPDATE`), so two replicas handed the same resend store it once: the
second waits for the first to commit and then sees the mark already past it. Rows go in with
binary COPY into a table partitioned by day; retention drops whole day partitions when every row
in them has expired. Ids come from one sequence through `allocate_ids`; `safe_watermark` and
`watch` let a follower on any replica read new records in id order without ever skipping one that
commits late (see docs/decisions/0005-postgres-store.md).
"""

from __future__ import annotations

import asyncio
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

from tailrace import records
from tailrace.server.storage import (
    base,
    contract_rows,
    postgres_feed,
    postgres_ingest,
    postgres_retention,
    postgres_schema,
    postgres_search,
    postgres_sql,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SCHEMA: Final = "tailrace"
DEFAULT_POOL_MAX: Final = 8
WORK_MEM: Final = "64MB"
# A live-tail watcher polls at least this often even when no notification arrives, so a dropped
# notification (or one from an aborted transaction's neighbour) delays a record, never loses it.
WATCH_POLL_S: Final = 1.0
# A workload's text search walks an index-only scan, which skips the heap only for pages VACUUM
# marked all-visible; autovacuum looks at a table at most once a minute, and at 20,000 rows/s
# that leaves a whole minute of every workload's newest rows (what a walk reads first) to heap
# visits. So each replica vacuums the day partitions it wrote to every VACUUM_EVERY rows it
# appended: only the pages not yet all-visible are read, and no index is scanned.
VACUUM_EVERY: Final = 50_000
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

    def __init__(self, url: str, clock: Callable[[], int] = time.time_ns) -> None:
        self._conninfo, self._schema, self._pool_max = parse_url(url)
        self._clock = clock
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._partitions: set[int] = set()
        self._words = postgres_search.WordFrequencies(self._schema)
        self._closing = asyncio.Event()
        self._unvacuumed = 0
        self._unvacuumed_days: set[int] = set()
        self._vacuuming: asyncio.Task[None] | None = None

    @property
    def schema(self) -> str:
        return self._schema

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
        # (ts, id) index for a common word, intersect bitmaps for a rare one), and a generic plan
        # cached after five runs would pick one for every word. work_mem keeps those bitmaps
        # exact: a lossy page rechecks the text-search expression on every row it holds. No JIT:
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

    async def close(self) -> None:
        self._closing.set()
        if self._vacuuming is not None:
            await self._vacuuming
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _migrate(self) -> None:
        conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._connect_kwargs())
        async with conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)", postgres_schema.MIGRATION_LOCK
            )
            await conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self._schema))
            )
            await conn.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.schema_version (version int NOT NULL)"
                ).format(sql.Identifier(self._schema))
            )
            row = await (
                await conn.execute(
                    sql.SQL("SELECT max(version) FROM {}.schema_version").format(
                        sql.Identifier(self._schema)
                    )
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
                for statement in steps[version]:
                    await conn.execute(statement.encode())
                await conn.execute(
                    sql.SQL("INSERT INTO {}.schema_version VALUES (%s)").format(
                        sql.Identifier(self._schema)
                    ),
                    (version,),
                )
            now = str(self._clock())
            for key, value in (
                ("instance_id", uuid.uuid4().hex),
                ("created_ns", now),
                ("schema_version", str(postgres_schema.CURRENT_VERSION)),
            ):
                await conn.execute(
                    sql.SQL(
                        "INSERT INTO {}.meta VALUES (%s, %s) ON CONFLICT (key) DO NOTHING"
                    ).format(sql.Identifier(self._schema)),
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
        days = {postgres_schema.day_of(r.ts_ns) for b in batches for r in b.records}
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
        if result.stored:
            self._appended(days, len(result.stored))
        return result

    def _appended(self, days: set[int], rows: int) -> None:
        """Count appended rows; past VACUUM_EVERY, vacuum their partitions in the background."""
        self._unvacuumed += rows
        self._unvacuumed_days |= days
        busy = self._vacuuming is not None and not self._vacuuming.done()
        if self._unvacuumed < VACUUM_EVERY or busy or self._closing.is_set():
            return
        days, self._unvacuumed_days, self._unvacuumed = self._unvacuumed_days, set(), 0
        self._vacuuming = asyncio.create_task(self._vacuum(sorted(days)))

    async def _vacuum(self, days: list[int]) -> None:
        async def work(conn: psycopg.AsyncConnection[Any]) -> None:
            for day in days:
                # SKIP_LOCKED: another replica's (or autovacuum's) vacuum of it is as good.
                # TRUNCATE OFF: never try for the lock that would make appends wait.
                await conn.execute(
                    sql.SQL(
                        "VACUUM (INDEX_CLEANUP OFF, PROCESS_TOAST OFF, TRUNCATE OFF, "
                        "SKIP_LOCKED) {}.{}"
                    ).format(
                        sql.Identifier(self._schema),
                        sql.Identifier(postgres_schema.partition_name(day)),
                    )
                )

        try:
            await self._run(work)
        except (base.StoreError, psycopg.Error) as err:
            # A partition retention dropped meanwhile, a closing pool: autovacuum remains.
            log.info("vacuuming new rows' partitions failed: %s", err)

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
            if query.text is not None and postgres_search.should_walk(
                query, await self._words.get(conn)
            ):
                return await _walk(conn, query, watermark)
            statement, params = postgres_sql.select(query, watermark)
            cursor = await conn.execute(statement.encode(), params)
            return [postgres_sql.from_row(row) for row in await cursor.fetchall()]

        return await self._run(work)

    async def count(self, query: base.Query) -> int:
        base.check_query(query)
        terms, params = postgres_sql.filters(query)
        rows = await self._fetch(
            f"SELECT count(*) FROM records {postgres_sql.where(terms)}".encode(), params
        )
        return int(rows[0][0])

    async def stats(self, query: base.Query) -> base.Stats:
        base.check_query(query)
        terms, params = postgres_sql.filters(query)
        statement = (
            "SELECT level, container, execution_id, namespace, kind, workload, pod, count(*), "
            f"count(*) FILTER (WHERE flags & {records.FLAG_TRUNCATED} <> 0), "
            f"count(*) FILTER (WHERE flags & {records.FLAG_SPLIT} <> 0), "
            f"sum(size), max(ts_ns) FROM records {postgres_sql.where(terms)} "
            "GROUP BY level, container, execution_id, namespace, kind, workload, pod"
        )
        drop_terms, drop_params = postgres_sql.drops_filters(query)
        drops_sql = f"SELECT coalesce(sum(lines), 0) FROM drops {postgres_sql.where(drop_terms)}"

        async def work(conn: psycopg.AsyncConnection[Any]) -> base.Stats:
            groups = await (await conn.execute(statement.encode(), params)).fetchall()
            dropped = await (await conn.execute(drops_sql.encode(), drop_params)).fetchone()
            return contract_rows.stats(groups, int(dropped[0]) if dropped else 0)

        return await self._run(work)

    async def estimated_totals(self) -> base.Totals:
        """Rows and bytes from the planner's statistics of each day partition: no scan, so a
        metrics scrape stays cheap at any size. Estimates (as fresh as the last ANALYZE or
        autovacuum), and `bytes` is the partitions' table size rather than message bytes."""

        async def work(conn: psycopg.AsyncConnection[Any]) -> base.Totals:
            cursor = await conn.execute(
                "SELECT coalesce(sum(greatest(c.reltuples, 0)), 0)::bigint, "
                "coalesce(sum(pg_relation_size(c.oid)), 0)::bigint "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass",
                (f'"{self._schema}".records',),
            )
            row = await cursor.fetchone()
            return base.Totals(int(row[0]), int(row[1])) if row else base.Totals(0, 0)

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
        terms, params = postgres_sql.filters(query)

        async def work(conn: psycopg.AsyncConnection[Any]) -> int:
            cursor = await conn.execute(
                f"DELETE FROM records {postgres_sql.where(terms)}".encode(), params
            )
            return cursor.rowcount

        return await self._run(work)

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


async def _walk(
    conn: psycopg.AsyncConnection[Any], query: base.Query, watermark: int
) -> list[base.StoredRecord]:
    """A text search by walking the scope in time order (see postgres_search), finished through
    the word index from where the walk gave up when it found too few. The walk reads keys only
    (from the walk index for a workload, plus that stretch's long rows); the page's full rows
    are read by key afterwards."""
    rows = postgres_search.WALK_ROWS
    wanted = query.tail if query.tail is not None else query.limit
    descending = query.tail is not None or query.order == "desc"
    statement, params = postgres_sql.walk(query, watermark, rows)
    cursor = await conn.execute(statement.encode(), params)
    keys: list[tuple[int, int]] = []
    gave_up: tuple[int, int] | None = None
    for ts, record_id, hit, place in await cursor.fetchall():
        if hit:
            keys.append((ts, record_id))
        if place == rows:
            gave_up = (ts, record_id)
    if postgres_sql.walks_words_index(query):
        # The walk saw the short rows up to where it stopped: the wanted-th hit, the row where
        # it gave up, or the scope's end. The long rows of that stretch join them in order.
        stopped = keys[-1] if len(keys) >= wanted else gave_up
        statement, params = postgres_sql.walk_long(query, watermark, stopped)
        cursor = await conn.execute(statement.encode(), params)
        long_keys = [(ts, record_id) for ts, record_id in await cursor.fetchall()]
        if long_keys:
            keys = sorted(keys + long_keys, reverse=descending)[:wanted]
    rest: list[base.StoredRecord] = []
    if gave_up is not None and len(keys) < wanted:
        statement, params = postgres_sql.select(
            query, watermark, beyond=gave_up, limit=wanted - len(keys)
        )
        cursor = await conn.execute(statement.encode(), params)
        rest = [postgres_sql.from_row(row) for row in await cursor.fetchall()]
    hits = await _rows_in_order(conn, keys)
    if query.tail is not None:
        # The walk went newest first; a tail answers oldest first, and the rest is older.
        return rest + hits[::-1]
    return hits + rest


async def _rows_in_order(
    conn: psycopg.AsyncConnection[Any], keys: list[tuple[int, int]]
) -> list[base.StoredRecord]:
    """The full records of `keys`, in the order of `keys` (without any deleted since the walk
    read them: that was another statement, with its own snapshot)."""
    if not keys:
        return []
    statement, params = postgres_sql.rows_by_key(keys)
    cursor = await conn.execute(statement.encode(), params)
    by_id = {record.id: record for record in map(postgres_sql.from_row, await cursor.fetchall())}
    return [by_id[record_id] for _, record_id in keys if record_id in by_id]


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
    cursor = await conn.execute(
        "UPDATE records SET kind = %s, workload = %s, workload_uid = %s "
        f"WHERE namespace = %s AND pod = %s AND kind = '' {same_pod}".encode(),
        [workload.kind, workload.name, uid, namespace, pod, *extra],
    )
    updated = cursor.rowcount
    await conn.execute(
        "UPDATE drops SET kind = %s, workload = %s "
        f"WHERE namespace = %s AND pod = %s AND kind = '' {same_pod}".encode(),
        [workload.kind, workload.name, namespace, pod, *extra],
    )
    return updated


_WORKLOAD_COLUMNS: Final = "namespace, kind, name, uid, spec, generation, created_ns, deleted"
_POD_COLUMNS: Final = "namespace, name, uid, labels, workload_kind, workload_name, phase, obj"
# Byte order, as SQLite sorts, whatever the database's collation.
_WORKLOAD_ORDER: Final = 'ORDER BY namespace COLLATE "C", kind COLLATE "C", name COLLATE "C"'
_POD_ORDER: Final = 'ORDER BY namespace COLLATE "C", name COLLATE "C"'
