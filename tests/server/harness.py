"""A real Tailrace server for HTTP tests: the app under uvicorn on a free port, gRPC ingest on
another, a SQLite file in the test's temp folder. Data goes in through gRPC Push or the control
API, exactly as the agent and the operator send it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import uvicorn
from prometheus_client import CollectorRegistry

from tailrace import records
from tailrace.server import app, auth, context, ingest, ratelimit, runner, streaming
from tailrace.server.storage import base, open_store
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc

T0 = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z


@dataclass
class Line:
    message: str
    ts_ns: int = T0
    stream: str = "stdout"
    level: str = "INFO"
    execution_id: str = ""
    attrs: dict[str, Any] | None = None
    flags: int = 0


@dataclass
class Source:
    namespace: str = "ns"
    pod: str = "hello-abc"
    container: str = "app"
    workload: str = "Function/hello"
    pod_uid: str = "uid-1"
    restart: int = 0
    key: str = ""

    def info(self) -> records.SourceInfo:
        return records.SourceInfo(
            key=self.key or f"node/{self.namespace}/{self.pod}/{self.container}/{self.restart}",
            namespace=self.namespace,
            pod=self.pod,
            pod_uid=self.pod_uid,
            container=self.container,
            restart=self.restart,
            workload=self.workload,
        )


class Running:
    """One server instance; `stop()` and `start()` again to restart on the same SQLite file."""

    def __init__(self, db: Path, **options: Any) -> None:
        self.db = db
        self.options = options
        self.registry = CollectorRegistry()
        self.offsets: dict[str, int] = {}
        self.url = ""
        self.ctx: context.ServerContext | None = None
        self._http: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._grpc: ingest.IngestServer | None = None
        self._channel: grpc.aio.Channel | None = None
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> Running:
        options = dict(self.options)
        store: base.Store = options.pop("store", None) or open_store(f"sqlite:///{self.db}")
        await store.open()
        self.registry = CollectorRegistry()
        hub = options.pop(
            "hub", streaming.Hub(heartbeat_s=options.pop("heartbeat_s", 15.0), ring_lines=1000)
        )
        authorizer = options.pop("authorizer", None) or auth.Authorizer()
        limiter = options.pop("limiter", None) or ratelimit.RateLimiter(0, 1)
        ingest_token = options.pop("ingest_token", None)
        self.ingest_token = ingest_token
        self.ctx = app.build_context(
            store,
            registry=self.registry,
            hub=hub,
            authorizer=authorizer,
            limiter=limiter,
            cursor_secret=b"test-secret",
            **options,
        )
        asgi = app.build_app(self.ctx)
        self._http = runner.EmbeddedServer(
            uvicorn.Config(
                asgi, host="127.0.0.1", port=0, log_config=None, lifespan="on", access_log=False
            )
        )
        self._task = asyncio.create_task(self._http.serve())
        while not self._http.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        port = self._http.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._grpc = await ingest.serve(
            "127.0.0.1:0", store, hub.publish, authorizer.authorize_ingest_async, self.registry
        )
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{self._grpc.port}")
        self.client = httpx.AsyncClient(base_url=self.url, timeout=10.0)
        return self

    async def stop(self) -> None:
        """Stop everything (idempotent); the SQLite file stays for a restart."""
        client, self.client = self.client, None
        channel, self._channel = self._channel, None
        grpc_server, self._grpc = self._grpc, None
        http, task, self._http, self._task = self._http, self._task, None, None
        ctx, self.ctx = self.ctx, None
        if client is not None:
            await client.aclose()
        if channel is not None:
            await channel.close()
        if grpc_server is not None:
            await grpc_server.stop(None)
        if http is not None and task is not None:
            http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        if ctx is not None:
            await ctx.store.close()

    @property
    def http(self) -> httpx.AsyncClient:
        assert self.client is not None
        return self.client

    async def push(self, lines: Sequence[Line], source: Source | None = None) -> int:
        """Send lines through gRPC Push as the agent would; returns how many were stored."""
        src = source or Source()
        info = src.info()
        builder = codec.BatchBuilder(info)
        offset = self.offsets.get(info.key, 0)
        for line in lines:
            offset += len(line.message.encode()) + 1
            builder.add_record(
                records.LogRecord(
                    line.ts_ns,
                    line.stream,
                    line.level,
                    line.message,
                    offset,
                    line.flags,
                    line.execution_id,
                    line.attrs or {},
                )
            )
        self.offsets[info.key] = offset
        assert self._channel is not None
        stub = ingest_pb2_grpc.IngestStub(self._channel)
        metadata = (
            (("authorization", f"Bearer {self.ingest_token}"),) if self.ingest_token else None
        )
        response = await stub.Push(
            ingest_pb2.PushRequest(batches=[builder.build()]), metadata=metadata
        )
        return int(response.stored)

    async def register(
        self,
        kind: str = "Function",
        name: str = "hello",
        namespace: str = "ns",
        labels: dict[str, str] | None = None,
        spec: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        plural = {"Function": "functions", "Pipeline": "pipelines"}[kind]
        body = {
            "apiVersion": "tailrace.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
            "spec": spec or {"selector": {"matchLabels": labels or {"app": name}}},
        }
        return await self.http.put(
            f"/v1/namespaces/{namespace}/{plural}/{name}", json=body, headers=headers
        )


def pod_object(
    name: str = "hello-abc",
    namespace: str = "ns",
    uid: str = "uid-1",
    labels: dict[str, str] | None = None,
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid,
            "labels": labels if labels is not None else {"app": "hello"},
            "creationTimestamp": "2023-11-14T22:13:00Z",
        },
        "spec": {"containers": [{"name": "app", "image": "hello:1"}], "nodeName": "node-1"},
        "status": {
            "phase": phase,
            "conditions": conditions or [],
            "containerStatuses": statuses or [],
        },
    }
