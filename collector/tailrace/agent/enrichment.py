"""Level, execution id and HTTP fields of a log line, found by byte search rather than parsing.

JSON lines (the content starts with `{`) are searched for the configured field names; a full JSON
parse happens only for a value that contains an escape. Plain lines get the level of a level word
that leads the line (`ERROR ...`, `[warn] ...`, `info: ...`), else the stream's default: ERROR for
stderr, INFO for stdout. The message itself is forwarded unchanged, so nothing of the line is lost.
"""

from __future__ import annotations

from collections.abc import Callable
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
# A level word leads a plain line as `ERROR ...`, `error: ...`, `[error] ...` or `ERROR| ...`.
LEADING_WORDS: Final[dict[bytes, int]] = {
    form: code
    for word, code in LEVEL_WORDS.items()
    for form in (
        word,
        word + b":",
        b"[" + word + b"]",
        b"[" + word + b"]:",
        word + b"|",
        word + b",",
    )
}
LEADING_MAX: Final = max(len(form) for form in LEADING_WORDS)
_SPACE = frozenset(b" \t")
HTTP_FIELDS: Final = ("method", "url", "status")


def leading_level(content: bytes) -> int:
    """The level of a level word at the start of a plain line, or -1."""
    space = content.find(b" ", 0, LEADING_MAX + 1)
    if space >= 0:
        return LEADING_WORDS.get(content[:space], -1)
    return LEADING_WORDS.get(content, -1) if len(content) <= LEADING_MAX else -1


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
    """Field extraction for one workload's settings.

    The common spelling (`"name":"value"` or `"name":123`, no spaces, no escapes) is found with one
    `find` for the key and one for the value's end; anything else falls back to `_raw_value`.
    `json_fields` is a closure over the workload's byte patterns: at a few million lines per
    CPU-minute, attribute lookups on `self` and on key objects are a measurable share of a line.
    """

    __slots__ = ("execution_id", "json_fields")

    def __init__(
        self,
        level_field: str = "level",
        execution_field: str = "executionId",
        execution_id: str = "",
    ) -> None:
        self.execution_id = execution_id  # from the pod label, when the line names none
        self.json_fields: Callable[[bytes, int], tuple[int, str, bytes]] = _json_fields(
            _Key(level_field), _Key(execution_field), execution_id
        )


def _json_fields(
    level_key: _Key, execution_key: _Key, label: str
) -> Callable[[bytes, int], tuple[int, str, bytes]]:
    level_prefix, level_skip, level_quoted = (
        level_key.string_prefix,
        level_key.string_skip,
        level_key.quoted,
    )
    exec_prefix, exec_skip, exec_quoted = (
        execution_key.string_prefix,
        execution_key.string_skip,
        execution_key.quoted,
    )
    http = tuple((key.colon, key.colon_skip, key.quoted) for key in map(_Key, HTTP_FIELDS))
    words = LEVEL_WORDS

    def json_fields(content: bytes, default_level: int) -> tuple[int, str, bytes]:
        """(level code, execution id, attrs JSON or b"") of a JSON object line."""
        at = content.find(level_prefix)
        if at >= 0:
            at += level_skip
            word = content[at : content.find(b'"', at)]
            level = words.get(word, -1)
            if level < 0:
                level = words.get(word.lower(), default_level)
        elif level_quoted in content:
            level = _spaced_level(content, level_quoted, default_level)
        else:
            level = default_level
        at = content.find(exec_prefix)
        if at >= 0:
            at += exec_skip
            end = content.find(b'"', at)
            raw = content[at:end]
            if end > 0 and b"\\" not in raw:
                execution_id = raw.decode("utf-8", "replace")
            else:  # escapes (\" \u001f ...): let a JSON parser decode them
                execution_id = _string(_raw_value(content, exec_quoted) or b"") or label
        elif exec_quoted in content:
            execution_id = _string(_raw_value(content, exec_quoted) or b"") or label
        else:
            execution_id = label
        parts: list[bytes] = []
        for colon, skip, quoted in http:
            at = content.find(colon)
            if at >= 0:
                # The common cases inline: a plain string or an unsigned integer before a comma.
                start = at + skip
                first = content[start : start + 1]
                if first == b'"':
                    end = content.find(b'"', start + 1)
                    if end > 0 and content[end - 1] != 92:
                        parts.append(content[at : end + 1])
                        continue
                elif first.isdigit():
                    end = content.find(b",", start)
                    if end > 0 and content[start:end].isdigit():
                        parts.append(content[at:end])
                        continue
                part = _http_value(content, colon, skip, quoted, at)
            elif quoted in content:  # spaced out: `"url" : "..."`
                value = _raw_value(content, quoted)
                ok = value is not None and (value[:1] == b'"' or value.isdigit())
                part = colon + value if ok and value is not None else None
            else:
                continue
            if part is not None:
                parts.append(part)
        return level, execution_id, b"{" + b",".join(parts) + b"}" if parts else b""

    return json_fields


def _spaced_level(content: bytes, quoted: bytes, default_level: int) -> int:
    """The level of `"level" : value` or `"level":WARN`: any spelling but the common one."""
    raw = _raw_value(content, quoted)
    if raw is None:
        return default_level
    word = raw[1:-1] if raw[:1] == b'"' else raw
    return LEVEL_WORDS.get(word.lower(), default_level)


def _http_value(content: bytes, colon: bytes, skip: int, quoted: bytes, at: int) -> bytes | None:
    """`"name":value` as it is in the line when value is a plain string or number."""
    start = at + skip
    if start >= len(content):
        return None
    first = content[start]
    if first == 34:  # '"'
        end = content.find(b'"', start + 1)
        if end > 0 and content[end - 1] != 92:
            return content[at : end + 1]
    elif 48 <= first <= 57:
        end = content.find(b",", start)
        if end < 0:
            end = content.find(b"}", start)
        if end > start and content[start:end].isdigit():
            return content[at:end]
    raw = _raw_value(content, quoted)
    if raw is not None and (raw[:1] == b'"' or raw.isdigit()):
        return colon + raw
    return None


class _Key:
    """The byte patterns of one JSON field name."""

    __slots__ = ("colon", "colon_skip", "quoted", "string_prefix", "string_skip")

    def __init__(self, name: str) -> None:
        self.quoted = f'"{name}"'.encode()
        self.colon = self.quoted + b":"
        self.colon_skip = len(self.colon)
        self.string_prefix = self.colon + b'"'
        self.string_skip = len(self.string_prefix)
