"""The byte search for JSON field names as it was when it served every JSON line: the reference.

Lines that start with `{` but do not parse still get their fields this way; test_enrichment_
properties.py holds `enrichment.Enricher` to giving exactly what this gives for them, so the agent's
copy can change shape freely.
"""

from __future__ import annotations

import orjson

from tailrace.agent.enrichment import HTTP_FIELDS, LEVEL_WORDS

_SPACE = frozenset(b" \t")


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
    """

    __slots__ = ("_execution", "_http", "_level", "execution_id")

    def __init__(
        self,
        level_field: str = "level",
        execution_field: str = "executionId",
        execution_id: str = "",
    ) -> None:
        self._level = _Key(level_field)
        self._execution = _Key(execution_field)
        self._http = tuple(_Key(name) for name in HTTP_FIELDS)
        self.execution_id = execution_id  # from the pod label, when the line names none

    def json_fields(self, content: bytes, default_level: int) -> tuple[int, str, bytes]:
        """(level code, execution id, attrs JSON or b"") of a JSON object line."""
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
