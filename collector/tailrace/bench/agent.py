"""`tailrace bench agent`: how fast and how lean the agent reads, delivering to a real server.

Two deterministic CRI corpora, generated once into a folder laid out like /var/log/pods:

- mixed: ~500 MB in 4 files; 60 % JSON lines (level, executionId, HTTP fields), 40 % text, 10 %
  stderr, and 2 % of lines 16-64 KiB long, split by the runtime into 16,384-byte `P` records (they
  carry ~77 % of the bytes);
- short: ~2 M lines averaging 245 bytes, none split.

For each, a fresh agent process (`python -m tailrace.agent`) reads the corpus from the start and
pushes every line to a real `tailrace server` (SQLite) — or, with `--sink`, to a gRPC sink that only
acknowledges, to see the agent without the store's pace. Printed: wall MB/s and lines/s, the agent's
CPU seconds (from /proc), MB and lines per CPU-second, and its peak RSS. Figures, not assertions.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIXED_BYTES = 500 * 1024 * 1024
SHORT_LINES = 2_000_000
P_CHUNK = 16_384
_LEVELS = ("debug", "info", "info", "info", "warn", "error")
_WORDS = (
    "request",
    "handled",
    "tenant",
    "acme",
    "region",
    "eu-west-1",
    "cache",
    "hit",
    "ratio",
    "nominal",
    "queue",
    "depth",
    "within",
    "bounds",
    "scheduler",
    "rebalanced",
    "partitions",
)


@dataclass
class Corpus:
    name: str
    folder: Path
    bytes: int
    lines: int  # logical lines (what the server receives)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Clock:
    """Distinct, increasing RFC 3339 timestamps, the second's text formatted once per second."""

    def __init__(self) -> None:
        self.n = 0
        self._second = -1
        self._head = ""

    def next(self) -> str:
        self.n += 1
        second, micros = divmod(self.n, 1_000_000 // 1000)
        if second != self._second:
            self._second = second
            self._head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(1_700_000_000 + second))
        return f"{self._head}.{micros * 1000:09d}Z"


def _short_content(rng: random.Random, i: int, target: int) -> str:
    words = " ".join(rng.choices(_WORDS, k=8))
    if rng.random() < 0.6:
        level = rng.choice(_LEVELS)
        body = (
            f'{{"level":"{level}","msg":"{words}","executionId":"exec-{i % 5000:05d}",'
            f'"method":"GET","url":"/api/v1/items/{i}","status":{200 + (i % 7 == 0) * 300}'
        )
    else:
        level = rng.choice(_LEVELS).upper()
        body = f"{level} worker-{i % 16} {words} item={i}"
    pad = target - len(body) - (1 if body.startswith("{") else 0)
    if pad > 0:
        body += (
            (" id=" + "x" * pad)[:pad] if not body.startswith("{") else f',"p":"{"y" * (pad - 7)}"'
        )
    return body + "}" if body.startswith("{") else body


