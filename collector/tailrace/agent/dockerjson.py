"""Docker's json-file log driver: one JSON object per line.

`{"log":"hello\\n","stream":"stdout","time":"2019-01-01T00:00:00.000000001Z"}`. Docker splits lines
longer than 16 KiB too: a `log` value that does not end in a newline is a partial record.
"""

from __future__ import annotations

import orjson

from tailrace.agent import timestamps

NAME = "docker"
_STREAMS = {"stdout": 111, "stderr": 101}


def parse(line: bytes) -> tuple[int, int, bool, bytes] | None:
    """(ts_ns, stream code, is partial, content) or None when the line is not docker json-file."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict):
        return None
    log, stream_name, time = value.get("log"), value.get("stream"), value.get("time")
    if not isinstance(log, str) or not isinstance(time, str):
        return None
    stream = _STREAMS.get(stream_name) if isinstance(stream_name, str) else None
    if stream is None:
        return None
    try:
        ts = timestamps.parse_ns(time.encode())
    except timestamps.BadTimestamp:
        return None
    content = log.encode()
    if content.endswith(b"\n"):
        return ts, stream, False, content[:-1]
    return ts, stream, True, content


def header_length(line: bytes) -> int:
    # Docker content is JSON-escaped, so byte positions inside it do not map to file offsets.
    return 0
