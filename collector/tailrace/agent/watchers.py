"""What tells the agent that the pods folder changed: inotify, or a timer when inotify is missing.

Both are behind `Watcher`, like Fluent Bit's `tail_fs_inotify.c` / `tail_fs_stat.c`. inotify
(through ctypes, no extra dependency) watches the pods folder, every pod folder and every container
folder for created, moved and deleted entries, so a new pod or a rotation is seen within
milliseconds; the agent still rescans on a timer (1 s) as a safety net. Without inotify (another
OS, or the per-user watch limit reached) `PollingWatcher` reports nothing and the agent rescans
every `poll_interval_s` (0.25 s by default), well within the 1 s discovery bound.
File contents are not watched: the reader polls open files every 50 ms when idle, which costs one
`read` per file and catches writes whatever the filesystem.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import select
import struct
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

log = logging.getLogger("tailrace.agent.watchers")

_IN_MODIFY_DIR = 0x100 | 0x200 | 0x40 | 0x80 | 0x400 | 0x800  # CREATE DELETE MOVED_* DELETE_SELF
_IN_ISDIR = 0x40000000
_IN_CREATE = 0x100
_EVENT = struct.Struct("iIII")


class Watcher(Protocol):
    rescan_interval_s: float

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout`; True when the folders changed (rescan now)."""
        ...

    def watch(self, folders: Iterable[Path]) -> None: ...

    def close(self) -> None: ...


class PollingWatcher:
    """No notifications: the agent rescans every `rescan_interval_s`."""

    def __init__(self, rescan_interval_s: float) -> None:
        self.rescan_interval_s = rescan_interval_s
        self._event = threading.Event()

    def wait(self, timeout: float) -> bool:
        self._event.wait(timeout)
        return False

    def watch(self, folders: Iterable[Path]) -> None:
        pass

    def close(self) -> None:
        self._event.set()


class InotifyWatcher:
    """Linux inotify on the folder tree (not on files)."""

    rescan_interval_s = 1.0

    def __init__(self, root: Path) -> None:
        name = ctypes.util.find_library("c")
        libc = ctypes.CDLL(name, use_errno=True)
        self._add = libc.inotify_add_watch
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._watched: dict[int, Path] = {}
        self._paths: set[Path] = set()
        self.root = root
        self.watch([root])

    def watch(self, folders: Iterable[Path]) -> None:
        for folder in folders:
            if folder in self._paths:
                continue
            wd = self._add(self._fd, os.fsencode(folder), _IN_MODIFY_DIR)
            if wd < 0:
                continue  # gone already, or the watch limit: the timer still rescans
            self._watched[wd] = folder
            self._paths.add(folder)

    def wait(self, timeout: float) -> bool:
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return False
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
            name = data[offset + _EVENT.size : offset + _EVENT.size + length].rstrip(b"\0")
            offset += _EVENT.size + length
            folder = self._watched.get(wd)
            if mask & 0x8000:  # IN_IGNORED: the folder is gone, the kernel dropped the watch
                if folder is not None:
                    del self._watched[wd]
                    self._paths.discard(folder)
                continue
            if folder is not None and mask & _IN_CREATE and mask & _IN_ISDIR and name:
                child = folder / os.fsdecode(name)
                if len(child.relative_to(self.root).parts) <= 2:
                    self.watch([child])  # a new pod or container folder: watch it at once
        return True

    def close(self) -> None:
        os.close(self._fd)


def create(root: Path, poll_interval_s: float) -> Watcher:
    """inotify when the kernel offers it, else polling."""
    try:
        return InotifyWatcher(root)
    except (OSError, AttributeError) as err:
        log.warning("inotify unavailable; polling the pods folder", extra={"error": str(err)})
        return PollingWatcher(poll_interval_s)
