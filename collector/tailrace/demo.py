"""Container log files written the way kubelet and containerd write them, without a cluster.

`tailrace up` uses this to run a demo workload; tests use it to produce real CRI files, rotate them
by rename (with kubelet's `N.log.<timestamp>` names and gzip), truncate them in place
(copytruncate) and remove a pod's folder when the pod goes away.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

# containerd splits a line longer than this into P records of exactly this size, closed by an F.
CRI_CHUNK_BYTES = 16_384


def rfc3339_nano(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def cri_records(content: bytes, stream: str = "stdout", ts_ns: int | None = None) -> bytes:
    """One log line as containerd writes it: F, or P chunks of 16 KiB closed by an F."""
    stamp = rfc3339_nano(time.time_ns() if ts_ns is None else ts_ns).encode()
    head = stamp + b" " + stream.encode() + b" "
    out = bytearray()
    pos = 0
    while len(content) - pos > CRI_CHUNK_BYTES:
        out += head + b"P " + content[pos : pos + CRI_CHUNK_BYTES] + b"\n"
        pos += CRI_CHUNK_BYTES
    out += head + b"F " + content[pos:] + b"\n"
    return bytes(out)


@dataclass
class PodLogs:
    """The log folder of one pod: `<pods_dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`."""

    pods_dir: Path
    namespace: str
    pod: str
    uid: str

    @property
    def folder(self) -> Path:
        return self.pods_dir / f"{self.namespace}_{self.pod}_{self.uid}"

    def path(self, container: str, restart: int = 0) -> Path:
        return self.folder / container / f"{restart}.log"

    def write(
        self,
        container: str,
        content: bytes | str,
        stream: str = "stdout",
        restart: int = 0,
        ts_ns: int | None = None,
    ) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.append_raw(container, cri_records(data, stream, ts_ns), restart)

    def append_raw(self, container: str, raw: bytes, restart: int = 0) -> None:
        path = self.path(container, restart)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab") as f:
            f.write(raw)

    def rotate(self, container: str, restart: int = 0, compress_older: bool = True) -> Path:
        """Kubelet's rotation: rename N.log to N.log.<timestamp>, gzip older rotated files."""
        path = self.path(container, restart)
        if compress_older:
            for older in sorted(path.parent.glob(f"{restart}.log.*")):
                if older.suffix != ".gz":
                    with older.open("rb") as src, gzip.open(f"{older}.gz", "wb") as dst:
                        shutil.copyfileobj(src, dst)
                    older.unlink()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        rotated = path.with_name(f"{path.name}.{stamp}")
        n = 0
        while rotated.exists():
            n += 1
            rotated = path.with_name(f"{path.name}.{stamp}{n}")
        os.rename(path, rotated)
        path.touch()
        return rotated

    def copytruncate(self, container: str, restart: int = 0) -> Path:
        """logrotate's copytruncate: copy the file aside, then truncate it in place."""
        path = self.path(container, restart)
        copy = path.with_name(f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.copyfile(path, copy)
        with path.open("r+b") as f:
            f.truncate(0)
        return copy

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def pod_object(
    logs: PodLogs, labels: dict[str, str], containers: list[str], phase: str = "Running"
) -> dict[str, object]:
    """A minimal Pod in Kubernetes JSON, for the control API."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": logs.pod,
            "namespace": logs.namespace,
            "uid": logs.uid,
            "labels": labels,
            "creationTimestamp": now,
        },
        "spec": {"containers": [{"name": c, "image": "demo"} for c in containers]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [
                {
                    "name": c,
                    "ready": phase == "Running",
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}} if phase == "Running" else {},
                }
                for c in containers
            ],
        },
    }


def workload_object(
    kind: str, namespace: str, name: str, uid: str, app_label: str
) -> dict[str, object]:
    """A Function or Pipeline custom resource in Kubernetes JSON, for the control API."""
    return {
        "apiVersion": "tailrace.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 1},
        "spec": {
            "selector": {"matchLabels": {"app": app_label}},
            "logs": {"enabled": True, "minLevel": "DEBUG", "maxLineBytes": 16384},
            "collector": {"mode": "sidecar"},
        },
    }


class DemoTraffic:
    """Plausible logs of a small HTTP function: JSON access logs, plain lines, a long line."""

    def __init__(self, seed: int = 7) -> None:
        self._rng = random.Random(seed)
        self._n = 0

    def next_line(self) -> tuple[bytes, str]:
        self._n += 1
        n, rng = self._n, self._rng
        execution = f"exec-{n // 5:04d}"
        if n % 37 == 0:
            long_line = b"x" * 20_000 + b" (a 20 KB line, split by containerd, joined again)"
            return long_line, "stdout"
        if n % 11 == 0:
            return f"ERROR upstream timed out after {rng.randint(1, 9)}s".encode(), "stderr"
        if n % 3 == 0:
            return f"WARN cache miss ratio {rng.random():.2f}".encode(), "stdout"
        path = rng.choice(["/hello", "/hello?name=ada", "/healthz", "/orders/42"])
        status = rng.choice([200, 200, 200, 201, 404, 500])
        level = "error" if status >= 500 else "info"
        return (
            orjson.dumps(
                {
                    "level": level,
                    "msg": f"{'GET'} {path} {status}",
                    "executionId": execution,
                    "method": "GET",
                    "url": path,
                    "status": status,
                    "durationMs": rng.randint(1, 250),
                }
            ),
            "stdout",
        )
