"""tailrace.v1 Ingest over a real gRPC port, into a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from tailrace import records
from tailrace.server import ingest, storage
from tailrace.server.storage import base
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc

TOKEN = "agent-secret"
T0 = 1_700_000_000_000_000_000


@dataclass
class Harness:
    store: base.Store
    server: ingest.IngestServer
    registry: CollectorRegistry
    published: list[base.StoredRecord] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


def source(key: str = "node/1:2:0", **fields: str) -> records.SourceInfo:
    values = {"namespace": "ns", "pod": "pod-1", "pod_uid": "uid-1", "container": "app"}
    values.update(fields)
    return records.SourceInfo(key=key, **values)


def batch(messages: Sequence[str], first_offset: int = 0, **fields: str) -> ingest_pb2.Batch:
    builder = codec.BatchBuilder(source(**fields))
    offset = first_offset
    for i, message in enumerate(messages):
        offset += len(message) + 1
        builder.add_record(records.LogRecord(T0 + i, "stdout", "INFO", message, offset))
    return builder.build()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    store = storage.open_store(f"sqlite://{tmp_path}/ingest.db")
    await store.open()
    registry = CollectorRegistry()
    published: list[base.StoredRecord] = []
    server = await ingest.serve(
        "127.0.0.1:0",
        store,
        published.extend,
        lambda token: token == TOKEN,
        registry,
        max_message_bytes=64 * 1024,
    )
    try:
        yield Harness(store, server, registry, published)
    finally:
        await server.stop(None)
        await store.close()


@pytest.fixture
async def stub(harness: Harness) -> AsyncIterator[ingest_pb2_grpc.IngestStub]:
    async with grpc.aio.insecure_channel(harness.target) as channel:
        yield ingest_pb2_grpc.IngestStub(channel)


AUTH = (("authorization", f"Bearer {TOKEN}"),)


async def test_good_batch_is_stored_acked_and_published(
    harness: Harness, stub: ingest_pb2_grpc.IngestStub
) -> None:
    reply = await stub.Push(ingest_pb2.PushRequest(batches=[batch(["one", "two"])]), metadata=AUTH)
    assert reply.stored == 2
    assert reply.duplicates == 0
    assert [(a.key, a.durable_offset) for a in reply.acks] == [("node/1:2:0", 8)]
    found = await harness.store.query(base.Query(namespace="ns", pod="pod-1"))
    assert [r.message for r in found] == ["one", "two"]
    assert [r.id for r in harness.published] == [r.id for r in found]
    assert found[0].pod_uid == "uid-1"
    assert found[0].source == "agent"
    stored = harness.registry.get_sample_value(
        "tailrace_server_ingest_records_total", {"protocol": "tailrace", "outcome": "stored"}
    )
    assert stored == 2


async def test_resend_counts_duplicates_and_stores_nothing_twice(
    harness: Harness, stub: ingest_pb2_grpc.IngestStub
) -> None:
    request = ingest_pb2.PushRequest(batches=[batch(["one", "two"])])
    await stub.Push(request, metadata=AUTH)
    again = await stub.Push(request, metadata=AUTH)
    assert again.stored == 0
    assert again.duplicates == 2
    assert again.acks[0].durable_offset == 8
    assert await harness.store.count(base.Query()) == 2


async def test_offsets_answer_the_durable_offset_per_source(
    harness: Harness, stub: ingest_pb2_grpc.IngestStub
) -> None:
    await stub.Push(ingest_pb2.PushRequest(batches=[batch(["one"])]), metadata=AUTH)
    reply = await stub.Offsets(
        ingest_pb2.OffsetsRequest(keys=["node/1:2:0", "never-seen"]), metadata=AUTH
    )
    assert {a.key: a.durable_offset for a in reply.acks} == {"node/1:2:0": 4, "never-seen": 0}


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda b: b.ts_ns.append(1), "column lengths"),
        (lambda b: setattr(b, "text", b.text + b"x"), "text_lengths"),
        (lambda b: setattr(b, "levels", b"\x09" * len(b.levels)), "unknown level code"),
        (lambda b: setattr(b, "streams", b"z" * len(b.streams)), "unknown stream code"),
        (lambda b: b.source.ClearField("key"), "source key"),
        (lambda b: b.source.ClearField("pod"), "namespace and pod are required"),
        (lambda b: setattr(b.source, "workload", "Deployment/x"), "is not <Kind>/<name>"),
        (lambda b: b.end_offsets.__setitem__(1, 1), "end_offsets must not decrease"),
        (lambda b: b.execution_index.append(7), "execution_index and execution_ids"),
        (lambda b: setattr(b, "covered_offset", 2**64 - 1), "beyond 2^63"),
    ],
)
async def test_malformed_batch_is_rejected_and_nothing_is_stored(
    harness: Harness, stub: ingest_pb2_grpc.IngestStub, spoil, message: str
) -> None:
    bad = batch(["x", "y"], key="other")
    spoil(bad)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Push(ingest_pb2.PushRequest(batches=[batch(["good"]), bad]), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 1" in (caught.value.details() or "")
    assert message in (caught.value.details() or "")
    assert await harness.store.count(base.Query()) == 0
    assert harness.published == []


@pytest.mark.parametrize(
    "metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)]
)
async def test_missing_or_bad_token_is_unauthenticated(
    harness: Harness, stub: ingest_pb2_grpc.IngestStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Push(ingest_pb2.PushRequest(batches=[batch(["x"])]), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Offsets(ingest_pb2.OffsetsRequest(keys=["k"]), metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await harness.store.count(base.Query()) == 0


async def test_oversize_message_is_rejected(
    harness: Harness, stub: ingest_pb2_grpc.IngestStub
) -> None:
    huge = batch(["x" * 70_000])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Push(ingest_pb2.PushRequest(batches=[huge]), metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await harness.store.count(base.Query()) == 0


@pytest.mark.parametrize("text", ["plain ascii", "naïve café ✓"])
def test_fast_decode_reads_batches_as_the_codec_does(text: str) -> None:
    builder = codec.BatchBuilder(source(workload="Pipeline/etl"))
    builder.add(T0, ord("e"), 4, text.encode(), 10, records.FLAG_TRUNCATED, "e1", b'{"a": 1}')
    builder.add(T0 + 1, ord("o"), 0, b"", 11, 0, "", b"not json")
    builder.add(T0 + 2, ord("o"), 5, "second ✓".encode(), 30, records.FLAG_SPLIT)
    wire = builder.build()
    decoded = ingest.decode(wire, "Pipeline", "etl")
    for got, want in zip(decoded, codec.iter_records(wire), strict=True):
        assert (got.ts_ns, got.stream, got.level, got.message, got.flags) == (
            want.ts_ns,
            want.stream,
            want.level,
            want.message,
            want.flags,
        )
        assert (got.execution_id, got.attrs) == (want.execution_id, want.attrs)
        assert (got.kind, got.workload, got.namespace, got.pod_uid) == (
            "Pipeline",
            "etl",
            "ns",
            "uid-1",
        )


def test_a_wire_batch_is_marked_as_one_origin_and_its_records_share_it() -> None:
    builder = codec.BatchBuilder(source(workload="Function/hello"))
    builder.add(1, ord("o"), 2, b"out", 10)
    builder.add(2, ord("e"), 4, b"err", 20, execution_id="run-1")
    converted = ingest.to_ingest_batch(builder.build())
    assert converted.one_origin
    fields = ("namespace", "pod", "pod_uid", "container", "container_id", "restart", "kind")
    fields += ("workload", "workload_uid", "source")
    shared = {tuple(getattr(r, name) for name in fields) for r in converted.records}
    assert len(shared) == 1
    assert {r.stream for r in converted.records} == {"stdout", "stderr"}
