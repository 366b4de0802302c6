"""Kubelet's log directory layout: `<pods-dir>/<namespace>_<pod>_<uid>/<container>/<restart>.log`.

Rotated files sit beside the live one as `<restart>.log.<YYYYMMDD-hhmmss>` and, once compressed,
`<restart>.log.<YYYYMMDD-hhmmss>.gz`. Everything the agent knows about a pod comes from the path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# Namespace and pod names are DNS labels/subdomains, so they hold no underscore: the first two
# underscores split the folder name unambiguously.
_POD_DIR = re.compile(r"([a-z0-9][a-z0-9-]*)_([a-z0-9][a-z0-9.-]*)_([A-Za-z0-9-]+)")
_LOG_NAME = re.compile(r"(\d+)\.log(?:\.(\d{8}-\d{6}))?(\.gz)?")


@dataclass(frozen=True, slots=True)
class LogFile:
    """One log file found on disk and the pod/container it belongs to."""

    path: Path
    namespace: str
    pod: str
    pod_uid: str
    container: str
    restart: int
    rotated: str  # the rotation timestamp, "" for the live file
    compressed: bool

    @property
    def live(self) -> bool:
        return not self.rotated and not self.compressed


def parse_pod_dir(name: str) -> tuple[str, str, str] | None:
    """(namespace, pod, uid) of a pod folder name, or None when it is not one."""
    match = _POD_DIR.fullmatch(name)
    return (match[1], match[2], match[3]) if match else None


def parse_log_name(name: str) -> tuple[int, str, bool] | None:
    """(restart, rotation timestamp or "", compressed) of a log file name, or None."""
    match = _LOG_NAME.fullmatch(name)
    return (int(match[1]), match[2] or "", bool(match[3])) if match else None


def scan(pods_dir: Path, only_pod_uid: str = "") -> list[LogFile]:
    """Every log file under `pods_dir` (or only the folder of one pod, in sidecar mode)."""
    found: list[LogFile] = []
    try:
        pod_entries = list(os.scandir(pods_dir))
    except FileNotFoundError:
        return found
    for pod_entry in pod_entries:
        pod = parse_pod_dir(pod_entry.name)
        if pod is None or (only_pod_uid and pod[2] != only_pod_uid):
            continue
        try:
            containers = [e for e in os.scandir(pod_entry.path) if e.is_dir()]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for container in containers:
            try:
                names = os.listdir(container.path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for name in names:
                parsed = parse_log_name(name)
                if parsed is None:
                    continue
                restart, rotated, compressed = parsed
                found.append(
                    LogFile(
                        Path(container.path, name),
                        pod[0],
                        pod[1],
                        pod[2],
                        container.name,
                        restart,
                        rotated,
                        compressed,
                    )
                )
    return found


def from_path(path: Path) -> LogFile | None:
    """The `LogFile` a path would be found as, or None when it is not in kubelet's layout."""
    pod = parse_pod_dir(path.parent.parent.name)
    parsed = parse_log_name(path.name)
    if pod is None or parsed is None:
        return None
    return LogFile(path, pod[0], pod[1], pod[2], path.parent.name, *parsed)


def siblings(path: Path) -> list[LogFile]:
    """The log files in the same container folder as `path`."""
    found = []
    try:
        names = os.listdir(path.parent)
    except (FileNotFoundError, NotADirectoryError):
        return []
    for name in names:
        log = from_path(path.parent / name)
        if log is not None:
            found.append(log)
    return found
