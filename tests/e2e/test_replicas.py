"""Two `tailrace server` replicas on one PostgreSQL: ingest through one, follow through the other.

Records are pushed with a real gRPC client (the agent's `BatchBuilder` and `Ingest/Push`) and
followed over SSE; a replica is killed with SIGKILL mid-stream. Whatever happens, the follower
sees every record exactly once, and a batch resent to both replicas is stored once.
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import httpx_sse
import orjson
import pytest

from tailrace import records
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc
from tests.server.storage import pg
from tests.support import processes

pytestmark = pytest.mark.postgres

T0 = 1_700_000_000_000_000_000
BATCH = 50
NAMESPACE = "demo"
POD = "web-1"
SOURCE = records.SourceInfo(
    key=f"node-1/{NAMESPACE}_{POD}_uid-1/app/0.log",
    namespace=NAMESPACE,
    pod=POD,
    pod_uid="uid-1",
    container="app",
    node="node-1",
)


@pytest.fixture
def schema(tmp_path: Path) -> Iterator[str]:
    pg.require()
    name = pg.schema_for(tmp_path, "replicas")
    yield name
    pg.drop(name)


@pytest.fixture
def replicas(tmp_path: Path, schema: str) -> Iterator[tuple[processes.ServerProcess, ...]]:
    servers = tuple(
        processes.server_process(tmp_path, store=pg.url(schema, pool_max="4")) for _ in range(2)
    )
    with processes.running(*servers):
        for server in servers:
            server.start()
        for server in servers:
            server.wait_ready()
        yield servers


def batch(number: int) -> ingest_pb2.Batch:
    """Batch `number` of the one source: records number*BATCH .. number*BATCH+BATCH-1."""
    builder = codec.BatchBuilder(SOURCE)
    for i in range(number * BATCH, (number + 1) * BATCH):
        builder.add(
            T0 + i * 1000,
            records.STREAM_CODES["stdout"],
            records.LEVEL_CODES["INFO"],
            f"record {i:05d}".encode(),
            end_offset=(i + 1) * 100,
        )
    return builder.build()


def push(server: processes.ServerProcess, *batches: ingest_pb2.Batch) -> ingest_pb2.PushResponse:
    with grpc.insecure_channel(server.grpc_addr) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)
        response: ingest_pb2.PushResponse = stub.Push(
            ingest_pb2.PushRequest(batches=list(batches)), timeout=30
        )
        return response


@dataclass
class Follower:
    """An SSE follower of the pod's logs on one replica, collecting (id, message) in a thread."""

    server: processes.ServerProcess
    last_event_id: str | None = None
    received: list[tuple[int, str]] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Follower:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        headers = {"Accept": "text/event-stream"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        try:
            with (
                httpx.Client(base_url=self.server.url, timeout=60) as client,
                httpx_sse.connect_sse(
                    client,
                    "GET",
                    f"/v1/namespaces/{NAMESPACE}/pods/{POD}/logs",
                    params={"follow": "true"},
                    headers=headers,
                ) as source,
            ):
                for event in source.iter_sse():
                    if event.event not in ("", "message") or not event.id:
                        continue
                    self.received.append((int(event.id), orjson.loads(event.data)["message"]))
        except (httpx.HTTPError, httpx_sse.SSEError):
            pass  # the replica was killed
        finally:
            self.ended.set()

    def wait_for(self, count: int) -> None:
        processes.wait_until(lambda: len(self.received) >= count, timeout_s=30)

    @property
    def last_id(self) -> str:
        return str(self.received[-1][0])


def expected(batches: range) -> list[str]:
    return [f"record {i:05d}" for n in batches for i in range(n * BATCH, (n + 1) * BATCH)]


def assert_exactly_once(received: list[tuple[int, str]], batches: range) -> None:
    ids = [record_id for record_id, _ in received]
    assert len(ids) == len(set(ids)), "a record was delivered twice"
    assert sorted(message for _, message in received) == expected(batches)


def test_a_follower_on_one_replica_sees_what_the_other_ingests_when_the_ingester_dies(
    replicas: tuple[processes.ServerProcess, ...],
) -> None:
    a, b = replicas
    follower = Follower(b).start()
    processes.wait_until(lambda: _subscribed(b))
    for number in range(5):
        push(a, batch(number))
    follower.wait_for(5 * BATCH)
    a.kill()
    # The agent never saw the ack of batch 4 (say): it resends it, now to the surviving replica.
    resent = push(b, batch(4))
    assert (resent.stored, resent.duplicates) == (0, BATCH)
    for number in range(5, 10):
        push(b, batch(number))
    follower.wait_for(10 * BATCH)
    assert_exactly_once(follower.received, range(10))
    ids = [record_id for record_id, _ in follower.received]
    assert ids == sorted(ids)


def test_a_follower_whose_replica_dies_resumes_on_the_other_without_gap_or_repeat(
    replicas: tuple[processes.ServerProcess, ...],
) -> None:
    a, b = replicas
    first = Follower(b).start()
    processes.wait_until(lambda: _subscribed(b))
    for number in range(4):
        push(a, batch(number))
    first.wait_for(4 * BATCH)
    b.kill()
    assert first.ended.wait(30)
    for number in range(4, 7):  # stored while the follower is disconnected
        push(a, batch(number))
    second = Follower(a, last_event_id=first.last_id).start()
    processes.wait_until(lambda: _subscribed(a))
    for number in range(7, 10):
        push(a, batch(number))
    second.wait_for(6 * BATCH)
    assert_exactly_once(first.received + second.received, range(10))


def test_one_resend_to_both_replicas_at_once_is_stored_once(
    replicas: tuple[processes.ServerProcess, ...],
) -> None:
    a, b = replicas
    key = f"node-2/{NAMESPACE}_{POD}_uid-1/app/{uuid.uuid4().hex}.log"
    resend = batch(0)
    resend.source.key = key
    for _ in range(5):
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(lambda server: push(server, resend), (a, b)))
        assert sum(r.stored for r in answers) + sum(r.duplicates for r in answers) == 2 * BATCH
    assert sum(r.stored for r in answers) == 0
    total = httpx.get(
        f"{a.url}/v1/namespaces/{NAMESPACE}/pods/{POD}/logs",
        params={"limit": 1000},
        headers={"Accept": "application/json"},
        timeout=10,
    ).json()["records"]
    assert len(total) == BATCH


def _subscribed(server: processes.ServerProcess) -> bool:
    metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    for line in metrics.splitlines():
        if line.startswith("tailrace_server_live_streams_open"):
            return float(line.rsplit(" ", 1)[1]) >= 1
    return False
