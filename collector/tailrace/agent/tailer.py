"""Many log files at once: discovery, rotation, truncation, release, and fair reading.

Files are identified by (device, inode), never by path. One `FileSource` reads each file
incarnation; a copytruncate starts a new incarnation (generation) of the same inode.

- Rename rotation (kubelet): `N.log` becomes `N.log.<ts>` and a new `N.log` appears. The open
  descriptor keeps reading the renamed file to its end; once it is no longer the live file, at its
  end and quiet for `retire_after_s`, its partials are flushed and it is released.
- Copytruncate: the live file shrinks (or its first bytes change). What was not read yet is in the
  copy beside it, found by its first bytes; the old incarnation finishes from the copy, and the
  file starts over as a new generation.
- `.gz`: a compressed rotated file is read only to finish a checkpointed source whose file is gone
  (the agent was down while kubelet rotated and compressed), from the checkpoint's offset.
- Deleted files and older restarts (`N.log` when `N+1.log` exists) are read to their end and
  released; the container exited, so their dangling partials are flushed.
- Fairness: each round reads at most one chunk of every file, so one busy file cannot starve the
  others.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tailrace.agent import checkpoints, copies, filesource, layout, metrics

log = logging.getLogger("tailrace.agent.tailer")
Identity = tuple[int, int]


@dataclass(slots=True)
class _File:
    source: filesource.FileSource
    fd: int  # of the file as discovered (the source may read a copy instead)
    current: bool  # the live file of the newest restart: more may be written to it
    size: int = 0
    last_data: float = 0.0
    batch_since: float = -1.0
    head: bytes = b""
    draining: bool = False  # finishing from a copytruncate copy or a .gz


class Tailer:
    def __init__(
        self,
        pods_dir: Path,
        config: filesource.Config,
        state: checkpoints.Checkpoints,
        emit: Callable[[filesource.Sealed], None],
        agent_metrics: metrics.Metrics,
        only_pod_uid: str = "",
        batch_max_wait_s: float = 0.2,
        retire_after_s: float = 1.0,
        resume_from: Callable[[str], int] = lambda key: 0,
    ) -> None:
        self.pods_dir = pods_dir
        self.config = config
        self.state = state
        self.emit = emit
        self.metrics = agent_metrics
        self.only_pod_uid = only_pod_uid
        self.batch_max_wait_s = batch_max_wait_s
        self.retire_after_s = retire_after_s
        # Where to start a file no checkpoint knows: the server's durable offset for its key.
        self.resume_from = resume_from
        self.files: dict[str, _File] = {}
        self.by_inode: dict[Identity, _File] = {}
        # Files read to their end, with their size then: a different size means a reused inode.
        self.done: dict[Identity, int] = {}
        self._recovered = False
        self.stats = metrics.TailerStats()  # totals of released sources

    # Discovery.

    def discover(self, now: float) -> None:
        found = layout.scan(self.pods_dir, self.only_pod_uid)
        newest: dict[tuple[str, str], int] = {}
        for lf in found:
            slot = (lf.pod_uid, lf.container)
            newest[slot] = max(newest.get(slot, -1), lf.restart)
        seen: set[Identity] = set()
        rotated: list[tuple[layout.LogFile, os.stat_result]] = []
        compressed: list[layout.LogFile] = []
        for lf in found:
            if lf.compressed:
                compressed.append(lf)
                continue
            try:
                st = os.stat(lf.path)
            except FileNotFoundError:
                continue
            ident = (st.st_dev, st.st_ino)
            seen.add(ident)
            current = lf.live and lf.restart == newest[(lf.pod_uid, lf.container)]
            tracked = self.by_inode.get(ident)
            if tracked is not None:
                if tracked.source.log.path != lf.path and not current:
                    self.metrics.rotations.labels("rename").inc()
                tracked.source.log = lf
                tracked.current = current and not tracked.draining
                # Sizes only grow within a generation; a shrink is for _check_truncation to see.
                tracked.size = max(tracked.size, st.st_size)
                continue
            if self.done.get(ident) == st.st_size:
                continue
            self.done.pop(ident, None)
            if lf.live:
                self._open(lf, st, now, current)
            else:
                rotated.append((lf, st))
        for lf, st in rotated:
            if not self._is_copy(lf):
                self._open(lf, st, now, current=False)
        for ident, tracked in self.by_inode.items():
            if ident not in seen:
                tracked.current = False  # deleted: read what is left through the descriptor
        if not self._recovered:
            self._recovered = True
            self._recover([lf for lf, _ in rotated] + compressed)
        for tracked in list(self.by_inode.values()):
            if tracked.current:
                self._check_truncation(tracked, now)
        for ident in [i for i in self.done if i not in seen]:
            del self.done[ident]
        # A finished source is forgotten once its file is gone, but not while a rotated copy of
        # it remains: its head is what tells that copy from a file never read.
        not_live = [lf for lf in found if not lf.live]
        self.state.forget(
            {
                e.key
                for e in self.state.entries()
                if e.done and (e.dev, e.inode) not in seen and not self._has_copy(e, not_live)
            }
        )

    def _has_copy(self, entry: checkpoints.Entry, candidates: list[layout.LogFile]) -> bool:
        if not entry.head:
            return False
        head = bytes.fromhex(entry.head)
        folder = os.path.dirname(entry.path)
        for lf in candidates:
            if str(lf.path.parent) == folder:
                theirs = copies.head_of(lf)
                n = min(len(theirs), len(head))
                if n and theirs[:n] == head[:n]:
                    return True
        return False

    def _open(self, lf: layout.LogFile, st: os.stat_result, now: float, current: bool) -> None:
        ident = (st.st_dev, st.st_ino)
        try:
            fd = os.open(lf.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != ident:  # replaced between stat and open
            os.close(fd)
            return
        head = os.pread(fd, checkpoints.HEAD_BYTES, 0)
        entry = self.state.find(*ident)
        generation, offset, acked = self.state.generation_floor(*ident), 0, 0
        if entry is not None:
            known = bytes.fromhex(entry.head)
            same_file = head[: len(known)] == known
            if not same_file:
                generation = max(generation, entry.generation + 1)  # a reused inode
            elif opened.st_size < entry.resume:
                generation = max(generation, entry.generation + 1)  # truncated while away
                self.metrics.rotations.labels("copytruncate").inc()
            elif entry.done and opened.st_size == entry.resume:
                os.close(fd)
                self.done[ident] = opened.st_size
                return
            else:
                generation, offset, acked = entry.generation, entry.resume, entry.acked
        else:
            held = self.resume_from(f"{self.config.node}/{ident[0]}:{ident[1]}:{generation}")
            # The server holds more of this key than the file now has: it was truncated in place
            # while no agent ran. Step to the next generation, which starts over under a new key,
            # so the new lines are not mistaken for ones already stored.
            while held > opened.st_size:
                generation += 1
                held = self.resume_from(f"{self.config.node}/{ident[0]}:{ident[1]}:{generation}")
            offset = acked = held
        self._start(
            lf,
            ident,
            fd,
            generation,
            filesource.PlainReader(fd, offset),
            offset,
            acked,
            current,
            head,
            now,
        )

    def _start(
        self,
        lf: layout.LogFile,
        ident: Identity,
        fd: int,
        generation: int,
        reader: filesource.Reader,
        offset: int,
        acked: int,
        current: bool,
        head: bytes,
        now: float,
    ) -> _File:
        source = filesource.FileSource(
            lf, ident[0], ident[1], generation, reader, offset, acked, self.config
        )
        existing = self.state.get(source.key)
        self.state.track(
            checkpoints.Entry(
                source.key,
                str(lf.path),
                ident[0],
                ident[1],
                generation,
                resume=offset,
                acked=acked,
                head=head.hex() if head else (existing.head if existing else ""),
            )
        )
        tracked = _File(source, fd, current, last_data=now, head=head)
        if current and fd >= 0:
            source.guard = lambda: self._same_head(tracked)
        self.files[source.key] = tracked
        self.by_inode[ident] = tracked
        log.info(
            "reading %s",
            lf.path,
            extra={"key": source.key, "offset": offset, "generation": generation},
        )
        return tracked

    def _known_heads(self, lf: layout.LogFile) -> list[bytes]:
        folder = str(lf.path.parent)
        heads = [
            bytes.fromhex(e.head)
            for e in self.state.entries()
            if e.head and os.path.dirname(e.path) == folder
        ]
        heads += [
            f.head
            for f in self.files.values()
            if f.head and f.source.log.path.parent == lf.path.parent
        ]
        return heads

    def _is_copy(self, lf: layout.LogFile) -> bool:
        """A rotated file that starts like a file already read: a copytruncate copy."""
        head = copies.head_of(lf)
        if not head:
            return True  # empty (or being created): nothing to read yet, decide later
        for known in self._known_heads(lf):
            n = min(len(known), len(head))
            if n and known[:n] == head[:n]:
                return True
        return False

    def _find_copy(
        self, lf: layout.LogFile, head: bytes, offset: int, candidates: list[layout.LogFile]
    ) -> tuple[layout.LogFile, int] | None:
        for candidate in sorted(candidates, key=lambda c: c.path.name, reverse=True):
            if candidate.path.parent != lf.path.parent or candidate.restart != lf.restart:
                continue
            if candidate.live:
                continue
            theirs = copies.head_of(candidate)
            n = min(len(theirs), len(head))
            if not n or theirs[:n] != head[:n]:
                continue
            size = copies.size_of(candidate)
            if size >= offset:
                return candidate, size
        return None

    def _recover(self, candidates: list[layout.LogFile]) -> None:
        """Finish checkpointed sources whose file is gone from a rotated copy or a .gz."""
        for entry in self.state.entries():
            # Not done and not being read: its file is gone, or its inode now holds another file.
            if entry.done or entry.key in self.files or not entry.head:
                continue
            parsed = layout.from_path(Path(entry.path))
            if parsed is None:
                continue
            found = self._find_copy(parsed, bytes.fromhex(entry.head), entry.resume, candidates)
            if found is None:
                log.warning(
                    "checkpointed file is gone and no rotated copy holds the rest",
                    extra={"key": entry.key, "path": entry.path},
                )
                continue
            copy, _ = found
            reader = copies.reader_for(copy, entry.resume)
            tracked = self._start(
                parsed,
                (entry.dev, entry.inode),
                -1,
                entry.generation,
                reader,
                entry.resume,
                entry.acked,
                False,
                bytes.fromhex(entry.head),
                0.0,
            )
            tracked.draining = True
            self.by_inode.pop((entry.dev, entry.inode), None)
            self.metrics.rotations.labels("gzip" if copy.compressed else "rename").inc()
            log.info("finishing %s from %s", entry.path, copy.path, extra={"key": entry.key})

    def _check_truncation(self, tracked: _File, now: float) -> None:
        source = tracked.source
        try:
            st = os.fstat(tracked.fd)
        except OSError:
            return
        if st.st_size < source.read_offset or not self._same_head(tracked):
            self._truncated(tracked, now)  # (tracked.size still says how much was there)
            return
        tracked.size = st.st_size
        if len(tracked.head) < checkpoints.HEAD_BYTES and st.st_size > len(tracked.head):
            tracked.head = os.pread(tracked.fd, checkpoints.HEAD_BYTES, 0)
            self.state.set_head(source.key, tracked.head)

    def _same_head(self, tracked: _File) -> bool:
        head = tracked.head
        return not head or os.pread(tracked.fd, len(head), 0) == head

    def _truncated(self, tracked: _File, now: float) -> None:
        """Copytruncate: finish this generation from the copy, start the next one at offset 0."""
        source = tracked.source
        self.metrics.rotations.labels("copytruncate").inc()
        ident = (source.dev, source.inode)
        fd = tracked.fd
        del self.by_inode[ident]
        tracked.fd = -1
        tracked.current = False
        tracked.draining = True  # the inode lives on as the next generation
        source.guard = None
        source.truncated = False
        copy = self._find_copy(
            source.log, tracked.head, source.read_offset, layout.siblings(source.log.path)
        )
        if copy is not None:
            source.reader = copies.reader_for(copy[0], source.read_offset)
            log.info(
                "file truncated; finishing it from its copy %s",
                copy[0].path,
                extra={"key": source.key},
            )
        else:
            log.warning(
                "file truncated and no copy found: unread bytes are lost",
                extra={"key": source.key, "path": str(source.log.path)},
            )
            # At least the bytes last seen beyond our offset are gone (more may have been).
            self.metrics.lost_bytes.inc(max(0, tracked.size - source.read_offset))
            source.reader = copies.EmptyReader()
            self._retire(tracked)
        self._start(
            source.log,
            ident,
            fd,
            source.generation + 1,
            filesource.PlainReader(fd, 0),
            0,
            0,
            True,
            os.pread(fd, checkpoints.HEAD_BYTES, 0),
            now,
        )

    # Reading.

    def reading_rotated(self) -> bool:
        """A file is open that is no longer its container's live file (rotated, deleted, a copy
        or a .gz, an older restart's): its bytes may be deleted soon, so it must not wait."""
        return any(not tracked.current for tracked in self.files.values())

    def pump(self, now: float) -> int:
        """One round: a chunk from every file with data. Returns the bytes read."""
        total = 0
        for tracked in list(self.files.values()):
            source = tracked.source
            n = source.read(now)
            if source.truncated:
                self._truncated(tracked, now)
                continue
            if n:
                total += n
                tracked.last_data = now
                if len(tracked.head) < checkpoints.HEAD_BYTES and tracked.fd >= 0:
                    tracked.head = os.pread(tracked.fd, checkpoints.HEAD_BYTES, 0)
                    self.state.set_head(source.key, tracked.head)
            if source.has_output:
                if tracked.batch_since < 0:
                    tracked.batch_since = now
                if source.batch_full():
                    self._seal(tracked)
        return total

    def housekeeping(self, now: float) -> None:
        """Close aged batches, expire dangling partials, release finished files."""
        for tracked in list(self.files.values()):
            source = tracked.source
            if source.at_eof:
                source.expire(now)
                if (not tracked.current and now - tracked.last_data >= self.retire_after_s) or (
                    tracked.draining and source.at_eof
                ):
                    self._retire(tracked)
                    continue
            if source.has_output:
                if tracked.batch_since < 0:
                    tracked.batch_since = now
                if now - tracked.batch_since >= self.batch_max_wait_s:
                    self._seal(tracked)

    def _seal(self, tracked: _File) -> None:
        tracked.batch_since = -1.0
        sealed = tracked.source.seal()
        if sealed is None:
            return
        self.state.sealed(sealed.key, sealed.covered_offset, sealed.resume_offset)
        self.emit(sealed)

    def _retire(self, tracked: _File) -> None:
        source = tracked.source
        source.finish()
        self._seal(tracked)
        self.state.finished(source.key, source.consumed)
        self._fold(source)
        source.close()
        ident = (source.dev, source.inode)
        if not tracked.draining:
            self.done[ident] = source.consumed
        self.files.pop(source.key, None)
        if self.by_inode.get(ident) is tracked:
            del self.by_inode[ident]
        log.info(
            "released %s", source.log.path, extra={"key": source.key, "offset": source.consumed}
        )

    def folders(self) -> set[Path]:
        """The pod and container folders of the files being read (for the watcher)."""
        folders: set[Path] = set()
        for tracked in self.files.values():
            folder = tracked.source.log.path.parent
            folders.add(folder)
            folders.add(folder.parent)
        return folders

    def seal_all(self) -> None:
        """Shutdown: everything read goes out; pending partials stay for the next run."""
        for tracked in list(self.files.values()):
            self._seal(tracked)

    def close(self) -> None:
        for tracked in list(self.files.values()):
            tracked.source.close()
        self.files.clear()
        self.by_inode.clear()

    # Statistics.

    def _fold(self, source: filesource.FileSource) -> None:
        stats = self.stats
        for outcome, count in source.merger.counts.items():
            stats.lines[outcome] += count
        stats.physical_lines += source.lines_read
        stats.bytes_read += source.bytes_read
        stats.parse_errors += source.parse_errors
        stats.partial_flushes += source.merger.partial_flushes

    def snapshot(self) -> metrics.TailerStats:
        base = self.stats
        stats = metrics.TailerStats(
            dict(base.lines),
            base.physical_lines,
            base.bytes_read,
            base.parse_errors,
            base.partial_flushes,
        )
        files = list(self.files.values())
        for tracked in files:
            source = tracked.source
            for outcome, count in source.merger.counts.items():
                stats.lines[outcome] += count
            stats.physical_lines += source.lines_read
            stats.bytes_read += source.bytes_read
            stats.parse_errors += source.parse_errors
            stats.partial_flushes += source.merger.partial_flushes
            size = tracked.size
            if tracked.fd >= 0:
                with contextlib.suppress(OSError):
                    size = os.fstat(tracked.fd).st_size
            stats.lag_bytes += max(0, size - source.read_offset)
        stats.files_open = len(files)
        return stats
