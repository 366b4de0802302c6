"""Rotated copies of log files: their first bytes, their length, a reader from an offset.

A kubelet rotation keeps the inode (rename); copytruncate and compression make a new file with the
same content. Such a copy is recognised by its first bytes (`checkpoints.HEAD_BYTES`), which is how
the tailer finishes a truncated or vanished source from it instead of reading it as a new file.
"""

from __future__ import annotations

import os

from tailrace.agent import checkpoints, filesource, layout

_heads: dict[tuple[str, int, int], bytes] = {}


def head_of(lf: layout.LogFile) -> bytes:
    """The first bytes of a log file (uncompressed), cached by path, size and mtime."""
    try:
        st = lf.path.stat()
    except OSError:
        return b""
    cache_key = (str(lf.path), st.st_size, st.st_mtime_ns)
    head = _heads.get(cache_key)
    if head is None:
        head = _read_head(lf)
        if len(_heads) > 4096:
            _heads.clear()
        if len(head) == checkpoints.HEAD_BYTES or not lf.compressed:
            _heads[cache_key] = head
    return head


def _read_head(lf: layout.LogFile) -> bytes:
    try:
        reader = reader_for(lf, 0)
    except OSError:
        return b""
    try:
        return reader.read(checkpoints.HEAD_BYTES)
    except (OSError, EOFError):
        return b""
    finally:
        reader.close()


def size_of(lf: layout.LogFile) -> int:
    if not lf.compressed:
        try:
            return lf.path.stat().st_size
        except OSError:
            return -1
    size = 0
    try:
        reader = reader_for(lf, 0)
        try:
            while chunk := reader.read(1 << 20):
                size += len(chunk)
        finally:
            reader.close()
    except (OSError, EOFError):
        return -1
    return size


def reader_for(lf: layout.LogFile, offset: int) -> filesource.Reader:
    if lf.compressed:
        return filesource.GzipReader(lf.path, offset)
    return filesource.PlainReader(os.open(lf.path, os.O_RDONLY | os.O_CLOEXEC), offset)


class EmptyReader:
    def read(self, size: int) -> bytes:
        return b""

    def close(self) -> None:
        pass
