"""The send buffer: bounded memory, then a bounded on-disk spool, then backpressure.

The spool is for a server that is away. A server that is up but slower than the reader paces the
reader instead (`put(..., spill=False)`, see runner.Agent._emit): writing every batch to disk and
reading it back again only costs CPU while the server sets the pace anyway.

Batches leave in the order they entered: the server's per-source high-water mark would drop an
older batch that arrived after a newer one. So once anything is spooled, newer batches queue behind
it on disk even when memory has room again, and memory is refilled from the spool's head.

The spool is a folder of one file per batch (a JSON header line, then the serialized `Batch`). It
does not outlive the process: on start it is emptied, because every byte in it is still in the log
files and re-read from the acknowledged checkpoint.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections import deque
from pathlib import Path

from tailrace.agent import filesource


class Buffer:
    """FIFO of sealed batches between the reader thread and the forwarder thread."""

    def __init__(self, memory_bytes: int, spool_dir: Path | None, spool_bytes: int) -> None:
        self.memory_limit = memory_bytes
        self.spool_limit = spool_bytes if spool_dir is not None else 0
        self.spool_dir = spool_dir
        self._memory: deque[filesource.Sealed] = deque()
        self._spooled: deque[tuple[Path, int]] = deque()
        self.memory_bytes = 0
        self.spool_bytes = 0
        self._sequence = 0
        self._cond = threading.Condition()
        self.closed = False
        if spool_dir is not None:
            shutil.rmtree(spool_dir, ignore_errors=True)
            spool_dir.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        with self._cond:
            return len(self._memory) + len(self._spooled)

    def put(self, item: filesource.Sealed, timeout: float, spill: bool = True) -> bool:
        """Queue a batch; False when memory and spool stayed full for `timeout` (backpressure).

        With `spill` False the batch waits for room in memory instead of going to the spool
        (nor behind batches already there): the caller paces reading to a slow server.
        """
        with self._cond:
            fits = self._fits if spill else self._fits_memory
            if not self._cond.wait_for(lambda: fits(item.size) or self.closed, timeout):
                return False
            if self._spooled:
                self._spool(item)
            elif not self._memory or self.memory_bytes + item.size <= self.memory_limit:
                # (A batch larger than the memory limit on its own still has to pass.)
                self._memory.append(item)
                self.memory_bytes += item.size
            else:
                self._spool(item)
            self._cond.notify_all()
            return True

    def _fits_memory(self, size: int) -> bool:
        return not self._spooled and (
            not self._memory or self.memory_bytes + size <= self.memory_limit
        )

    def _fits(self, size: int) -> bool:
        if self._spooled:
            return self.spool_bytes + size <= self.spool_limit
        if not self._memory or self.memory_bytes + size <= self.memory_limit:
            return True
        return self.spool_bytes + size <= self.spool_limit

    def _spool(self, item: filesource.Sealed) -> None:
        assert self.spool_dir is not None
        self._sequence += 1
        path = self.spool_dir / f"{self._sequence:012d}.batch"
        header = json.dumps(
            {
                "key": item.key,
                "covered_offset": item.covered_offset,
                "resume_offset": item.resume_offset,
                "records": item.records,
            }
        ).encode()
        with path.open("wb") as file:
            file.write(header + b"\n" + item.payload)
        self._spooled.append((path, item.size))
        self.spool_bytes += item.size

    def _unspool(self) -> None:
        path, size = self._spooled.popleft()
        data = path.read_bytes()
        path.unlink()
        self.spool_bytes -= size
        newline = data.index(b"\n")
        header = json.loads(data[:newline])
        self._memory.append(
            filesource.Sealed(
                header["key"],
                data[newline + 1 :],
                header["covered_offset"],
                header["resume_offset"],
                header["records"],
            )
        )
        self.memory_bytes += size

    def peek(self, max_bytes: int, timeout: float) -> list[filesource.Sealed]:
        """The oldest batches, up to `max_bytes` (at least one), left in place until `remove`."""
        with self._cond:
            self._cond.wait_for(lambda: self._memory or self._spooled or self.closed, timeout)
            while self._spooled and self.memory_bytes < self.memory_limit:
                self._unspool()
            taken: list[filesource.Sealed] = []
            total = 0
            for item in self._memory:
                if taken and total + item.size > max_bytes:
                    break
                taken.append(item)
                total += item.size
            return taken

    def remove(self, count: int) -> None:
        with self._cond:
            for _ in range(count):
                item = self._memory.popleft()
                self.memory_bytes -= item.size
            while self._spooled and self.memory_bytes < self.memory_limit:
                self._unspool()  # refill memory from the spool's head: its room frees the spool
            self._cond.notify_all()

    def wait_empty(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._memory and not self._spooled, timeout)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
