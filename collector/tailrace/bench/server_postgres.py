"""`tailrace bench server` on PostgreSQL: topping the store up with INSERT ... SELECT.

The same records as `server.fill_in_batches` (the same 200 pods in 40 workloads, the same message
mix and timestamps, picked by the same hashes of the id), generated inside PostgreSQL so ten million
rows take minutes rather than an hour of Python. When the fill more than doubles the table, the
records indexes are dropped first and rebuilt at the end (a sorted build is several times cheaper
than maintaining them row by row); the ids come from the store's own `allocate_ids`.

Also ingest through real `tailrace server` replicas sharing one store (`bench_replicas`, which
`tailrace bench server --store postgresql://...` runs with one and two replicas): one pushing
client process per replica, each with its own source keys, records/s over all of them.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, Final

import httpx
import psycopg
from psycopg import sql

from tailrace.bench import load
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
        # What a replica does every 50,000 appended rows (postgres.VACUUM_EVERY) and autovacuum
        # within a minute where it is on: the visibility map lets a workload's text search walk
        # its index alone.
        await conn.execute("VACUUM (ANALYZE) records")


# -- ingest through several `tailrace server` replicas ------------------------------------------


def _replica_client(target: str, total: int, concurrency: int, run: str, pipe: Connection) -> None:
    """Runs in a child process: build the requests, wait for the go, push them to one replica."""
    requests = load.build_requests(total, concurrency * 2, run)
    pipe.send("ready")
    pipe.recv()
    pipe.send(asyncio.run(load.push_in_lanes(target, requests, concurrency)))


async def _wait_ready(port: int) -> bool:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        for _ in range(300):
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    return False


async def bench_replicas(
    url: str, replicas: int, total: int, concurrency: int
) -> dict[str, float] | None:
    """Ingest through `replicas` real `tailrace server` processes sharing the store at `url`,
    one pushing client process per replica (`total` records split between them); records/s is
    what all of them stored divided by the slowest client's time."""
    run = f"{time.time_ns():x}"
    servers: list[subprocess.Popen[bytes]] = []
    clients: list[tuple[Any, Connection]] = []
    spawn = multiprocessing.get_context("spawn")
    try:
        grpc_ports = []
        for _ in range(replicas):
            http_port, grpc_port = load.free_port(), load.free_port()
            servers.append(
                subprocess.Popen(  # noqa: ASYNC220 (started before any timing)
                    [
                        sys.executable,
                        "-m",
                        "tailrace",
                        "server",
                        "--store",
                        url,
                        "--http-addr",
                        f"127.0.0.1:{http_port}",
                        "--grpc-addr",
                        f"127.0.0.1:{grpc_port}",
                        "--log-level",
                        "ERROR",
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
            if not await _wait_ready(http_port):
                return None
            grpc_ports.append(grpc_port)
        share = total // replicas
        for index, port in enumerate(grpc_ports):
            parent, child = spawn.Pipe()
            process = spawn.Process(
                target=_replica_client,
                # Each client its own sources: a source's records go through one replica.
                args=(f"127.0.0.1:{port}", share, concurrency, f"{run}-{index}", child),
            )
            process.start()
            clients.append((process, parent))
        for _, pipe in clients:
            await asyncio.to_thread(pipe.recv)
        for _, pipe in clients:
            pipe.send("go")
        results = [await asyncio.to_thread(pipe.recv) for _, pipe in clients]
        elapsed = max(seconds for seconds, _ in results)
        stored = sum(n for _, n in results)
        return {"records": float(stored), "seconds": elapsed, "records_per_s": stored / elapsed}
    finally:
        for process, _ in clients:
            process.join(5)
            if process.is_alive():
                process.kill()
        for proc in servers:
            proc.terminate()
        for proc in servers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
