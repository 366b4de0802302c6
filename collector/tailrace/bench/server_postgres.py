"""`tailrace bench server` on PostgreSQL: ingest through real `tailrace server` replicas.

Replicas share one store, so the issue's ingest figure is taken through several of them:
`bench_replicas` (which `tailrace bench server --store postgresql://...` runs with one and two
replicas) starts the servers, one pushing client process per replica, each with its own source
keys, and reports records/s over all of them. The query benchmark's store is filled through
`Store.append` like every other store's (`server.fill_in_batches`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

import httpx

from tailrace.bench import load


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
