"""How records, times and durations look on the wire of the native API.

Times are RFC3339 with all nine fractional digits (a record's ns timestamp survives a round trip);
durations follow Go/Loki (`5m`, `2h30m`, `7d`). A record's JSON shape is the one DESIGN.md fixes.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable
from typing import Any, Literal

import orjson

from tailrace.server.storage import base

Format = Literal["json", "ndjson", "text", "sse"]
MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "text": "text/plain; charset=utf-8",
    "sse": "text/event-stream",
}
_ACCEPTED: dict[str, Format] = {
    "application/json": "json",
    "application/x-ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "application/ndjson": "ndjson",
    "text/plain": "text",
    "text/event-stream": "sse",
}

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_DURATION_PART = re.compile(r"(\d+)(ns|us|µs|ms|s|m|h|d|w)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
    "w": 7 * 86_400_000_000_000,
}
MAX_DURATION_NS = 3650 * _UNIT_NS["d"]


def parse_time(text: str) -> int:
    """RFC3339 (any offset, up to ns precision) or integer ns since the epoch, to ns since epoch."""
    if text.isdigit() and len(text) <= 19:
        return int(text)
    match = _RFC3339.match(text)
    if match is None:
        raise ValueError("expected RFC3339, e.g. 2024-05-01T12:00:00.123456789Z")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError("date or time out of range")
    if year < 1970:
        raise ValueError("times before 1970 are not supported")
    fraction = (match.group(7) or "").ljust(9, "0")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if match.group(9):
        offset = int(match.group(10)) * 3600 + int(match.group(11)) * 60
        seconds -= offset if match.group(9) == "+" else -offset
    return seconds * 1_000_000_000 + int(fraction or "0")


def format_time(ts_ns: int) -> str:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_duration(text: str) -> int:
    """A positive Go/Loki duration (`90s`, `1h30m`, `7d`) in ns."""
    pos = 0
    total = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        total += int(match.group(1)) * _UNIT_NS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError("expected a duration such as 30s, 5m, 2h or 7d")
    if total <= 0:
        raise ValueError("duration must be positive")
    if total > MAX_DURATION_NS:
        raise ValueError("duration must be at most 3650d")
    return total


def negotiate(accept: str | None, default: Format = "text") -> Format | None:
    """The format an Accept header asks for; `default` for */* or none; None if nothing fits."""
    if not accept:
        return default
    best: tuple[float, int, Format] | None = None
    for position, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        quality = 1.0
        for param in parts[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if quality <= 0:
            continue
        fmt = _ACCEPTED.get(media)
        if fmt is None and media in ("*/*", "text/*", "application/*"):
            fmt = default if media == "*/*" else ("text" if media == "text/*" else "json")
        if fmt is None:
            continue
        rank = (quality, -position, fmt)
        if best is None or rank[:2] > best[:2]:
            best = rank
    return None if best is None else best[2]


def record_json(record: base.StoredRecord) -> dict[str, Any]:
    """A record in the native API's JSON shape (DESIGN.md, 'HTTP API')."""
    return {
        "id": str(record.id),
        "time": format_time(record.ts_ns),
        "namespace": record.namespace,
        "pod": record.pod,
        "container": record.container,
        "stream": record.stream,
        "level": record.level,
        "message": record.message,
        "executionId": record.execution_id or None,
        "workload": {"kind": record.kind, "name": record.workload} if record.workload else None,
        "truncated": record.truncated,
        "attrs": record.attrs,
    }


def json_page(records: Iterable[base.StoredRecord], next_cursor: str | None) -> bytes:
    return orjson.dumps({"records": [record_json(r) for r in records], "nextCursor": next_cursor})


def ndjson_line(record: base.StoredRecord) -> bytes:
    return orjson.dumps(record_json(record)) + b"\n"


def text_line(record: base.StoredRecord) -> bytes:
    # kubectl prints the message alone; embedded newlines would break line framing for readers.
    return record.message.replace("\n", "\\n").encode() + b"\n"


def sse_event(data: bytes | str, event: str | None = None, event_id: str | None = None) -> bytes:
    """One Server-Sent Events frame; multi-line data is split over several `data:` fields."""
    text = data.decode() if isinstance(data, bytes) else data
    out = []
    if event_id is not None:
        out.append(f"id: {event_id}\n")
    if event is not None:
        out.append(f"event: {event}\n")
    for line in text.splitlines() or [""]:
        out.append(f"data: {line}\n")
    out.append("\n")
    return "".join(out).encode()


def sse_record(record: base.StoredRecord) -> bytes:
    return sse_event(orjson.dumps(record_json(record)), event_id=str(record.id))


def encode_record(fmt: Format, record: base.StoredRecord) -> bytes:
    if fmt == "sse":
        return sse_record(record)
    if fmt == "text":
        return text_line(record)
    return ndjson_line(record)
