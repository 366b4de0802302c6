"""The load the server benchmarks put on a server: tailrace.v1 batches, pushed as agents push.

Used by `bench.server` (SQLite and the in-process store) and `bench.server_postgres` (real
replicas sharing one PostgreSQL store) alike.
"""

from __future__ import annotations

import asyncio
import random
import socket
import time

import grpc

from tailrace import records
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2

NAMESPACES = ("payments", "search", "media", "batch")
BATCH_RECORDS = 4_000
T0 = 1_760_000_000_000_000_000


def message(i: int, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.0001:
        return f"panic: deadlock detected in worker {i % 97} after {i % 5000} ms"
    if roll < 0.01:
        return f"upstream error: connection refused by 10.0.{i % 255}.{i % 7}:5432 attempt={i % 4}"
    return (
        f"request handled method=GET path=/api/items/{i % 100_000} status=200 "
        f"duration_ms={i % 250} user=u{i % 5000} region=eu-{i % 3}"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def build_requests(total: int, sources: int, run: str) -> list[bytes]:
    """Requests of `total` records over `sources` files; `run` makes the source keys this run's
    own, so a second run against the same persistent store is not deduplicated away."""
    rng = random.Random(1)
    requests: list[bytes] = []
    offsets = [0] * sources
    made = 0
    while made < total:
        s = len(requests) % sources
        namespace = NAMESPACES[s % len(NAMESPACES)]
        source = records.SourceInfo(
            key=f"bench-node/{run}/{s}:1:0",
            namespace=namespace,
            pod=f"ingest-{s}",
            pod_uid=f"uid-{s}",
            container="app",
            workload=f"Function/ingest-{s % 4}",
        )
        builder = codec.BatchBuilder(source)
        for _ in range(min(BATCH_RECORDS, total - made)):
            text = message(made, rng).encode()
            offsets[s] += len(text) + 40
            builder.add(T0 + made * 1000, ord("o"), 2, text, offsets[s])
            made += 1
        requests.append(ingest_pb2.PushRequest(batches=[builder.build()]).SerializeToString())
    return requests


async def push_in_lanes(target: str, requests: list[bytes], lanes: int) -> tuple[float, int]:
    """Push every request over one channel, `lanes` calls at a time; returns (seconds, stored).

    Request i goes in lane i % lanes, and `build_requests` gives request i source i % sources
    with sources a multiple of lanes, so each source's batches go from one lane, in order, as an
    agent sends them: a later batch overtaking an earlier one would make the server skip the
    earlier as already covered by the source's high-water mark.
    """
    async with grpc.aio.insecure_channel(
        target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as channel:
        push = channel.unary_unary(
            "/tailrace.v1.Ingest/Push",
            request_serializer=lambda raw: raw,
            response_deserializer=ingest_pb2.PushResponse.FromString,
        )
        stored = 0

        async def lane(first: int) -> None:
            nonlocal stored
            for raw in requests[first::lanes]:
                while True:
                    try:
                        reply = await push(raw)
                        break
                    except grpc.aio.AioRpcError as err:
                        if err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                            raise
                        await asyncio.sleep(0.01)
                stored += reply.stored

        started = time.perf_counter()
        await asyncio.gather(*(lane(first) for first in range(lanes)))
        return time.perf_counter() - started, stored
