"""RFC 3339 timestamps of container log lines to nanoseconds since the epoch, cheaply.

Every CRI line starts with one. Consecutive lines share the same second almost always, so the
date-and-time head is converted once and cached; per line only the nanosecond fraction is parsed.
"""

from __future__ import annotations

import calendar
import re

_HEAD = re.compile(rb"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d")
_TAIL = re.compile(rb"(?:\.(\d{1,9})\d*)?(?:([Zz])|([+-])(\d\d):(\d\d))")
_CACHE_LIMIT = 4096
_head_seconds: dict[bytes, int] = {}


class BadTimestamp(ValueError):
    """The bytes are not an RFC 3339 timestamp."""


def _seconds(head: bytes) -> int:
    seconds = _head_seconds.get(head)
    if seconds is not None:
        return seconds
    if _HEAD.fullmatch(head) is None:
        raise BadTimestamp(f"not an RFC 3339 date-time: {head[:40]!r}")
    year, month, day = int(head[0:4]), int(head[5:7]), int(head[8:10])
    hour, minute, second = int(head[11:13]), int(head[14:16]), int(head[17:19])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise BadTimestamp(f"date-time out of range: {head!r}")
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    if len(_head_seconds) >= _CACHE_LIMIT:
        _head_seconds.clear()
    _head_seconds[head] = seconds
    return seconds


def parse_ns(ts: bytes) -> int:
    """`2016-10-06T00:17:09.669794202Z` (any fraction length, Z or +hh:mm) to epoch nanoseconds."""
    if len(ts) == 30 and ts[29] == 90 and ts[19] == 46:  # the common "....nnnnnnnnnZ" form
        fraction = ts[20:29]
        if fraction.isdigit():
            return _seconds(ts[:19]) * 1_000_000_000 + int(fraction)
    seconds = _seconds(ts[:19])
    tail = _TAIL.fullmatch(ts, 19)
    if tail is None:
        raise BadTimestamp(f"bad fraction or zone in {ts[:40]!r}")
    digits, _zulu, sign, hours, minutes = tail.groups()
    nanos = int(digits.ljust(9, b"0")) if digits else 0
    if sign:
        offset = int(hours) * 3600 + int(minutes) * 60
        seconds = seconds - offset if sign == b"+" else seconds + offset
    return seconds * 1_000_000_000 + nanos


_prefix_ns: dict[bytes, int] = {}


def prefix_ns(prefix: bytes) -> int | None:
    """Nanoseconds of a `YYYY-MM-DDTHH:MM:SS.` prefix (cached), or None when it is not one."""
    value = _prefix_ns.get(prefix)
    if value is not None:
        return value
    if len(prefix) != 20 or prefix[19] != 46:
        return None
    try:
        value = _seconds(prefix[:19]) * 1_000_000_000
    except BadTimestamp:
        return None
    if len(_prefix_ns) >= _CACHE_LIMIT:
        _prefix_ns.clear()
    _prefix_ns[prefix] = value
    return value
