"""Topping a PostgreSQL store up for `tailrace bench server` with INSERT ... SELECT.

The same rows as `server.fill_sqlite_by_sql` (the same 200 pods in 40 workloads, the same message
mix and timestamps, picked by the same hashes of the id), generated inside PostgreSQL so ten million
rows take minutes rather than an hour of Python. When the fill more than doubles the table, the
records indexes are dropped first and rebuilt at the end (a sorted build is several times cheaper
than maintaining them row by row); the ids come from the store's own `allocate_ids`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

import psycopg
from psycopg import sql

from tailrace.server.storage import postgres, postgres_schema

CHUNK: Final = 500_000
_NAMESPACES: Final = "(ARRAY['payments', 'search', 'media', 'batch'])"

_FILL_SQL: Final = f"""
INSERT INTO records
SELECT i, %(t0)s + (i / 4) * 1000, 0, {_NAMESPACES}[1 + k %% 4], 'Function',
    'fn-' || (k / 4) %% 10, '', 'fn-' || (k / 4) %% 10 || '-' || (k / 40) %% 5, '', 'app', '', 0,
    'stdout', CASE WHEN roll %% 50 = 1 THEN 'ERROR' ELSE 'INFO' END,
    CASE WHEN roll %% 50 = 1 THEN 4 ELSE 2 END,
    message, ' ' || trim(regexp_replace(lower(message), '[^a-z0-9]+', ' ', 'g')) || ' ',
    '', '{{}}', 'agent', 0, octet_length(message)
FROM (
    SELECT i, (i * 7919) %% 200 AS k, (i * 2654435761) %% 10000 AS roll,
        CASE
        WHEN (i * 2654435761) %% 10000 = 0 THEN
            format('panic: deadlock detected in worker %%s after %%s ms', i %% 97, i %% 5000)
        WHEN (i * 2654435761) %% 10000 < 100 THEN
            format('upstream error: connection refused by 10.0.%%s.%%s:5432 attempt=%%s',
                   i %% 255, i %% 7, i %% 4)
        ELSE format('request handled method=GET path=/api/items/%%s status=200 duration_ms=%%s '
                    'user=u%%s region=eu-%%s', i %% 100000, i %% 250, i %% 5000, i %% 3)
        END AS message
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS i
) AS generated
"""


async def fill_by_sql(
    store: postgres.PostgresStore, target: int, t0: int, progress: Callable[[str], None]
) -> None:
    await store.ensure_partitions([postgres_schema.day_of(t0)])
    conn = await psycopg.AsyncConnection.connect(
        store.conninfo, autocommit=True, options=f"-c search_path={store.schema},public"
    )
    async with conn:
        row = await (await conn.execute("SELECT count(*) FROM records")).fetchone()
        have = int(row[0]) if row else 0
        if have >= target:
            return
        indexes: list[tuple[str, str]] = []
        if target - have > have:
            cursor = await conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = %s AND tablename = 'records'",
                (store.schema,),
            )
            indexes = [(name, definition) for name, definition in await cursor.fetchall()]
            for name, _ in indexes:
                await conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        started = time.perf_counter()
        done = 0
        while have + done < target:
            n = min(CHUNK, target - have - done)
            async with conn.transaction():
                row = await (await conn.execute("SELECT allocate_ids(%s)", (n,))).fetchone()
                first = int(row[0]) if row else 1
                await conn.execute(_FILL_SQL, {"t0": t0, "first": first, "last": first + n - 1})
            done += n
            rate = done / (time.perf_counter() - started)
            progress(f"  filled {have + done:,} records ({rate:,.0f}/s)")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        for name, definition in indexes:
            progress(f"  filled {have + done:,} records; building index {name}   ")
            # Definitions on a partitioned table read "ON ONLY": build every partition's too.
            await conn.execute(definition.replace(" ON ONLY ", " ON ", 1).encode())
        await conn.execute("ANALYZE records")
