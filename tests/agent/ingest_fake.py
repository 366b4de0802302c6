"""An in-memory Ingest server with the real server's semantics: a high-water mark per source.

A test double of our own boundary (tailrace.v1.Ingest): real gRPC over a loopback port, records kept
in memory, a record stored only when its end offset is above the source's high-water mark, acks
naming the high-water mark. It can be stopped and started again on the same port with its data, and
told to fail pushes, to play a server that is down.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc

from tailrace import records
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc


@dataclass
class Stored:
    source: records.SourceInfo
    record: records.LogRecord


@dataclass
class FakeIngest(ingest_pb2_grpc.IngestServicer):  # type: ignore[misc]
    token: str = ""
    stored: list[Stored] = field(default_factory=list)
    high_water: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dropped_lines: int = 0
    duplicates: int = 0
    pushes: int = 0
    fail_with: grpc.StatusCode | None = None
    push_delay_s: float = 0.0  # a slow server: each push takes this long before it is stored
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Push(self, request: ingest_pb2.PushRequest, context: Any) -> ingest_pb2.PushResponse:
        if self.token:
            metadata = dict(context.invocation_metadata())
            if metadata.get("authorization") != f"Bearer {self.token}":
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        if self.fail_with is not None:
            context.abort(self.fail_with, "told to fail")
        if self.push_delay_s:
            time.sleep(self.push_delay_s)
        response = ingest_pb2.PushResponse()
        with self.lock:
            self.pushes += 1
            for batch in request.batches:
                try:
                    codec.validate(batch)
                except codec.MalformedBatch as err:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
                source = codec.source_info(batch.source)
                key = source.key
                mark = self.high_water[key]
                top = mark
                for record in codec.iter_records(batch):
                    if record.end_offset <= mark:
                        self.duplicates += 1
                        response.duplicates += 1
                        continue
                    self.stored.append(Stored(source, record))
                    response.stored += 1
                    top = max(top, record.end_offset)
                if batch.covered_offset > mark:
                    self.dropped_lines += batch.dropped_lines
                self.high_water[key] = max(top, batch.covered_offset)
            for key in {b.source.key for b in request.batches}:
                response.acks.add(key=key, durable_offset=self.high_water[key])
        return response

    def Offsets(
        self, request: ingest_pb2.OffsetsRequest, context: Any
    ) -> ingest_pb2.OffsetsResponse:
        response = ingest_pb2.OffsetsResponse()
        with self.lock:
            for key in request.keys:
                response.acks.add(key=key, durable_offset=self.high_water.get(key, 0))
        return response

    def messages(self, container: str | None = None) -> list[str]:
        with self.lock:
            return [
                s.record.message
                for s in self.stored
                if container is None or s.source.container == container
            ]

    def records(self) -> list[Stored]:
        with self.lock:
            return list(self.stored)


class IngestServer:
    """Runs a `FakeIngest` on a loopback port; `stop()` and `start()` keep the port and the data."""

    def __init__(self, servicer: FakeIngest | None = None, port: int = 0) -> None:
        self.servicer = servicer or FakeIngest()
        self.port = port
        self._server: grpc.Server | None = None

    def start(self) -> IngestServer:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        ingest_pb2_grpc.add_IngestServicer_to_server(self.servicer, server)
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
