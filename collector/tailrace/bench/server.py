"""`tailrace bench server`: ingest rate, query latency and live-tail latency of the server.

Three figures, each through the real code path:

1. Sustained ingest: a client process pushes prebuilt tailrace.v1 batches over loopback gRPC to the
   ingest server (in this process) writing into the store; records/s and MB/s of messages.
2. Query latency: the store is topped up to N records (in big batches), then `limit=100`
   queries of several shapes (a workload's newest page, a pod's pages at random cursors, with and
   without full-text `q` of common, rare and very rare words) are timed; p50/p99 per shape.
3. Write-to-follower latency: a real `tailrace server` process, 100 HTTP followers
   (`follow=true`, NDJSON) on one pod, records pushed over gRPC carrying their send time; p50/p99
   from push to each follower's read.

Figures are printed, never asserted: the machine may be shared and the numbers noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import httpx
import orjson
from prometheus_client import CollectorRegistry

from tailrace import records
from tailrace.bench import load, server_postgres
from tailrace.bench.load import NAMESPACES, T0, message
from tailrace.server import ingest, storage
from tailrace.server.storage import base
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc

WORKLOADS_PER_NAMESPACE = 10
PODS_PER_WORKLOAD = 5
# How often the words searched for occur in generated messages.
COMMON_WORD, RARE_WORD, VERY_RARE_WORD = "handled", "refused", "deadlock"


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# -- 1. ingest --------------------------------------------------------------------------------


def _ingest_client(target: str, total: int, concurrency: int, pipe: Connection) -> None:
    """Runs in a child process: build the requests, wait for the go, push them all."""
    requests = load.build_requests(total, sources=concurrency * 2, run=f"{time.time_ns():x}")
    payload = sum(len(r) for r in requests)
    pipe.send(("ready", payload))
    pipe.recv()
    elapsed, stored = asyncio.run(load.push_in_lanes(target, requests, concurrency))
    pipe.send(("done", elapsed, stored))


async def bench_ingest(store: base.Store, total: int, concurrency: int) -> dict[str, float]:
    server = await ingest.serve(
        "127.0.0.1:0",
        store,
        lambda stored: None,
        lambda token: True,
        CollectorRegistry(),
        max_message_bytes=64 * 1024 * 1024,
        max_in_flight=concurrency,
    )
    spawn = multiprocessing.get_context("spawn")
    parent, child = spawn.Pipe()
    process = spawn.Process(
        target=_ingest_client, args=(f"127.0.0.1:{server.port}", total, concurrency, child)
    )
    process.start()
    try:
        _, payload = await asyncio.to_thread(parent.recv)
        before = await store.count(base.Query())
        parent.send("go")
        _, elapsed, stored = await asyncio.to_thread(parent.recv)
        await asyncio.to_thread(process.join)
    finally:
        if process.is_alive():
            process.kill()
        await server.stop(None)
    added = await store.count(base.Query()) - before
    message_bytes = sum(len(message(i, random.Random(1)).encode()) for i in range(1000)) / 1000
    return {
        "records": float(stored),
        "verified_stored": float(added),
        "seconds": elapsed,
        "records_per_s": stored / elapsed,
        "message_mb_per_s": stored * message_bytes / elapsed / 1e6,
        "wire_mb_per_s": payload / elapsed / 1e6,
    }


# -- 2. queries -------------------------------------------------------------------------------


def _scope(i: int) -> tuple[str, str, str]:
    namespace = NAMESPACES[i % len(NAMESPACES)]
    workload = f"fn-{(i // len(NAMESPACES)) % WORKLOADS_PER_NAMESPACE}"
    pod = f"{workload}-{(i // (len(NAMESPACES) * WORKLOADS_PER_NAMESPACE)) % PODS_PER_WORKLOAD}"
    return namespace, workload, pod


def fill_message(i: int) -> tuple[str, str]:
    """Record i's (message, level) in the query benchmark's store, as `fill_in_batches` writes
    it: a roll from i, not a random generator, so every store holds the same records."""
    roll = (i * 2654435761) % 10000
    level = "ERROR" if roll % 50 == 1 else "INFO"
    if roll == 0:
        return f"panic: deadlock detected in worker {i % 97} after {i % 5000} ms", level
    if roll < 100:
        text = f"upstream error: connection refused by 10.0.{i % 255}.{i % 7}:5432 attempt={i % 4}"
        return text, level
    return (
        f"request handled method=GET path=/api/items/{i % 100000} status=200 "
        f"duration_ms={i % 250} user=u{i % 5000} region=eu-{i % 3}"
    ), level


async def fill_in_batches(store: base.Store, target: int, progress: Callable[[str], None]) -> None:
    """Top the store up to `target` records through `Store.append`, as agents would send them:
    slabs of 100,000 records over the 200 pods (record i goes to pod (i * 7919) % 200), one
    batch per pod per slab, several records sharing each timestamp."""
    have = await store.count(base.Query())
    started = time.perf_counter()
    i = have
    slab = 100_000
    while i < target:
        end = min(target, i + slab)
        by_pod: dict[int, list[base.NewRecord]] = {}
        for j in range(i, end):
            k = (j * 7919) % 200
            namespace, workload, pod = _scope(k)
            text, level = fill_message(j)
            by_pod.setdefault(k, []).append(
                base.NewRecord(
                    ts_ns=T0 + (j // 4) * 1000,
                    namespace=namespace,
                    pod=pod,
                    container="app",
                    stream="stdout",
                    level=level,
                    message=text,
                    kind="Function",
                    workload=workload,
                )
            )
        await store.append(
            [
                base.IngestBatch(f"fill-{i}-{k}", batch, list(range(1, len(batch) + 1)), 0)
                for k, batch in sorted(by_pod.items())
            ]
        )
        i = end
        rate = (i - have) / (time.perf_counter() - started)
        progress(f"  filled {i:,} records ({rate:,.0f}/s)")


async def time_queries(
    make: Callable[[random.Random], base.Query],
    run: Callable[[base.Query], Awaitable[Any]],
    n: int,
) -> dict[str, float]:
    rng = random.Random(3)
    samples: list[float] = []
    returned = 0
    for _ in range(n):
        query = make(rng)
        started = time.perf_counter()
        found = await run(query)
        samples.append(time.perf_counter() - started)
        returned += len(found)
    return {
        "p50_ms": percentile(samples, 0.5) * 1000,
        "p99_ms": percentile(samples, 0.99) * 1000,
        "avg_rows": returned / n,
    }


def query_shapes(total: int) -> dict[str, Callable[[random.Random], base.Query]]:
    span = (total // 4) * 1000

    def workload(rng: random.Random, **extra: Any) -> base.Query:
        namespace, name, _ = _scope(rng.randrange(200))
        return base.Query(namespace=namespace, kind="Function", workload=name, **extra)

    def pod_page(rng: random.Random) -> base.Query:
        namespace, _, pod = _scope(rng.randrange(200))
        after = (T0 + rng.randrange(span), 0)
        return base.Query(namespace=namespace, pod=pod, after=after, limit=100)

    return {
        "workload newest 100": lambda rng: workload(rng, order="desc", limit=100),
        "pod page at random cursor": pod_page,
        "all namespaces newest 100": lambda rng: base.Query(order="desc", limit=100),
        f"workload q={COMMON_WORD} (~99%)": lambda rng: workload(
            rng, order="desc", limit=100, text=COMMON_WORD
        ),
        f"workload q={RARE_WORD} (~1%)": lambda rng: workload(
            rng, order="desc", limit=100, text=RARE_WORD
        ),
        f"workload q='connection {RARE_WORD}' phrase": lambda rng: workload(
            rng, order="desc", limit=100, text=f"connection {RARE_WORD}"
        ),
        f"all namespaces q={VERY_RARE_WORD} (~0.01%)": lambda rng: base.Query(
            order="desc", limit=100, text=VERY_RARE_WORD
        ),
    }


# -- 3. followers -----------------------------------------------------------------------------


async def bench_followers(
    store_url: str, followers: int, records_to_push: int, say: Callable[[str], None]
) -> dict[str, float] | None:
    http_port, grpc_port = load.free_port(), load.free_port()
    server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any timing)
        [
            sys.executable,
            "-m",
            "tailrace",
            "server",
            "--store",
            store_url,
            "--http-addr",
            f"127.0.0.1:{http_port}",
            "--grpc-addr",
            f"127.0.0.1:{grpc_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base_url = f"http://127.0.0.1:{http_port}"
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            for _ in range(200):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                say("  server did not become ready; follower latency not measured")
                return None
        latencies: list[float] = []
        ready = asyncio.Event()
        connected = 0
        done = asyncio.Event()
        path = "/v1/namespaces/live/pods/live-0/logs"

        async def follower(client: httpx.AsyncClient) -> None:
            nonlocal connected
            async with client.stream(
                "GET",
                path,
                params={"follow": "true", "tailLines": "0"},
                headers={"accept": "application/x-ndjson"},
            ) as response:
                response.raise_for_status()
                connected += 1
                if connected == followers:
                    ready.set()
                seen = 0
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    record = orjson.loads(line)
                    sent = float(record["message"].split()[1])
                    latencies.append(time.time() - sent)
                    seen += 1
                    if seen == records_to_push:
                        return

        limits = httpx.Limits(max_connections=followers + 10)
        async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
            tasks = [asyncio.create_task(follower(client)) for _ in range(followers)]
            await asyncio.wait_for(ready.wait(), 60)
            await asyncio.sleep(0.5)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = ingest_pb2_grpc.IngestStub(channel)
                # A source key of this run's own: a persistent store holds earlier runs' marks.
                key = f"live/{time.time_ns():x}:1:0"
                source = records.SourceInfo(key, "live", "live-0", "uid-live", "app")
                offset = 0
                for i in range(records_to_push):
                    builder = codec.BatchBuilder(source)
                    text = f"sent {time.time():.6f} seq={i}".encode()
                    offset += len(text) + 40
                    builder.add(time.time_ns(), ord("o"), 2, text, offset)
                    await stub.Push(ingest_pb2.PushRequest(batches=[builder.build()]))
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
            done.set()
        return {
            "followers": float(followers),
            "deliveries": float(len(latencies)),
            "p50_ms": percentile(latencies, 0.5) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
        }
    except (httpx.HTTPError, TimeoutError, grpc.aio.AioRpcError) as err:
        say(f"  follower benchmark failed: {err!r}")
        return None
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


# -- main -------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tailrace bench server", description=__doc__.split("\n")[0])
    p.add_argument("--store", help="store URL (default: a SQLite file in a temporary directory)")
    p.add_argument("--records", type=int, help="records stored for the query benchmark")
    p.add_argument("--ingest-records", type=int, help="records pushed for the ingest benchmark")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent Push calls")
    p.add_argument("--followers", type=int, default=100)
    p.add_argument("--queries", type=int, default=200, help="queries timed per shape")
    p.add_argument("--quick", action="store_true", help="200k records, fewer queries")
    p.add_argument("--skip-followers", action="store_true")
    return p


async def _main(args: argparse.Namespace) -> int:
    total = args.records or (200_000 if args.quick else 10_000_000)
    ingest_total = args.ingest_records or (100_000 if args.quick else 1_000_000)
    queries = 50 if args.quick and args.queries == 200 else args.queries
    with tempfile.TemporaryDirectory(prefix="tailrace-bench-") as tmp:
        db_path = str(Path(tmp) / "bench.db")
        url = args.store or f"sqlite://{db_path}"
        print(f"store: {url}   cores: {os.cpu_count()}   load: {os.getloadavg()[0]:.1f}")
        store = storage.open_store(url)
        await store.open()
        try:
            print(
                f"ingest: {ingest_total:,} records over gRPC, {args.concurrency} concurrent pushes"
            )
            result = await bench_ingest(store, ingest_total, args.concurrency)
            print(
                f"  {result['records_per_s']:,.0f} records/s, "
                f"{result['message_mb_per_s']:.1f} MB/s of messages "
                f"({result['wire_mb_per_s']:.1f} MB/s on the wire), "
                f"{result['records']:,.0f} stored in {result['seconds']:.1f} s "
                f"(store holds {result['verified_stored']:,.0f} more)"
            )
            print(f"queries: filling the store to {total:,} records")
            started = time.perf_counter()
            say = lambda line: print(line, end="\r", flush=True)  # noqa: E731
            await fill_in_batches(store, total, say)
            print(
                "\n  filled through Store.append, one batch per pod, "
                f"in {time.perf_counter() - started:.0f} s"
            )
            for name, make in query_shapes(total).items():
                figures = await time_queries(make, store.query, queries)
                print(
                    f"  {name:45s} p50 {figures['p50_ms']:7.2f} ms   "
                    f"p99 {figures['p99_ms']:7.2f} ms   ({figures['avg_rows']:.0f} rows)"
                )
        finally:
            await store.close()
        if url.startswith("postgresql://"):
            # Replicas share the store: the figure is ingest through two of them.
            for replicas in (1, 2):
                shared = await server_postgres.bench_replicas(
                    url, replicas, ingest_total, args.concurrency
                )
                if shared is None:
                    print(f"  {replicas} replica(s): a server did not become ready")
                    return 1
                print(
                    f"ingest through {replicas} real server replica(s): "
                    f"{shared['records_per_s']:,.0f} records/s "
                    f"({shared['records']:,.0f} stored in {shared['seconds']:.1f} s)"
                )
        if args.skip_followers:
            return 0
        print(f"followers: {args.followers} HTTP followers on one pod, real `tailrace server`")
        live = await bench_followers(url, args.followers, 50, lambda line: print(line))
        if live is not None:
            print(
                f"  write-to-follower p50 {live['p50_ms']:.1f} ms   p99 {live['p99_ms']:.1f} ms   "
                f"({live['deliveries']:,.0f} deliveries)"
            )
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return asyncio.run(_main(args))
