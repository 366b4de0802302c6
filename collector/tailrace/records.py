"""The log record as both the agent and the server see it, independent of wire and storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tailrace import conventions

STREAM_CODES: dict[str, int] = {"stdout": ord("o"), "stderr": ord("e")}
STREAM_NAMES: dict[int, str] = {code: name for name, code in STREAM_CODES.items()}
LEVEL_CODES: dict[str, int] = {name: code for code, name in enumerate(conventions.LEVELS)}

FLAG_TRUNCATED = 1
FLAG_SPLIT = 2
FLAG_PARSE_ERROR = 4
FLAG_PARTIAL_FLUSH = 8


@dataclass(slots=True)
class SourceInfo:
    """Which file on which node a record was read from, and the pod it belongs to."""

    key: str
    namespace: str
    pod: str
    pod_uid: str
    container: str
    node: str = ""
    container_id: str = ""
    restart: int = 0
    workload: str = ""
    path: str = ""


@dataclass(slots=True)
class LogRecord:
    """One log line after reassembly and the line-limit policy."""

    ts_ns: int
    stream: str
    level: str
    message: str
    end_offset: int
    flags: int = 0
    execution_id: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def truncated(self) -> bool:
        return bool(self.flags & FLAG_TRUNCATED)
