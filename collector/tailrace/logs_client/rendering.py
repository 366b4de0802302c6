"""How a record looks in the terminal: text like kubectl/stern, wide columns, or JSON lines.

Colour (level on the message, a stable colour per pod on the prefix) is only for a terminal:
piped output stays plain so `grep` and files see exactly the messages. NO_COLOR wins over `auto`.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Mapping
from typing import Any, TextIO

import orjson

from tailrace.logs_client import options

Record = Mapping[str, Any]

_RESET = "\x1b[0m"
_LEVEL_STYLES = {
    "TRACE": "\x1b[2m",
    "DEBUG": "\x1b[2m",
    "WARN": "\x1b[33m",
    "ERROR": "\x1b[31m",
    "FATAL": "\x1b[1;31m",
}
# Bright, readable on dark and light backgrounds; red and yellow are left to the levels.
_POD_STYLES = ("\x1b[36m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[96m", "\x1b[92m", "\x1b[95m")
_TRUNCATED_STYLE = "\x1b[7m"
TRUNCATED_MARK = "[truncated]"


# C0 controls (but tab) and DEL, and the C1 range: a log line must not drive the user's terminal.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def defang(text: str) -> str:
    """`text` with control characters shown as escapes, for printing on a terminal."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def wants_colour(
    choice: options.Colour, stream: TextIO, env: Mapping[str, str] | None = None
) -> bool:
    env = os.environ if env is None else env
    if choice != "auto":
        return choice == "always"
    if "NO_COLOR" in env and env["NO_COLOR"] != "":
        return False
    if env.get("TERM") == "dumb":
        return False
    return is_terminal(stream)


def pod_style(pod: str) -> str:
    return _POD_STYLES[zlib.crc32(pod.encode()) % len(_POD_STYLES)]


class Renderer:
    def __init__(
        self,
        output: options.Output,
        out: TextIO,
        *,
        colour: bool,
        timestamps: bool,
        prefix: bool,
        terminal: bool = False,
    ) -> None:
        self._output = output
        self._out = out
        self._colour = colour
        self._timestamps = timestamps
        self._prefix = prefix
        # Piped output is the exact message; on a terminal, escape sequences a workload logged
        # (by accident or on purpose) are shown, not obeyed.
        self._terminal = terminal

    def _paint(self, style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if self._colour and style else text

    def line(self, record: Record) -> str:
        if self._output == "json":
            return orjson.dumps(dict(record)).decode()
        message = str(record.get("message", ""))
        if self._terminal:
            message = defang(message)
        level = str(record.get("level") or "")
        pod = str(record.get("pod") or "")
        container = str(record.get("container") or "")
        truncated = bool(record.get("truncated"))
        level_style = _LEVEL_STYLES.get(level, "")
        # The server's own pod events (stream "system") belong to the pod, not to a container.
        source = f"{pod}/{container}" if container else pod
        if self._output == "wide":
            execution = record.get("executionId") or "-"
            parts = [
                str(record.get("time", "")),
                self._paint(level_style, f"{level:<5}"),
                self._paint(pod_style(pod), source),
                str(execution),
                self._paint(level_style, message),
            ]
            if truncated:
                parts.append(self._paint(_TRUNCATED_STYLE, TRUNCATED_MARK))
            return " ".join(parts)
        parts = []
        if self._timestamps:
            parts.append(str(record.get("time", "")))
        if self._prefix:
            parts.append(self._paint(pod_style(pod), f"{pod} {container}" if container else pod))
        parts.append(self._paint(level_style, message))
        if truncated and self._colour:
            # Plain text stays exactly the message, as kubectl prints it; a terminal gets a hint.
            parts.append(self._paint(_TRUNCATED_STYLE, TRUNCATED_MARK))
        return " ".join(parts)

    def write(self, record: Record) -> None:
        self._out.write(self.line(record) + "\n")

    def flush(self) -> None:
        self._out.flush()
