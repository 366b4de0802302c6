"""Helpers of the operator tests: a fake control server, the operator running in-process, bodies."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import kopf
import prometheus_client
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tailrace_operator import runner, settings

GROUP_VERSION = "tailrace.dev/v1alpha1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class FakeControlServer:
    """Records what the operator sends to the control API and serves canned stats."""

    url: str = ""
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    workloads: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    reject: set[str] = field(default_factory=set)  # workload names answered with 400
    reject_pods: set[str] = field(default_factory=set)  # pod names answered with 400
    serve_events: bool = True
    token: str = ""  # when set, every request must carry it as a bearer token

    def app(self) -> Starlette:
        def unauthorized(request: Request) -> Response | None:
            if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
                self.requests.append((request.method, request.url.path, "unauthorized"))
                return JSONResponse({"message": "bad token", "error_code": "unauthorized"}, 401)
            return None

        async def workload(request: Request) -> Response:
            if (refusal := unauthorized(request)) is not None:
                return refusal
            ns, plural, name = (request.path_params[k] for k in ("ns", "plural", "name"))
            key = f"{ns}/{plural}/{name}"
            body = await request.json() if request.method == "PUT" else None
            self.requests.append((request.method, request.url.path, body))
            if request.method == "PUT":
                if name in self.reject:
                    return JSONResponse(
                        {"message": "no", "error_code": "bad_resource", "details": {}}, 400
                    )
                self.workloads[key] = body
                return JSONResponse({"kind": body["kind"], "name": name, "uid": "", "pods": []})
            if key not in self.workloads:
                return JSONResponse({"message": "unknown", "error_code": "not_found"}, 404)
            del self.workloads[key]
            return JSONResponse({})

        async def stats(request: Request) -> Response:
            if (refusal := unauthorized(request)) is not None:
                return refusal
            key = "{ns}/{plural}/{name}".format(**request.path_params)
            self.requests.append((request.method, request.url.path, None))
            if key not in self.workloads:
                return JSONResponse({"message": "unknown", "error_code": "not_found"}, 404)
            return JSONResponse(self.stats)

        async def pod(request: Request) -> Response:
            if (refusal := unauthorized(request)) is not None:
                return refusal
            key = "{ns}/{name}".format(**request.path_params)
            body = await request.json() if request.method == "PUT" else None
            self.requests.append((request.method, request.url.path, body))
            if request.method == "PUT":
                if request.path_params["name"] in self.reject_pods:
                    return JSONResponse({"message": "no", "error_code": "bad_body"}, 400)
                self.pods[key] = body
            else:
                self.pods.pop(key, None)
            return JSONResponse({})

        async def pod_event(request: Request) -> Response:
            if (refusal := unauthorized(request)) is not None:
                return refusal
            body = await request.json()
            self.requests.append((request.method, request.url.path, body))
            return JSONResponse({}) if self.serve_events else Response(status_code=404)

        base = "/v1/namespaces/{ns}"
        return Starlette(
            routes=[
                Route(base + "/pods/{name}", pod, methods=["PUT", "DELETE"]),
                Route(base + "/pods/{pod}/events/{event}", pod_event, methods=["PUT"]),
                Route(base + "/{plural}/{name}", workload, methods=["PUT", "DELETE"]),
                Route(base + "/{plural}/{name}/stats", stats, methods=["GET"]),
            ]
        )

    def sent(self, method: str, path_prefix: str) -> list[Any]:
        return [
            body for m, path, body in self.requests if m == method and path.startswith(path_prefix)
        ]


@contextlib.asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[None]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        await task


def operator_settings(server_url: str, **overrides: Any) -> settings.OperatorSettings:
    base = settings.OperatorSettings(
        server=server_url,
        webhook_addr="",
        health_addr=f"127.0.0.1:{free_port()}",
        kubernetes_version="1.31.0",
        standalone=True,
        status_interval_s=0.5,
        retry_backoff_s=0.3,
        delete_retries=5,
        request_timeout_s=2.0,
    )
    return replace(base, **overrides)


@dataclass
class RunningOperator:
    settings: settings.OperatorSettings
    metrics: prometheus_client.CollectorRegistry


@contextlib.asynccontextmanager
async def running_operator(
    api: Any, operator: settings.OperatorSettings
) -> AsyncIterator[RunningOperator]:
    registry = kopf.OperatorRegistry()
    url = str(api.url).rstrip("/")

    @kopf.on.login(id="test-login", registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    metrics = prometheus_client.CollectorRegistry()
    ready = asyncio.Event()
    task = asyncio.create_task(
        runner.operate(
            operator, registry=registry, login=False, metrics_registry=metrics, ready_flag=ready
        )
    )
    done, _ = await asyncio.wait(
        {task, asyncio.create_task(ready.wait())}, timeout=20, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()
    assert ready.is_set(), "the operator did not become ready"
    try:
        yield RunningOperator(settings=operator, metrics=metrics)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0) -> Any:
    """Poll until check() returns something truthy; bounded in time (never asserts a duration)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        await asyncio.sleep(0.05)


def function_body(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": name}}, **spec},
    }


def pod_body(name: str, labels: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
        "status": {"phase": "Pending"},
    }


async def eventually_async(check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0) -> Any:
    """Like eventually(), for checks that need to await (a request to the webhook, say)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check}")
        await asyncio.sleep(0.05)
