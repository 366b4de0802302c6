"""Which bytes of which file the server has acknowledged, kept on disk across restarts.

The file is `<state-dir>/checkpoints.json`, versioned (docs/decisions/0002-checkpoint-format.md),
written atomically: a temp file, fsync, rename over the old one, fsync of the folder. A reader that
crashes between two writes resumes from the older one and resends a little; the server drops what it
already holds, so nothing is stored twice.

Each source (one file incarnation) has a `resume` offset (where reading must start again so that no
pending partial line is lost) and an `acked` offset (records ending at or below it are stored). Both
move only when the server acknowledges a batch: sealed batches wait here, in order, until then.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1
FILE_NAME = "checkpoints.json"
RETIRED_DAYS = 7
HEAD_BYTES = 64  # a file's first bytes tell a reused inode from the file that was checkpointed


class CheckpointError(ValueError):
    """The checkpoint file is unreadable or of an unknown version."""


@dataclass(slots=True)
class Entry:
    key: str
    path: str
    dev: int
    inode: int
    generation: int
    resume: int = 0
    acked: int = 0
    head: str = ""  # hex of the file's first bytes (up to HEAD_BYTES)
    done: bool = False  # read to its end and everything acknowledged: never read again
    finishing: bool = field(default=False, repr=False)  # read to its end, acks outstanding
    pending: deque[tuple[int, int]] = field(default_factory=deque, repr=False)


class Checkpoints:
    """The acknowledged state of every source; shared by the reader and the forwarder threads."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE_NAME
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._dirty = False
        self.saved_at = 0.0
        # Generations of forgotten sources: a reused inode must not reuse a key the server knows
        # (its high-water mark would swallow the new file's first bytes). Kept RETIRED_DAYS.
        self._retired: dict[tuple[int, int], tuple[int, float]] = {}

    def load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            document = json.loads(raw)
        except ValueError as err:
            raise CheckpointError(f"{self.path}: not JSON: {err}") from err
        if not isinstance(document, dict) or document.get("version") != VERSION:
            version = document.get("version") if isinstance(document, dict) else None
            raise CheckpointError(f"{self.path}: unknown checkpoint version {version!r}")
        entries = document.get("sources")
        if not isinstance(entries, list):
            raise CheckpointError(f"{self.path}: 'sources' is not a list")
        for item in document.get("retired", []):
            if (
                isinstance(item, list)
                and len(item) == 4
                and all(isinstance(v, int | float) for v in item)
            ):
                self._retired[(int(item[0]), int(item[1]))] = (int(item[2]), float(item[3]))
        for item in entries:
            try:
                entry = Entry(**_entry_fields(item))
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"{self.path}: bad source entry {item!r}") from err
            self._entries[entry.key] = entry

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def get(self, key: str) -> Entry | None:
        with self._lock:
            return self._entries.get(key)

    def find(self, dev: int, inode: int) -> Entry | None:
        """The newest generation checkpointed for a file."""
        with self._lock:
            found = [e for e in self._entries.values() if e.dev == dev and e.inode == inode]
        return max(found, key=lambda e: e.generation) if found else None

    def track(self, entry: Entry) -> None:
        with self._lock:
            old = self._entries.get(entry.key)
            if old is not None:
                entry.pending = old.pending
            self._entries[entry.key] = entry
            self._dirty = True

    def set_head(self, key: str, head: bytes) -> None:
        """Record a file's first bytes; the first time, on disk at once.

        A source whose entry has no head has never sealed a batch, so after a crash its key may be
        used again from offset 0. That holds only if the head reaches the disk before the first
        batch of the source can reach the server.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or len(head) * 2 <= len(entry.head):
                return
            first = not entry.head
            entry.head = head.hex()
            self._dirty = True
        if first:
            self.save(self.saved_at)

    def sealed(self, key: str, covered: int, resume: int) -> None:
        """A batch covering the source up to `covered` is on its way."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.pending.append((covered, resume))

    def finished(self, key: str, end: int) -> None:
        """The source was read to its end (`end`); done once everything sealed is acknowledged."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            entry.finishing = True
            if not entry.pending:
                entry.resume = max(entry.resume, end)
                entry.done = True
            self._dirty = True

    def acked(self, key: str, durable: int) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._settle(entry, durable)

    def _settle(self, entry: Entry, durable: int) -> None:
        pending = entry.pending
        while pending and pending[0][0] <= durable:
            _, entry.resume = pending.popleft()
        entry.acked = max(entry.acked, durable)
        if entry.finishing and not pending:
            entry.done = True
        self._dirty = True

    def outstanding(self) -> int:
        """Sealed batches not yet acknowledged, over all sources."""
        with self._lock:
            return sum(len(e.pending) for e in self._entries.values() if not e.finishing)

    def forget(self, keys: set[str]) -> None:
        now = time.time()
        with self._lock:
            for key in keys:
                entry = self._entries.pop(key, None)
                if entry is not None:
                    ident = (entry.dev, entry.inode)
                    old = self._retired.get(ident, (-1, 0.0))[0]
                    self._retired[ident] = (max(old, entry.generation), now)
                    self._dirty = True

    def generation_floor(self, dev: int, inode: int) -> int:
        """The lowest generation a new incarnation of this inode may use."""
        with self._lock:
            retired = self._retired.get((dev, inode))
        return retired[0] + 1 if retired else 0

    def save(self, now: float = 0.0, force: bool = False) -> bool:
        """Write the file if anything changed; True when written."""
        with self._lock:
            if not (self._dirty or force):
                return False
            horizon = time.time() - RETIRED_DAYS * 86_400
            for ident in [i for i, (_, at) in self._retired.items() if at < horizon]:
                del self._retired[ident]
            document = {
                "version": VERSION,
                "sources": [_entry_document(e) for e in self._entries.values()],
                "retired": [[d, i, g, round(at)] for (d, i), (g, at) in self._retired.items()],
            }
            self._dirty = False
        data = json.dumps(document, indent=1, sort_keys=True).encode()
        _write_atomically(self.path, data)
        self.saved_at = now
        return True


def _entry_document(entry: Entry) -> dict[str, Any]:
    document = asdict(entry)
    del document["pending"], document["finishing"]
    return document


def _entry_fields(item: Any) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TypeError("not an object")
    fields = {
        "key": str,
        "path": str,
        "dev": int,
        "inode": int,
        "generation": int,
        "resume": int,
        "acked": int,
        "head": str,
        "done": bool,
    }
    out: dict[str, Any] = {}
    for name, kind in fields.items():
        if name in item:
            if not isinstance(item[name], kind):
                raise ValueError(f"{name} is not {kind.__name__}")
            out[name] = item[name]
    return out


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
