"""Level, execution id and HTTP fields of a log line.

JSON lines (the content starts with `{`) are parsed, and the object's fields of the configured
names read; a line that starts with `{` but does not parse (a JSON line cut by the line limit,
text in braces) is searched byte by byte for the same names instead. Plain lines get the level of
a level word that leads the line (`ERROR ...`, `[warn] ...`, `info: ...`), else the stream's
default: ERROR for stderr, INFO for stdout. The message itself is forwarded unchanged, so nothing
of the line is lost. See docs/decisions/0011-agent-bulk-reading.md.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import repeat
from typing import Final, cast

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
STRING_LEVELS: Final[dict[str, int]] = {word.decode(): code for word, code in LEVEL_WORDS.items()}
_loads, _dumps = orjson.loads, orjson.dumps


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


def _is_http_value(value: object) -> bool:
    # (bool is an int subclass: `true` is no status.)
    return isinstance(value, str) or (type(value) is int and value >= 0)


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


def _attrs(method: object, url: object, status: object) -> bytes:
    """The attrs JSON of a line's HTTP fields: those of a valid type, b"" when none."""
    if method is None and url is None and status is None:  # most lines but access logs
        return b""
    attrs = {}
    if _is_http_value(method):
        attrs["method"] = method
    if _is_http_value(url):
        attrs["url"] = url
    if _is_http_value(status):
        attrs["status"] = status
    # A copy (`%b` builds a new object), not orjson's own bytes: those sit in a larger block
    # that realloc shrank in place, and thousands of them held until the batch is sent pin
    # tens of MB of heap that nothing else fits into.
    return _COPY % _dumps(attrs) if attrs else b""


_COPY: Final = b"%b"
# STRING_LEVELS.get over any parsed value (hashable or not: a list raises TypeError).
_LEVEL_OR: Final = cast(Callable[[object, int], int], STRING_LEVELS.get)
_STR: Final = {str}
_INT: Final = {int}
_NONE: Final = {type(None)}
# Printable ASCII but `"` and `\\`: the bytes JSON writes inside a string as they are (deleting
# them and finding none left is one C pass; `isprintable` was a call per character).
_WRITTEN_AS_IS: Final = bytes(byte for byte in range(0x20, 0x7F) if byte not in b'"\\')
# An access log's attrs written out directly: what orjson.dumps gives for these three fields when
# both strings are printable ASCII with nothing to escape.
_ACCESS: Final = '{"method":"%s","url":"%s","status":%d}'


def _plain_strings(values: list[str]) -> bool:
    """Every string is printable ASCII without `"` or `\\`: JSON writes it as it is."""
    text = "".join(values)
    return text.isascii() and not text.encode().translate(None, _WRITTEN_AS_IS)


