"""Kubelet's log directory in a temp folder: CRI lines written, rotated, truncated and deleted."""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

BASE_TS = 1_700_000_000


def cri_ts(n: int) -> str:
    """A distinct, increasing RFC 3339 timestamp with nanoseconds for line n."""
    seconds, nanos = divmod(n, 1000)
    import time

    head = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(BASE_TS + seconds))
    return f"{head}.{nanos * 1000:09d}Z"


def cri_line(n: int, content: str | bytes, stream: str = "stdout", tag: str = "F") -> bytes:
    body = content.encode() if isinstance(content, str) else content
    return f"{cri_ts(n)} {stream} {tag} ".encode() + body + b"\n"


@dataclass
class Container:
    root: Path  # the pods dir
    namespace: str = "default"
    pod: str = "hello"
    uid: str = "0000-1111"
    name: str = "app"
    restart: int = 0

    @property
    def folder(self) -> Path:
        return self.root / f"{self.namespace}_{self.pod}_{self.uid}" / self.name

    @property
    def path(self) -> Path:
        return self.folder / f"{self.restart}.log"

    def write(self, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as file:
            file.write(data)

    def write_lines(
        self, start: int, count: int, stream: str = "stdout", prefix: str = "line"
    ) -> list[str]:
        messages = [f"{prefix} {n}" for n in range(start, start + count)]
        self.write(
            b"".join(
                cri_line(n, m, stream)
                for n, m in zip(range(start, start + count), messages, strict=True)
            )
        )
        return messages

    def rotate(self, stamp: str) -> Path:
        """Kubelet's rotation: rename N.log to N.log.<stamp>; the next write creates a new N.log."""
        rotated = self.folder / f"{self.restart}.log.{stamp}"
        os.rename(self.path, rotated)
        return rotated

    def compress(self, rotated: Path) -> Path:
        gz = rotated.with_name(rotated.name + ".gz")
        with rotated.open("rb") as src, gzip.open(gz, "wb") as dst:
            shutil.copyfileobj(src, dst)
        rotated.unlink()
        return gz

    def copytruncate(self, stamp: str) -> Path:
        copy = self.folder / f"{self.restart}.log.{stamp}"
        shutil.copyfile(self.path, copy)
        with self.path.open("r+b") as file:
            file.truncate(0)
        return copy

    def delete_pod(self) -> None:
        shutil.rmtree(self.folder.parent)
