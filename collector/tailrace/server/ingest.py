"""The gRPC ingest: tailrace.v1.Ingest (Push, Offsets) and OTLP LogsService on one server.

A Push is all or nothing: every batch is validated before anything is stored, so one malformed
batch rejects the request with INVALID_ARGUMENT and a message naming the batch and the fault, and
the agent (which only checkpoints acknowledged offsets) resends nothing half-stored. Records are
appended in one store call; what was newly stored goes to `publish` (the live tail) and the answer
names the durable offset of every source.

Backpressure: at most `max_in_flight` requests are handled at once; one more is refused at once
with RESOURCE_EXHAUSTED (the agent backs off and retries) instead of queueing without bound.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NoReturn

import grpc
import orjson
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from tailrace import conventions, records
from tailrace.server import ingest_otlp
from tailrace.server.storage import base
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[base.StoredRecord]], None]
# Gets the bearer token of the request (None when the call carried none); may be async.
Authorize = Callable[[str | None], bool | Awaitable[bool]]

DEFAULT_MAX_MESSAGE_BYTES: Final = 16 * 1024 * 1024
DEFAULT_MAX_IN_FLIGHT: Final = 8
_MAX_OFFSET: Final = 2**63 - 1  # stores keep offsets as signed 64-bit integers
_P = f"{conventions.METRICS_PREFIX}_server_ingest"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.records = Counter(
            f"{_P}_records",
            "Records received by ingest, by outcome (stored, duplicate, filtered by minLevel).",
            ["protocol", "outcome"],
            registry=registry,
        )
        self.bytes = Counter(
            f"{_P}_bytes", "Message bytes newly stored by ingest.", ["protocol"], registry=registry
        )
        self.dropped_lines = Counter(
            f"{_P}_dropped_lines",
            "Lines agents report as dropped by the line-limit policy.",
            registry=registry,
        )
        self.requests = Counter(
            f"{_P}_requests",
            "Ingest RPCs answered, by method and gRPC status code.",
            ["method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{_P}_duration_seconds",
            "Time to answer an ingest RPC, by method.",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            f"{_P}_in_flight", "Ingest RPCs being handled now.", registry=registry
        )


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    for key, value in metadata or ():
        if key == conventions.AUTHORIZATION_HEADER:
            text = value.decode() if isinstance(value, bytes) else value
            scheme, _, token = text.partition(" ")
            token = token.strip()
            return token if scheme.lower() == "bearer" and token else None
    return None


@dataclass(slots=True)
class Gate:
    """Authentication, the in-flight bound and the metrics every ingest RPC goes through."""

    authorize: Authorize
    metrics: IngestMetrics
    max_in_flight: int
    in_flight: int = 0

    async def run(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        handle: Callable[[], Awaitable[Any]],
    ) -> Any:
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            if not await self._authorized(context):
                raise _Abort(
                    grpc.StatusCode.UNAUTHENTICATED, "a valid ingest bearer token is needed"
                )
            if self.in_flight >= self.max_in_flight:
                raise _Abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"server busy: {self.in_flight} ingest requests in flight; retry with backoff",
                )
            self.in_flight += 1
            self.metrics.in_flight.inc()
            try:
                return await handle()
            finally:
                self.in_flight -= 1
                self.metrics.in_flight.dec()
        except _Abort as abort:
            code = abort.code
            await _abort(context, abort.code, abort.message)
        except base.StoreUnavailable as err:
            code = grpc.StatusCode.UNAVAILABLE
            await _abort(context, code, f"store unavailable: {err}")
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("ingest %s failed", method)
            await _abort(context, code, "internal error while storing the request")
        finally:
            self.metrics.requests.labels(method, code.name).inc()
            self.metrics.latency.labels(method).observe(time.perf_counter() - started)

    async def _authorized(self, context: grpc.aio.ServicerContext[Any, Any]) -> bool:
        metadata: Any = context.invocation_metadata()
        verdict = self.authorize(bearer_token(metadata))
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return bool(verdict)


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str
) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable: context.abort raises")


def _workload(source: ingest_pb2.Source) -> tuple[str, str]:
    if not source.workload:
        return "", ""
    kind, slash, name = source.workload.partition("/")
    if not slash or kind not in conventions.WORKLOAD_KINDS or not name:
        raise codec.MalformedBatch(
            f"source workload {source.workload!r} is not <Kind>/<name> with Kind one of "
            f"{', '.join(conventions.WORKLOAD_KINDS)}"
        )
    return kind, name


def to_ingest_batch(batch: ingest_pb2.Batch) -> base.IngestBatch:
    """Validate one wire batch and turn it into what the store appends (raises MalformedBatch)."""
    codec.validate(batch)
    source = batch.source
    if not source.namespace or not source.pod:
        raise codec.MalformedBatch("source namespace and pod are required")
    offsets = list(batch.end_offsets)
    if any(b < a for a, b in itertools.pairwise(offsets)):
        raise codec.MalformedBatch("end_offsets must not decrease within a batch")
    if batch.covered_offset > _MAX_OFFSET or (offsets and max(offsets) > _MAX_OFFSET):
        raise codec.MalformedBatch("an offset is beyond 2^63 - 1")
    kind, workload = _workload(source)
    return base.IngestBatch(
        source_key=source.key,
        records=decode(batch, kind, workload),
        end_offsets=offsets,
        covered_offset=batch.covered_offset,
        dropped_lines=batch.dropped_lines,
        namespace=source.namespace,
        pod=source.pod,
        pod_uid=source.pod_uid,
        container=source.container,
        kind=kind,
        workload=workload,
        one_origin=True,
    )


def decode(batch: ingest_pb2.Batch, kind: str, workload: str) -> list[base.NewRecord]:
    """The records of a validated batch, built straight from its columns.

    The same reading as `codec.iter_records`, without its intermediate `LogRecord` per line:
    ingest spends most of its Python time here, and the live tail wants `StoredRecord`s anyway.
    One comprehension over the dense columns builds the records; the sparse ones (execution ids,
    attrs: most batches have neither) are set on the few records they name afterwards.
    """
    source = batch.source
    namespace, pod, pod_uid = source.namespace, source.pod, source.pod_uid
    container, container_id, restart = source.container, source.container_id, source.restart
    streams = records.STREAM_NAMES
    levels = conventions.LEVELS
    new = base.StoredRecord
    out: list[base.NewRecord] = [
        new(
            ts,
            namespace,
            pod,
            container,
            streams[stream],
            levels[level],
            message,
            kind,
            workload,
            "",
            pod_uid,
            container_id,
            restart,
            "",
            {},
            "agent",
            flags,
        )
        for ts, stream, level, flags, message in zip(
            batch.ts_ns,
            batch.streams,
            batch.levels,
            batch.flags,
            _messages(batch.text, batch.text_lengths),
            strict=True,
        )
    ]
    for index, execution_id in zip(batch.execution_index, batch.execution_ids, strict=True):
        out[index].execution_id = execution_id
    for index, raw in zip(batch.attrs_index, batch.attrs_json, strict=True):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, dict) and value:
            out[index].attrs = value
    return out


def _messages(text: bytes, lengths: Iterable[int]) -> list[str]:
    """The text column cut by its lengths (which validation checked add up to it)."""
    bounds = list(itertools.pairwise(itertools.accumulate(lengths, initial=0)))
    if text.isascii():
        # One decode for the whole column: byte offsets are then character offsets.
        whole = text.decode("ascii")
        return [whole[start:end] for start, end in bounds]
    return [text[start:end].decode("utf-8", "replace") for start, end in bounds]


class IngestService(ingest_pb2_grpc.IngestServicer):
    def __init__(self, store: base.Store, publish: Publish, gate: Gate) -> None:
        self._store = store
        self._publish = publish
        self._gate = gate
        self._metrics = gate.metrics

    async def Push(
        self, request: ingest_pb2.PushRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ingest_pb2.PushResponse:
        result: ingest_pb2.PushResponse = await self._gate.run(
            "Push", context, lambda: self._push(request)
        )
        return result

    async def _push(self, request: ingest_pb2.PushRequest) -> ingest_pb2.PushResponse:
        batches = []
        for index, batch in enumerate(request.batches):
            try:
                batches.append(to_ingest_batch(batch))
            except codec.MalformedBatch as err:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"batch {index} (source {batch.source.key!r}): {err}",
                ) from err
        result = await self._store.append(batches)
        self._account(batches, result)
        if result.stored:
            try:
                self._publish(result.stored)
            except Exception:
                log.exception("publishing %d records to the live tail failed", len(result.stored))
        response = ingest_pb2.PushResponse(stored=len(result.stored), duplicates=result.duplicates)
        response.acks.extend(
            ingest_pb2.SourceAck(key=key, durable_offset=offset)
            for key, offset in result.durable_offsets.items()
        )
        return response

    def _account(self, batches: list[base.IngestBatch], result: base.AppendResult) -> None:
        records = self._metrics.records
        records.labels("tailrace", "stored").inc(len(result.stored))
        records.labels("tailrace", "duplicate").inc(result.duplicates)
        records.labels("tailrace", "filtered").inc(result.filtered)
        self._metrics.bytes.labels("tailrace").inc(sum(len(r.message) for r in result.stored))
        self._metrics.dropped_lines.inc(sum(b.dropped_lines for b in batches))

    async def Offsets(
        self, request: ingest_pb2.OffsetsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ingest_pb2.OffsetsResponse:
        result: ingest_pb2.OffsetsResponse = await self._gate.run(
            "Offsets", context, lambda: self._offsets(request)
        )
        return result

    async def _offsets(self, request: ingest_pb2.OffsetsRequest) -> ingest_pb2.OffsetsResponse:
        bad = [key for key in request.keys if not codec.source_key_ok(key)]
        if bad:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "a source key is empty or too long")
        found = await self._store.durable_offsets(list(request.keys))
        response = ingest_pb2.OffsetsResponse()
        # Unknown sources answer 0: nothing of them is stored yet.
        response.acks.extend(
            ingest_pb2.SourceAck(key=key, durable_offset=found.get(key, 0)) for key in request.keys
        )
        return response


class OtlpLogsService(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, store: base.Store, publish: Publish, gate: Gate) -> None:
        self._store = store
        self._publish = publish
        self._gate = gate
        self._metrics = gate.metrics

    async def Export(
        self,
        request: logs_service_pb2.ExportLogsServiceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        result: logs_service_pb2.ExportLogsServiceResponse = await self._gate.run(
            "otlp.Export", context, lambda: self._export(request)
        )
        return result

    async def _export(
        self, request: logs_service_pb2.ExportLogsServiceRequest
    ) -> logs_service_pb2.ExportLogsServiceResponse:
        converted = ingest_otlp.to_records(request)
        stored = await self._store.append_records(converted.records) if converted.records else []
        records = self._metrics.records
        records.labels("otlp", "stored").inc(len(stored))
        records.labels("otlp", "rejected").inc(converted.rejected)
        records.labels("otlp", "filtered").inc(len(converted.records) - len(stored))
        self._metrics.bytes.labels("otlp").inc(sum(len(r.message) for r in stored))
        if stored:
            try:
                self._publish(stored)
            except Exception:
                log.exception("publishing %d OTLP records to the live tail failed", len(stored))
        response = logs_service_pb2.ExportLogsServiceResponse()
        if converted.rejected:
            # OTLP's partial success: the client learns how many records were not accepted and why.
            response.partial_success.rejected_log_records = converted.rejected
            response.partial_success.error_message = converted.reason
        return response


@dataclass(slots=True)
class IngestServer:
    """A started gRPC ingest server and the port it is bound to."""

    server: grpc.aio.Server
    port: int

    async def stop(self, grace: float | None = 5.0) -> None:
        await self.server.stop(grace)


async def serve(
    addr: str,
    store: base.Store,
    publish: Publish,
    authorize: Authorize,
    registry: CollectorRegistry,
    *,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> IngestServer:
    """Start tailrace.v1.Ingest and OTLP LogsService on `addr` ("host:port"; port 0 picks one)."""
    gate = Gate(authorize, IngestMetrics(registry), max_in_flight)
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    ingest_pb2_grpc.add_IngestServicer_to_server(  # type: ignore[no-untyped-call,unused-ignore]
        IngestService(store, publish, gate), server
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        OtlpLogsService(store, publish, gate), server
    )
    port = server.add_insecure_port(addr)
    if port == 0:
        raise OSError(f"cannot bind gRPC ingest to {addr}")
    await server.start()
    return IngestServer(server, port)
