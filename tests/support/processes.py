"""Real `tailrace` processes for tests: started on free loopback ports, stopped by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: object, timeout_s: float = 20.0, interval_s: float = 0.05) -> None:
    """Poll `predicate()` until it is truthy; fail the test with a clear message on time-out."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last value: {last!r})")


@dataclass
class TailraceProcess:
    args: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> TailraceProcess:
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tailrace.cli", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 20.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class ServerProcess(TailraceProcess):
    http_port: int = 0
    grpc_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_addr(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout_s: float = 30.0) -> ServerProcess:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"server exited early:\n{self.output()}")
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout_s)
        return self


def server_process(
    workdir: Path,
    store: str | None = None,
    extra: list[str] | None = None,
    http_port: int | None = None,
    grpc_port: int | None = None,
) -> ServerProcess:
    http_port = http_port or free_port()
    grpc_port = grpc_port or free_port()
    store = store or f"sqlite:///{workdir / 'tailrace.db'}"
    args = [
        "server",
        "--store",
        store,
        "--http-addr",
        f"127.0.0.1:{http_port}",
        "--grpc-addr",
        f"127.0.0.1:{grpc_port}",
        *(extra or []),
    ]
    return ServerProcess(
        args, workdir / f"server-{http_port}.log", http_port=http_port, grpc_port=grpc_port
    )


def agent_process(
    workdir: Path, pods_dir: Path, server_grpc: str, extra: list[str] | None = None
) -> TailraceProcess:
    args = [
        "agent",
        "--pods-dir",
        str(pods_dir),
        "--server",
        server_grpc,
        "--state-dir",
        str(workdir / "agent-state"),
        "--metrics-addr",
        f"127.0.0.1:{free_port()}",
        *(extra or []),
    ]
    return TailraceProcess(args, workdir / "agent.log")


@contextlib.contextmanager
def running(*procs: TailraceProcess) -> Iterator[None]:
    """Start nothing; make sure every given process is stopped when the block ends."""
    try:
        yield
    finally:
        for p in reversed(procs):
            if p.proc is not None:
                p.stop()