def _write_container(folder: Path, lines: list[bytes]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    data = b"".join(lines)
    (folder / "0.log").write_bytes(data)
    return len(data)


def generate_mixed(root: Path, scale: float) -> Corpus:
    rng = random.Random(4)
    clock = _Clock()
    target = int(MIXED_BYTES * scale)
    per_file = target // 4
    total = lines = 0
    for f in range(4):
        out: list[bytes] = []
        size = 0
        while size < per_file:
            i = clock.n
            stream = "stderr" if rng.random() < 0.10 else "stdout"
            if rng.random() < 0.02:
                length = rng.randint(16 * 1024, 64 * 1024)
                text = (f"long-{i} " * (length // 8 + 1)).encode()[:length]
                ts = clock.next()
                for at in range(0, len(text), P_CHUNK):
                    tag = "P" if at + P_CHUNK < len(text) else "F"
                    record = f"{ts} {stream} {tag} ".encode() + text[at : at + P_CHUNK] + b"\n"
                    out.append(record)
                    size += len(record)
            else:
                ts = clock.next()
                content = _short_content(rng, i, rng.randint(150, 260))
                record = f"{ts} {stream} F {content}\n".encode()
                out.append(record)
                size += len(record)
            lines += 1
        total += _write_container(root / f"bench_mixed-{f}_uid-mixed-{f}" / "app", out)
    return Corpus("mixed", root, total, lines)


def generate_short(root: Path, scale: float) -> Corpus:
    rng = random.Random(5)
    clock = _Clock()
    count = int(SHORT_LINES * scale)
    total = 0
    per_file = count // 4
    for f in range(4):
        out = []
        for _ in range(per_file):
            i = clock.n
            stream = "stderr" if rng.random() < 0.10 else "stdout"
            content = _short_content(rng, i, rng.randint(150, 264))
            out.append(f"{clock.next()} {stream} F {content}\n".encode())
        total += _write_container(root / f"bench_short-{f}_uid-short-{f}" / "app", out)
    return Corpus("short", root, total, per_file * 4)


class _Sink:
    """A gRPC Ingest that acknowledges everything (for --sink)."""

    def __init__(self) -> None:
        import grpc

        from tailrace.wire.v1 import ingest_pb2, ingest_pb2_grpc

        class Servicer(ingest_pb2_grpc.IngestServicer):
            def Push(self, request: Any, context: Any) -> Any:
                response = ingest_pb2.PushResponse()
                for batch in request.batches:
                    end = max(batch.covered_offset, *batch.end_offsets, 0)
                    response.acks.add(key=batch.source.key, durable_offset=end)
                    response.stored += len(batch.ts_ns)
                return response

            def Offsets(self, request: Any, context: Any) -> Any:
                return ingest_pb2.OffsetsResponse()  # holds nothing: every file from its start

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        ingest_pb2_grpc.add_IngestServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(None)


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("tailrace_agent_") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _start_server(work: Path) -> tuple[subprocess.Popen[bytes], str]:
    grpc_port, http_port = _free_port(), _free_port()
    log = (work / "server.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tailrace.cli",
            "server",
            "--store",
            f"sqlite:///{work / 'bench.db'}",
            "--http-addr",
            f"127.0.0.1:{http_port}",
            "--grpc-addr",
            f"127.0.0.1:{grpc_port}",
        ],
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=1):
                return proc, f"127.0.0.1:{grpc_port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"tailrace server did not come up; see {work / 'server.log'}")


def run_agent(corpus: Corpus, work: Path, server: str, timeout_s: float) -> dict[str, float]:
    metrics_port = _free_port()
    state = work / f"state-{corpus.name}"
    shutil.rmtree(state, ignore_errors=True)  # read from the start, whatever an earlier run did
    log = (work / f"agent-{corpus.name}.log").open("ab")
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tailrace.agent",
            "--pods-dir",
            str(corpus.folder),
            "--server",
            server,
            "--state-dir",
            str(state),
            "--node",
            "bench",
            "--metrics-addr",
            f"127.0.0.1:{metrics_port}",
            "--log-level",
            "WARNING",
        ],
        stdout=log,
        stderr=log,
    )
    peak = 0
    done = False
    try:
        while time.monotonic() - started < timeout_s:
            # Each scrape costs the agent ~1.5 ms of CPU: at a fixed 10 per second, a run paced
            # by a slow server would be charged a second of CPU per minute for being watched.
            # Polling at 1 % of the elapsed time keeps the wall-time error under 1 % instead.
            time.sleep(min(1.0, max(0.1, (time.monotonic() - started) / 100)))
            peak = max(peak, _peak_rss(proc.pid))
            try:
                values = _metrics(metrics_port)
            except OSError:
                continue
            delivered = values.get("tailrace_agent_records_sent_total", 0.0)
            dropped = values.get('tailrace_agent_lines_total{outcome="dropped"}', 0.0)
            if delivered + dropped >= corpus.lines:
                done = True
                break
        wall = time.monotonic() - started
        cpu = _cpu_seconds(proc.pid)
        peak = max(peak, _peak_rss(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    mb = corpus.bytes / 1e6
    return {
        "complete": float(done),
        "wall_s": wall,
        "cpu_s": cpu,
        "mb": mb,
        "lines": corpus.lines,
        "wall_mb_s": mb / wall,
        "wall_lines_s": corpus.lines / wall,
        "mb_per_cpu_s": mb / cpu if cpu else 0.0,
        "lines_per_cpu_s": corpus.lines / cpu if cpu else 0.0,
        "peak_rss_mb": peak / 1e6,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tailrace bench agent", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scale", type=float, default=1.0, help="corpus size factor (0.1 = quick)")
    parser.add_argument("--quick", action="store_true", help="same as --scale 0.1")
    parser.add_argument("--corpus", choices=["mixed", "short", "both"], default="both")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--sink", action="store_true", help="push to an acking sink, no store")
    parser.add_argument("--timeout", type=float, default=900.0, help="per corpus, seconds")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else args.scale
    with tempfile.TemporaryDirectory(prefix="tailrace-bench-") as temp:
        work = args.dir or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        names = ["mixed", "short"] if args.corpus == "both" else [args.corpus]
        for name in names:
            folder = work / f"pods-{name}"
            generated = time.monotonic()
            generate = generate_mixed if name == "mixed" else generate_short
            corpus = generate(folder, scale)
            print(
                f"# {name}: {corpus.bytes / 1e6:.1f} MB, {corpus.lines} lines "
                f"(generated in {time.monotonic() - generated:.1f} s)",
                flush=True,
            )
            sink: _Sink | None = None
            server_proc: subprocess.Popen[bytes] | None = None
            if args.sink:
                sink = _Sink()
                target = f"127.0.0.1:{sink.port}"
            else:
                server_proc, target = _start_server(work)
            try:
                result = run_agent(corpus, work, target, args.timeout)
            finally:
                if sink is not None:
                    sink.stop()
                if server_proc is not None:
                    server_proc.send_signal(signal.SIGTERM)
                    try:
                        server_proc.wait(30)
                    except subprocess.TimeoutExpired:
                        server_proc.kill()
                (work / "bench.db").unlink(missing_ok=True)
            print(
                f"{name:6s} {'complete' if result['complete'] else 'INCOMPLETE'} "
                f"wall {result['wall_s']:.1f} s  {result['wall_mb_s']:.1f} MB/s  "
                f"{result['wall_lines_s']:,.0f} lines/s | agent CPU {result['cpu_s']:.1f} s  "
                f"{result['mb_per_cpu_s']:.1f} MB/CPU-s  {result['lines_per_cpu_s']:,.0f} "
                f"lines/CPU-s | peak RSS {result['peak_rss_mb']:.0f} MB",
                flush=True,
            )
    return 0
