"""A real server fed by a real agent: one Function with two pods writing known CRI lines.

Shared by the CLI and the viewer tests: both compare what they show with what the native API
answers for the same filters, so the sample mixes levels, streams, execution ids, old and new
timestamps and one line longer than the 16 KiB limit (stored truncated).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tailrace import demo
from tests.support import processes

NAMESPACE = "shop"
WORKLOAD = "hello"
PODS = ("hello-7d9f8-aaaaa", "hello-7d9f8-bbbbb")
CONTAINER = "app"
OLD_LINES = 20  # written with timestamps two hours ago, for --since
LONG_LINE_AT = 42  # this line is 20 KB: the agent stores it truncated
LONG_LINE_HEAD = b"a very long line begins here "
HOUR_NS = 3_600_000_000_000


@dataclass
class Fed:
    server: processes.ServerProcess
    agent: processes.TailraceProcess
    pods: dict[str, demo.PodLogs]
    token: str | None = None
    written: int = 0
    started_ns: int = field(default_factory=time.time_ns)

    @property
    def workload_path(self) -> str:
        return f"/v1/namespaces/{NAMESPACE}/functions/{WORKLOAD}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def records(self, params: dict[str, str] | None = None, path: str | None = None) -> list[Any]:
        """Every record the API answers for `params`, following nextCursor."""
        out: list[Any] = []
        query = {**(params or {}), "limit": "5000"}
        url = self.server.url + (path or self.workload_path + "/logs")
        while True:
            r = httpx.get(
                url, params=query, headers={"Accept": "application/json", **self.headers()}
            )
            assert r.status_code == 200, r.text
            body = r.json()
            out.extend(body["records"])
            if not body["nextCursor"] or "tailLines" in query:
                return out
            query["cursor"] = body["nextCursor"]

    def stats(self) -> Any:
        r = httpx.get(self.server.url + self.workload_path + "/stats", headers=self.headers())
        assert r.status_code == 200, r.text
        return r.json()

    def write(
        self, index: int, content: bytes | str, stream: str = "stdout", ts_ns: int | None = None
    ) -> None:
        pod = self.pods[PODS[index % len(PODS)]]
        pod.write(CONTAINER, content, stream, ts_ns=ts_ns)
        self.written += 1

    def wait_stored(self, count: int | None = None, timeout_s: float = 60.0) -> None:
        want = self.written if count is None else count
        processes.wait_until(lambda: len(self.records()) >= want, timeout_s)


def written_lines(records: list[Any]) -> list[Any]:
    """The records of lines the test wrote, without the server's own pod events."""
    return [r for r in records if r["stream"] != "system"]


def sample_line(i: int) -> tuple[bytes, str]:
    """The i-th line of the sample: what it says, and on which stream."""
    if i == LONG_LINE_AT:
        return LONG_LINE_HEAD + b"y" * 20_000, "stdout"
    if i % 10 == 3:
        return f"ERROR upstream timeout after {i % 7 + 1}s (line {i})".encode(), "stderr"
    if i % 7 == 1:
        body = {
            "level": "warn",
            "msg": f"cache miss ratio high (line {i})",
            "executionId": f"exec-{i // 10}",
        }
        return orjson.dumps(body), "stdout"
    body = {"level": "info", "msg": f"GET /hello 200 (line {i})", "executionId": f"exec-{i // 10}"}
    return orjson.dumps(body), "stdout"


def write_sample(fed: Fed, count: int) -> None:
    now = time.time_ns()
    for i in range(count):
        content, stream = sample_line(i)
        # The first lines are two hours old; the rest are spread over the last seconds.
        ts = now - 2 * HOUR_NS + i * 1_000_000 if i < OLD_LINES else now - (count - i) * 1_000_000
        fed.write(i, content, stream, ts_ns=ts)


def register(
    server: processes.ServerProcess, pods_dir: Path, token: str | None
) -> dict[str, demo.PodLogs]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    base = f"{server.url}/v1/namespaces/{NAMESPACE}"
    workload = demo.workload_object("Function", NAMESPACE, WORKLOAD, str(uuid.uuid4()), WORKLOAD)
    r = httpx.put(f"{base}/functions/{WORKLOAD}", json=workload, headers=headers)
    assert r.status_code == 200, r.text
    pods = {}
    for name in PODS:
        logs = demo.PodLogs(pods_dir, NAMESPACE, name, str(uuid.uuid4()))
        pod = demo.pod_object(logs, {"app": WORKLOAD}, [CONTAINER])
        r = httpx.put(f"{base}/pods/{name}", json=pod, headers=headers)
        assert r.status_code == 200, r.text
        pods[name] = logs
    return pods


@contextmanager
def fed_server(
    workdir: Path, lines: int, server_extra: list[str] | None = None, token: str | None = None
) -> Iterator[Fed]:
    """Server + agent + the sample of `lines` lines, all stored before the block starts."""
    workdir.mkdir(parents=True, exist_ok=True)
    pods_dir = workdir / "pods"
    server = processes.server_process(workdir, extra=server_extra)
    agent = processes.agent_process(workdir, pods_dir, server.grpc_addr)
    with processes.running(server, agent):
        server.start().wait_ready()
        fed = Fed(server, agent, register(server, pods_dir, token), token=token)
        write_sample(fed, lines)
        agent.start()
        fed.wait_stored()
        yield fed
