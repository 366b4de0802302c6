"""OTLP/gRPC LogsService/Export into the store, through the generated OTLP client stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from prometheus_client import CollectorRegistry

from tailrace.server import ingest, ingest_otlp, storage
from tailrace.server.storage import base

TOKEN = "otel-secret"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def kv(key: str, value: object) -> common_pb2.KeyValue:
    any_value = common_pb2.AnyValue()
    if isinstance(value, bool):
        any_value.bool_value = value
    elif isinstance(value, int):
        any_value.int_value = value
    elif isinstance(value, float):
        any_value.double_value = value
    else:
        any_value.string_value = str(value)
    return common_pb2.KeyValue(key=key, value=any_value)


def request(
    resource: dict[str, object], *log_records: logs_pb2.LogRecord
) -> logs_service_pb2.ExportLogsServiceRequest:
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                resource=resource_pb2.Resource(attributes=[kv(k, v) for k, v in resource.items()]),
                scope_logs=[logs_pb2.ScopeLogs(log_records=list(log_records))],
            )
        ]
    )


POD = {
    "k8s.namespace.name": "ns",
    "k8s.pod.name": "pod-1",
    "k8s.pod.uid": "uid-1",
    "k8s.container.name": "app",
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[base.Store]:
    opened = storage.open_store(f"sqlite://{tmp_path}/otlp.db")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def stub(store: base.Store) -> AsyncIterator[logs_service_pb2_grpc.LogsServiceStub]:
    server = await ingest.serve(
        "127.0.0.1:0", store, lambda stored: None, lambda token: token == TOKEN, CollectorRegistry()
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield logs_service_pb2_grpc.LogsServiceStub(channel)
    finally:
        await server.stop(None)


async def test_export_maps_resource_severity_body_and_attributes(
    store: base.Store, stub: logs_service_pb2_grpc.LogsServiceStub
) -> None:
    record = logs_pb2.LogRecord(
        time_unix_nano=1_700_000_000_123_456_789,
        severity_number=logs_pb2.SEVERITY_NUMBER_WARN2,
        severity_text="WARNING",
        body=common_pb2.AnyValue(string_value="disk almost full"),
        attributes=[kv("executionId", "e-7"), kv("free_bytes", 1024)],
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
    )
    reply = await stub.Export(request(POD, record), metadata=AUTH)
    assert not reply.HasField("partial_success")
    (got,) = await store.query(base.Query(namespace="ns", pod="pod-1"))
    assert got.ts_ns == 1_700_000_000_123_456_789
    assert (got.level, got.message, got.container, got.pod_uid) == (
        "WARN",
        "disk almost full",
        "app",
        "uid-1",
    )
    assert got.execution_id == "e-7"
    assert got.attrs == {
        "executionId": "e-7",
        "free_bytes": 1024,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }
    assert got.source == "otlp"


async def test_records_without_a_pod_are_rejected_and_reported(
    store: base.Store, stub: logs_service_pb2_grpc.LogsServiceStub
) -> None:
    body = common_pb2.AnyValue(string_value="x")
    reply = await stub.Export(
        request({"service.name": "checkout"}, logs_pb2.LogRecord(body=body)), metadata=AUTH
    )
    assert reply.partial_success.rejected_log_records == 1
    assert "k8s.namespace.name" in reply.partial_success.error_message
    assert await store.count(base.Query()) == 0


async def test_export_needs_the_ingest_token(
    store: base.Store, stub: logs_service_pb2_grpc.LogsServiceStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Export(request(POD, logs_pb2.LogRecord()))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (1, "", "TRACE"),
        (8, "", "DEBUG"),
        (9, "", "INFO"),
        (16, "", "WARN"),
        (17, "", "ERROR"),
        (24, "", "FATAL"),
        (0, "warning", "WARN"),
        (0, "critical", "FATAL"),
        (0, "", "INFO"),
        (0, "chatty", "INFO"),
    ],
)
def test_severity_maps_onto_tailrace_levels(number: int, text: str, level: str) -> None:
    assert ingest_otlp.level(number, text) == level


def test_structured_body_becomes_json() -> None:
    body = common_pb2.AnyValue(
        kvlist_value=common_pb2.KeyValueList(values=[kv("user", "u1"), kv("ok", True)])
    )
    converted = ingest_otlp.to_records(request(POD, logs_pb2.LogRecord(body=body)))
    assert converted.records[0].message == '{"user":"u1","ok":true}'
    assert converted.records[0].ts_ns > 0  # no time in the record: the receive time


def test_a_time_beyond_int64_is_rejected_and_reported() -> None:
    far = logs_pb2.LogRecord(time_unix_nano=2**64 - 1, body=common_pb2.AnyValue(string_value="x"))
    fine = logs_pb2.LogRecord(time_unix_nano=5, body=common_pb2.AnyValue(string_value="y"))
    converted = ingest_otlp.to_records(request(POD, far, fine))
    assert [r.message for r in converted.records] == ["y"]
    assert converted.rejected == 1
    assert "int64" in converted.reason
