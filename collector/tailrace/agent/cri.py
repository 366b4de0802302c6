"""The CRI log format written by containerd and CRI-O.

`<RFC3339Nano> <stdout|stderr> <tags> <content>`; tags is `F` (full) or `P` (partial: the runtime
split a line longer than its buffer, 16 KiB in containerd, and the next record of the same stream
continues it). Tags may carry more fields after a colon (`F:x`); only the first letter matters.
"""

from __future__ import annotations

from tailrace.agent import timestamps

NAME = "cri"
_STREAMS = {b"stdout": 111, b"stderr": 101}  # records.STREAM_CODES, inlined for the hot path


def parse(line: bytes) -> tuple[int, int, bool, bytes] | None:
    """(ts_ns, stream code, is partial, content) or None when the line is not CRI."""
    first = line.find(b" ")
    if first < 20:
        return None
    second = line.find(b" ", first + 1)
    if second < 0:
        return None
    stream = _STREAMS.get(line[first + 1 : second])
    if stream is None:
        return None
    tag = line[second + 1 : second + 2]
    if tag == b"F":
        partial = False
    elif tag == b"P":
        partial = True
    else:
        return None
    third = second + 2
    if third < len(line) and line[third] not in (32, 58):  # ' ' or ':' after the tag letter
        return None
    try:
        ts = timestamps.parse_ns(line[:first])
    except timestamps.BadTimestamp:
        return None
    space = line.find(b" ", third)
    content = b"" if space < 0 else line[space + 1 :]
    return ts, stream, partial, content


def header_length(line: bytes) -> int:
    """Where the content of a parsed CRI line starts (for offsets of split pieces)."""
    second = line.find(b" ", line.find(b" ") + 1)
    space = line.find(b" ", second + 2)
    return len(line) if space < 0 else space + 1
