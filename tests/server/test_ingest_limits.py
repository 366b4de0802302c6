"""Ingest under pressure: the in-flight bound, a store that is down, a failing live tail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import pytest
from prometheus_client import CollectorRegistry

from tailrace import records
from tailrace.server import ingest
from tailrace.server.storage import base, memory
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc


class GatedStore(memory.MemoryStore):
    """A memory store whose appends wait for the test to let them through."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.down = False

    async def append(self, batches: Sequence[base.IngestBatch]) -> base.AppendResult:
        if self.down:
            raise base.StoreUnavailable("disk on fire")
        self.entered.set()
        await self.release.wait()
        return await super().append(batches)


def push_request(key: str, workload: str = "") -> ingest_pb2.PushRequest:
    source = records.SourceInfo(key, "ns", "pod-1", "uid-1", "app", workload=workload)
    builder = codec.BatchBuilder(source)
    builder.add_record(records.LogRecord(1, "stdout", "INFO", "hello", 6))
    builder.account_dropped(100)
    return ingest_pb2.PushRequest(batches=[builder.build()])


@pytest.fixture
async def setup() -> AsyncIterator[tuple[GatedStore, Any, CollectorRegistry, list[Any]]]:
    store = GatedStore()
    await store.open()
    registry = CollectorRegistry()
    published: list[Any] = []

    def publish(stored: Sequence[base.StoredRecord]) -> None:
        published.append(stored)
        raise RuntimeError("live tail is broken")

    server = await ingest.serve(
        "127.0.0.1:0", store, publish, lambda token: True, registry, max_in_flight=1
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield store, ingest_pb2_grpc.IngestStub(channel), registry, published
    finally:
        store.release.set()
        await server.stop(None)


async def test_a_push_beyond_the_in_flight_bound_is_refused_not_queued(setup: Any) -> None:
    store, stub, registry, _ = setup
    first = asyncio.ensure_future(stub.Push(push_request("a")))
    await store.entered.wait()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Push(push_request("b"))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry" in (caught.value.details() or "")
    store.release.set()
    assert (await first).stored == 1
    # Once the first is through, a new push is accepted again.
    assert (await stub.Push(push_request("b"))).stored == 1
    refused = registry.get_sample_value(
        "tailrace_server_ingest_requests_total", {"method": "Push", "code": "RESOURCE_EXHAUSTED"}
    )
    assert refused == 1


async def test_a_store_that_is_down_answers_unavailable(setup: Any) -> None:
    store, stub, _, _ = setup
    store.down = True
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Push(push_request("a"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "disk on fire" in (caught.value.details() or "")


async def test_a_failing_live_tail_does_not_fail_the_push(setup: Any) -> None:
    store, stub, registry, published = setup
    store.release.set()
    reply = await stub.Push(push_request("a", workload="Function/hello"))
    assert reply.stored == 1
    assert reply.acks[0].durable_offset == 100  # covered past the dropped line
    assert len(published) == 1
    (record,) = await store.query(base.Query())
    assert (record.kind, record.workload) == ("Function", "hello")
    assert (await store.stats(base.Query(workload="hello"))).dropped_lines == 1
    assert registry.get_sample_value("tailrace_server_ingest_dropped_lines_total") == 1
