"""`tailrace up`: the whole system on one machine, no cluster needed.

It runs `tailrace server` (embedded SQLite) and `tailrace agent` as child processes, registers a
demo Function and Pipeline through the control API (as the operator would in a cluster), and
writes their pods' container logs as kubelet would, until Ctrl-C stops everything.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import httpx

from tailrace import demo

NAMESPACE = "demo"


@dataclass(frozen=True)
class UpOptions:
    http_port: int
    grpc_port: int
    data_dir: Path | None = None
    lines_per_second: float = 2.0


@dataclass(frozen=True)
class DemoPod:
    logs: demo.PodLogs
    container: str
    kind: str
    workload: str


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def _spawn(args: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    log = log_path.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "tailrace.cli", *args], stdout=log, stderr=subprocess.STDOUT
    )


def _wait_ready(base_url: str, server: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not become ready within {timeout_s:.0f} s")


def _register(base_url: str, pods_dir: Path) -> list[DemoPod]:
    """Register a Function and a Pipeline and their pods, as the operator does in a cluster."""
    pods: list[DemoPod] = []
    for kind, plural, name, container in (
        ("Function", "functions", "hello", "app"),
        ("Pipeline", "pipelines", "wordcount", "runner"),
    ):
        workload = demo.workload_object(kind, NAMESPACE, name, str(uuid.uuid4()), name)
        r = httpx.put(f"{base_url}/v1/namespaces/{NAMESPACE}/{plural}/{name}", json=workload)
        r.raise_for_status()
        logs = demo.PodLogs(pods_dir, NAMESPACE, f"{name}-7d9f8-x2k4q", str(uuid.uuid4()))
        pod = demo.pod_object(logs, {"app": name}, [container])
        r = httpx.put(f"{base_url}/v1/namespaces/{NAMESPACE}/pods/{logs.pod}", json=pod)
        r.raise_for_status()
        pods.append(DemoPod(logs, container, plural, name))
    return pods


def _banner(base_url: str, pods: list[DemoPod], data_dir: Path) -> str:
    fn = pods[0]
    fn_logs = f"{base_url}/v1/namespaces/{NAMESPACE}/functions/{fn.workload}/logs"
    pod_logs = f"{base_url}/v1/namespaces/{NAMESPACE}/pods/{fn.logs.pod}/logs"
    return "\n".join(
        [
            "",
            "Tailrace is up: server, agent and a demo Function and Pipeline writing logs.",
            f"  data            {data_dir}",
            f"  open            {fn_logs}",
            f"  viewer          {base_url}/ui/",
            f"  metrics         {base_url}/metrics",
            "  try",
            f"    curl '{fn_logs}'",
            f"    curl -N '{pod_logs}?follow=true'",
            f"    curl -H 'Accept: application/json' '{fn_logs}?level=ERROR&limit=5'",
            "Ctrl-C stops everything.",
            "",
        ]
    )


def run(options: UpOptions) -> int:
    keep = options.data_dir is not None
    data_dir = options.data_dir or Path(tempfile.mkdtemp(prefix="tailrace-up-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    pods_dir = data_dir / "pods"
    pods_dir.mkdir(exist_ok=True)
    base_url = f"http://127.0.0.1:{options.http_port}"
    children: list[subprocess.Popen[bytes]] = []
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        server = _spawn(
            [
                "server",
                "--store",
                f"sqlite:///{data_dir / 'tailrace.db'}",
                "--http-addr",
                f"127.0.0.1:{options.http_port}",
                "--grpc-addr",
                f"127.0.0.1:{options.grpc_port}",
            ],
            data_dir / "server.log",
        )
        children.append(server)
        _wait_ready(base_url, server)
        pods = _register(base_url, pods_dir)
        children.append(
            _spawn(
                [
                    "agent",
                    "--pods-dir",
                    str(pods_dir),
                    "--server",
                    f"127.0.0.1:{options.grpc_port}",
                    "--state-dir",
                    str(data_dir / "agent-state"),
                    "--metrics-addr",
                    "127.0.0.1:0",
                ],
                data_dir / "agent.log",
            )
        )
        print(_banner(base_url, pods, data_dir), flush=True)
        _write_forever(pods, children, options.lines_per_second)
    except (_Stop, KeyboardInterrupt):
        print("\nstopping…", flush=True)
    except RuntimeError as err:
        print(f"tailrace up: {err}; see the logs in {data_dir}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop_all(children)
        if not keep:
            print(f"(data left in {data_dir}; delete it when done)")
    return 0


def _write_forever(
    pods: list[DemoPod], children: list[subprocess.Popen[bytes]], rate: float
) -> None:
    traffic = demo.DemoTraffic()
    interval = 1.0 / rate if rate > 0 else 1.0
    while True:
        for child in children:
            if child.poll() is not None:
                raise RuntimeError(f"a child process exited with code {child.returncode}")
        for pod in pods:
            line, stream = traffic.next_line()
            pod.logs.write(pod.container, line, stream)
        time.sleep(interval)


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    # Agent first (it drains into the server), then the server.
    for child in reversed(children):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