class Enricher:
    """Field extraction for one workload's settings."""

    __slots__ = (
        "_execution",
        "_execution_name",
        "_http",
        "_level",
        "_level_name",
        "execution_id",
    )

    def __init__(
        self,
        level_field: str = "level",
        execution_field: str = "executionId",
        execution_id: str = "",
    ) -> None:
        self._level_name = level_field
        self._execution_name = execution_field
        self._level = _Key(level_field)
        self._execution = _Key(execution_field)
        self._http = tuple(_Key(name) for name in HTTP_FIELDS)
        self.execution_id = execution_id  # from the pod label, when the line names none

    def json_fields(self, content: bytes, default_level: int) -> tuple[int, str, bytes]:
        """(level code, execution id, attrs JSON or b"") of a line that starts with `{`.

        A JSON object's own (top-level) fields count: the level a string naming a level in any
        case, the execution id a string, each HTTP field a string or a non-negative integer.
        orjson builds the whole object in C for less than three byte searches cost in Python.
        """
        try:
            document = _loads(content)
        except orjson.JSONDecodeError:
            return self.search_fields(content, default_level)
        if not isinstance(document, dict):
            return self.search_fields(content, default_level)
        return self._document_fields(document, default_level)

    def json_fields_many(
        self, contents: list[bytes], defaults: bytes
    ) -> tuple[list[int], list[str], list[bytes]] | None:
        """`json_fields` of many lines that start with `{` (each with its default level), as
        three lists; None when one of them does not parse (then ask line by line).

        The lines are parsed with `map` (a line starting with `{` that parses is an object), and
        each field is read for all of them with `map` over C functions; only the odd values (a
        level word in another case, a missing execution id, HTTP fields of other types) take a
        Python step each. Most of the saving is the attrs of access logs, written out with one
        format instead of a dict and `orjson.dumps` each.
        """
        try:
            documents: list[dict[str, object]] = list(map(_loads, contents))
        except orjson.JSONDecodeError:
            return None
        get = dict.get
        values: list[object] = list(map(get, documents, repeat(self._level_name)))
        try:
            levels = list(map(_LEVEL_OR, values, repeat(-1)))
        except TypeError:  # an unhashable level (an array, an object): the general rule, each
            fields = list(map(self._document_fields, documents, defaults))
            return [f[0] for f in fields], [f[1] for f in fields], [f[2] for f in fields]
        if -1 in levels:
            for k in [k for k, level in enumerate(levels) if level < 0]:
                value = values[k]
                levels[k] = (
                    STRING_LEVELS.get(value.lower(), defaults[k])
                    if isinstance(value, str)
                    else defaults[k]
                )
        found: list[object] = list(map(get, documents, repeat(self._execution_name)))
        if set(map(type, found)) == _STR:
            ids = cast(list[str], found)
        else:
            label = self.execution_id
            ids = [value if isinstance(value, str) else label for value in found]
        methods: list[object] = list(map(get, documents, repeat("method")))
        urls: list[object] = list(map(get, documents, repeat("url")))
        statuses: list[object] = list(map(get, documents, repeat("status")))
        if (
            set(map(type, methods)) == _STR
            and set(map(type, urls)) == _STR
            and set(map(type, statuses)) == _INT
            and min(cast(list[int], statuses)) >= 0
        ):  # an access log: every line has all three, and they are all valid
            rows = zip(methods, urls, statuses, strict=True)
            if _plain_strings(cast(list[str], methods)) and _plain_strings(cast(list[str], urls)):
                attrs = list(map(str.encode, map(_ACCESS.__mod__, rows)))
            else:
                pairs = map(zip, repeat(HTTP_FIELDS), rows)
                attrs = list(map(_COPY.__mod__, map(_dumps, map(dict, pairs))))
        elif set(map(type, methods)) | set(map(type, urls)) | set(map(type, statuses)) == _NONE:
            attrs = [b""] * len(documents)
        else:
            attrs = list(map(_attrs, methods, urls, statuses))
        return levels, ids, attrs

    def _document_fields(
        self, document: dict[str, object], default_level: int
    ) -> tuple[int, str, bytes]:
        get = document.get
        value = get(self._level_name)
        if isinstance(value, str):
            level = STRING_LEVELS.get(value, -1)
            if level < 0:
                level = STRING_LEVELS.get(value.lower(), default_level)
        else:
            level = default_level
        value = get(self._execution_name)
        execution_id = value if isinstance(value, str) else self.execution_id
        return level, execution_id, _attrs(get("method"), get("url"), get("status"))

    def search_fields(self, content: bytes, default_level: int) -> tuple[int, str, bytes]:
        """`json_fields` of a line that is not JSON, by byte search for the names.

        The first `"name":value` anywhere in the line counts, whatever its depth: the best guess
        for the head of a JSON line cut by the line limit, which no parser reads.
        """
        level = default_level
        key = self._level
        at = content.find(key.string_prefix)
        if at >= 0:
            at += key.string_skip
            word = content[at : content.find(b'"', at)]
            level = LEVEL_WORDS.get(word, -1)
            if level < 0:
                level = LEVEL_WORDS.get(word.lower(), default_level)
        elif key.quoted in content:
            raw = _raw_value(content, key.quoted)
            if raw is not None:
                word = raw[1:-1] if raw[:1] == b'"' else raw
                level = LEVEL_WORDS.get(word.lower(), default_level)
        execution_id = self.execution_id
        key = self._execution
        at = content.find(key.string_prefix)
        if at >= 0:
            at += key.string_skip
            end = content.find(b'"', at)
            raw = content[at:end]
            if end > 0 and b"\\" not in raw:
                execution_id = raw.decode("utf-8", "replace")
            else:  # escapes (\" \u001f ...): let a JSON parser decode them
                execution_id = _string(_raw_value(content, key.quoted) or b"") or execution_id
        elif key.quoted in content:
            execution_id = _string(_raw_value(content, key.quoted) or b"") or execution_id
        parts: list[bytes] = []
        for key in self._http:
            at = content.find(key.colon)
            if at >= 0:
                # Inlined common cases of `_http_value`: a plain string or an unsigned integer.
                start = at + key.colon_skip
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
                raw = self._http_value(content, key, at)
            elif key.quoted in content:  # spaced out: `"url" : "..."`
                raw = _raw_value(content, key.quoted)
                raw = (
                    key.colon + raw
                    if raw is not None and (raw[:1] == b'"' or raw.isdigit())
                    else None
                )
            else:
                continue
            if raw is not None:
                parts.append(raw)
        return level, execution_id, b"{" + b",".join(parts) + b"}" if parts else b""

    @staticmethod
    def _http_value(content: bytes, key: _Key, at: int) -> bytes | None:
        """`"name":value` as it is in the line when value is a plain string or number."""
        start = at + key.colon_skip
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
        raw = _raw_value(content, key.quoted)
        if raw is not None and (raw[:1] == b'"' or raw.isdigit()):
            return key.colon + raw
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
