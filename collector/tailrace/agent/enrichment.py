"""Level, execution id and HTTP fields of a log line, found by byte search rather than parsing.

JSON lines (the content starts with `{`) are searched for the configured field names; a full JSON
parse happens only for a value that contains an escape. Plain lines get the level of a level word
that leads the line (`ERROR ...`, `[warn] ...`, `info: ...`), else the stream's default: ERROR for
stderr, INFO for stdout. The message itself is forwarded unchanged, so nothing of the line is lost.
"""

from __future__ import annotations

from typing import Final

import orjson

from tailrace import conventions

TRACE, DEBUG, INFO, WARN, ERROR, FATAL = range(len(conventions.LEVELS))
STDOUT, STDERR = 111, 101
DEFAULT_LEVELS: Final = {STDOUT: INFO, STDERR: ERROR}

_WORDS = {
    "trace": TRACE,
    "debug": DEBUG,
    "dbg": DEBUG,
    "info": INFO,
    "information": INFO,
    "notice": INFO,
    "warn": WARN,
    "warning": WARN,
    "error": ERROR,
    "err": ERROR,
    "fatal": FATAL,
    "critical": FATAL,
    "crit": FATAL,
    "panic": FATAL,
    "emerg": FATAL,
}
LEVEL_WORDS: Final[dict[bytes, int]] = {
    variant.encode(): code
    for word, code in _WORDS.items()
    for variant in (word, word.upper(), word.capitalize())
}
_WORD_ENDS = frozenset(b" \t:]|,;=")
_SPACE = frozenset(b" \t")
HTTP_FIELDS: Final = ("method", "url", "status")


def leading_level(content: bytes) -> int:
    """The level of a level word at the start of a plain line, or -1."""
    head = content[:13]
    if head[:1] == b"[":
        head = head[1:]
    end = 0
    for end, byte in enumerate(head):  # noqa: B007 - the index is the result
        if byte in _WORD_ENDS:
            break
    else:
        end = len(head)
    return LEVEL_WORDS.get(head[:end], -1)


def _raw_value(content: bytes, key: bytes) -> bytes | None:
    """The raw JSON value after `key` (a quoted name), quotes included for strings."""
    at = content.find(key)
    while at >= 0:
        i = at + len(key)
        n = len(content)
        while i < n and content[i] in _SPACE:
            i += 1
        if i < n and content[i] == 58:  # ':'
            i += 1
            while i < n and content[i] in _SPACE:
                i += 1
            if i >= n:
                return None
            if content[i] == 34:  # a string: find the closing quote, skipping escaped ones
                j = content.find(b'"', i + 1)
                while j > 0 and content[j - 1] == 92:
                    backslashes = 0
                    k = j - 1
                    while content[k] == 92:
                        backslashes += 1
                        k -= 1
                    if backslashes % 2 == 0:
                        break
                    j = content.find(b'"', j + 1)
                return content[i : j + 1] if j > 0 else None
            j = i
            while j < n and content[j] not in b",}] \t":
                j += 1
            return content[i:j]
        at = content.find(key, at + 1)
    return None


def _string(raw: bytes) -> str | None:
    if raw[:1] != b'"':
        return None
    inner = raw[1:-1]
    if b"\\" not in inner:
        return inner.decode("utf-8", "replace")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, str) else None


class Enricher:
    """Field extraction for one workload's settings."""

    __slots__ = ("_execution_key", "_http_keys", "_level_key", "execution_id")

    def __init__(
        self,
        level_field: str = "level",
        execution_field: str = "executionId",
        execution_id: str = "",
    ) -> None:
        self._level_key = f'"{level_field}"'.encode()
        self._execution_key = f'"{execution_field}"'.encode()
        self._http_keys = tuple((name, f'"{name}"'.encode()) for name in HTTP_FIELDS)
        self.execution_id = execution_id  # from the pod label, when the line names none

    def json_fields(self, content: bytes, default_level: int) -> tuple[int, str, bytes]:
        """(level code, execution id, attrs JSON or b"") of a JSON object line."""
        level = default_level
        raw = _raw_value(content, self._level_key)
        if raw is not None:
            word = raw[1:-1] if raw[:1] == b'"' else raw
            level = LEVEL_WORDS.get(word, -1)
            if level < 0:
                level = LEVEL_WORDS.get(word.lower(), default_level)
        execution_id = self.execution_id
        raw = _raw_value(content, self._execution_key)
        if raw is not None:
            execution_id = _string(raw) or execution_id
        attrs: dict[str, object] = {}
        for name, key in self._http_keys:
            raw = _raw_value(content, key)
            if raw is None:
                continue
            value = _string(raw)
            if value is not None:
                attrs[name] = value
            elif raw.isdigit():
                attrs[name] = int(raw)
        return level, execution_id, orjson.dumps(attrs) if attrs else b""
