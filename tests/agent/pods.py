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

    def write_split_lines(
        self, start: int, count: int, split_every: int, prefix: str = "line"
    ) -> list[str]:
        """Like `write_lines`, but every `split_every`-th line as a P record closed by an F."""
        messages = []
        out = []
        for n in range(start, start + count):
            message = f"{prefix} {n}"
            messages.append(message)
            if n % split_every == 0:
                half = len(message) // 2
                out.append(cri_line(n, message[:half], tag="P"))
                out.append(cri_line(n, message[half:]))
            else:
                out.append(cri_line(n, message))
        self.write(b"".join(out))
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


class Writer:
    """Writes numbered lines to a container's log at a steady pace, rotating as told, in a thread.

    `rotate_every` lines, the file is rotated with `how` ("rename", "copytruncate" or "gzip":
    rename, then compress the rotated file and delete it, as kubelet does).
    """

    def __init__(
        self,
        container: Container,
        total: int,
        per_burst: int = 50,
        pause_s: float = 0.005,
        rotate_every: int = 0,
        how: str = "rename",
        keep_rotated: int = 3,
        prefix: str = "w",
        split_every: int = 0,
    ) -> None:
        import threading

        self.container = container
        self.total = total
        self.per_burst = per_burst
        self.pause_s = pause_s
        self.rotate_every = rotate_every
        self.how = how
        self.keep_rotated = keep_rotated
        self.prefix = prefix
        self.split_every = split_every
        self.sent: list[str] = []
        self.rotations = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Writer:
        self._thread.start()
        return self

    def join(self, timeout: float = 60.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "writer did not finish"

    def _run(self) -> None:
        import time

        n = 0
        since_rotation = 0
        rotated: list[Path] = []
        while n < self.total:
            count = min(self.per_burst, self.total - n)
            if self.split_every:
                self.sent += self.container.write_split_lines(
                    n, count, self.split_every, prefix=self.prefix
                )
            else:
                self.sent += self.container.write_lines(n, count, prefix=self.prefix)
            n += count
            since_rotation += count
            if self.rotate_every and since_rotation >= self.rotate_every and n < self.total:
                since_rotation = 0
                self.rotations += 1
                stamp = f"20240101-{self.rotations:06d}"
                if self.how == "copytruncate":
                    rotated.append(self.container.copytruncate(stamp))
                else:
                    path = self.container.rotate(stamp)
                    if self.how == "gzip":
                        path = self.container.compress(path)
                    rotated.append(path)
                while len(rotated) > self.keep_rotated:
                    rotated.pop(0).unlink()
            time.sleep(self.pause_s)
