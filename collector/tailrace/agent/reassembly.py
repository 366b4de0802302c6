"""Reassembly of partial (`P`) records into lines, with the line-limit policy applied on the way.

A pure state machine, fed parsed records and the time, in the manner of Vector's
`partial_events_merger`. Per stream of one file it keeps at most one pending line, and of that line
never more than `max_line_bytes` (+1 byte to find a UTF-8 boundary): truncate keeps the head and
skips the rest, drop keeps nothing once over the limit, split emits each full piece as soon as it
is complete. So a 100 MiB line costs no more memory than a 16 KiB one.

Offsets: every output carries the file offset just past its last byte, and outputs leave the merger
in increasing offset order (the server drops a record whose end offset is not above its high-water
mark). A complete line of one stream is therefore held back while a partial of the other stream,
which started earlier, is still pending; `resume_offset` is where a restarted reader must start
so that nothing pending is lost.
"""

from __future__ import annotations

import bisect
from typing import NamedTuple

from tailrace import conventions, records
from tailrace.agent import linelimit


class Line(NamedTuple):
    """One output: a line, a piece of a split line, or a dropped line (`message` is None)."""

    end_offset: int
    ts_ns: int
    stream: int
    message: bytes | None
    flags: int


class _Pending:
    __slots__ = (
        "buffer",
        "chunk_offset",
        "floor",
        "last_end",
        "over",
        "pieces",
        "seen",
        "start",
        "touched",
        "ts",
    )

    def __init__(self, start: int, ts: int) -> None:
        self.start = start  # offset of the first physical record of the line
        self.ts = ts
        self.buffer = bytearray()
        self.seen = 0  # bytes of content seen, kept or not
        self.over = False  # more than max_line_bytes seen
        self.pieces = 0  # split pieces already emitted
        self.last_end = start  # end offset of the last physical record appended
        self.chunk_offset = 0  # file offset of buffer[0] relative: see Merger._split
        self.floor = start  # split pieces of the newest record must end above this
        self.touched = 0.0


class Merger:
    """Partial-record reassembly and line-limit policy for the records of one file."""

    def __init__(
        self,
        max_line_bytes: int = conventions.DEFAULT_MAX_LINE_BYTES,
        on_overflow: conventions.OverflowPolicy = "truncate",
        timeout_s: float = 5.0,
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.on_overflow = on_overflow
        self.timeout_s = timeout_s
        self.pending: dict[int, _Pending] = {}
        self._held: list[Line] = []
        self.counts: dict[linelimit.Outcome, int] = dict.fromkeys(linelimit.OUTCOMES, 0)
        self.partial_flushes = 0

    @property
    def busy(self) -> bool:
        """True while a partial is pending or output is held: records must go through `feed`."""
        return bool(self.pending) or bool(self._held)

    def resume_offset(self, consumed: int) -> int:
        """Where to start reading again to lose nothing, given all records before `consumed`."""
        if self.pending:
            return min(p.start for p in self.pending.values())
        return consumed

    def feed(
        self,
        ts: int,
        stream: int,
        partial: bool,
        content: bytes,
        start: int,
        content_start: int,
        end: int,
        now: float,
    ) -> list[Line]:
        """One physical record spanning [start, end) of the file, its content at `content_start`."""
        out: list[Line] = []
        pending = self.pending.get(stream)
        if pending is None:
            if not partial:
                self._complete_single(ts, stream, content, start, content_start, end, out)
                return self._release(out)
            pending = self.pending[stream] = _Pending(start, ts)
        self._append(pending, stream, content, content_start, end, out)
        pending.touched = now
        if not partial:
            del self.pending[stream]
            self._finish(pending, stream, end, 0, out)
        return self._release(out)

    def expire(self, now: float) -> list[Line]:
        """Flush partials that got no continuation for `timeout_s` (measured from the last one)."""
        out: list[Line] = []
        for stream, pending in list(self.pending.items()):
            if now - pending.touched >= self.timeout_s:
                del self.pending[stream]
                self._flush(pending, stream, out)
        return self._release(out)

    def flush(self) -> list[Line]:
        """Flush every pending partial: the file was rotated away or its container exited."""
        out: list[Line] = []
        for stream, pending in sorted(self.pending.items(), key=lambda item: item[1].last_end):
            del self.pending[stream]
            self._flush(pending, stream, out)
        return self._release(out)

    # The policy.

    def _complete_single(
        self,
        ts: int,
        stream: int,
        content: bytes,
        start: int,
        content_start: int,
        end: int,
        out: list[Line],
    ) -> None:
        if len(content) <= self.max_line_bytes:
            self.counts["kept"] += 1
            out.append(Line(end, ts, stream, linelimit.repair_utf8(content), 0))
            return
        pending = _Pending(start, ts)
        self._append(pending, stream, content, content_start, end, out)
        self._finish(pending, stream, end, 0, out)

    def _append(
        self,
        pending: _Pending,
        stream: int,
        content: bytes,
        content_start: int,
        end: int,
        out: list[Line],
    ) -> None:
        limit = self.max_line_bytes
        pending.seen += len(content)
        pending.floor = pending.last_end
        pending.last_end = end
        policy = self.on_overflow
        if policy == "split":
            # chunk_offset: file offset that buffer position 0 maps to for the newest content.
            pending.chunk_offset = content_start - len(pending.buffer)
            pending.buffer += content
            while len(pending.buffer) > limit:
                self._split(pending, stream, out)
            return
        if pending.over:
            return
        if pending.seen > limit:
            pending.over = True
            if policy == "drop":
                pending.buffer = bytearray()
                return
            pending.buffer += content[: limit + 1 - len(pending.buffer)]
            return
        pending.buffer += content

    def _split(self, pending: _Pending, stream: int, out: list[Line]) -> None:
        buffer = pending.buffer
        cut = linelimit.cut_point(buffer, self.max_line_bytes) or self.max_line_bytes
        piece_end = max(pending.chunk_offset + cut, pending.floor + 1)
        pending.floor = piece_end
        message = linelimit.repair_utf8(bytes(buffer[:cut]))
        del buffer[:cut]
        pending.chunk_offset += cut
        pending.pieces += 1
        out.append(Line(piece_end, pending.ts, stream, message, records.FLAG_SPLIT))

    def _finish(
        self, pending: _Pending, stream: int, end: int, extra: int, out: list[Line]
    ) -> None:
        flags = extra
        if pending.pieces:
            self.counts["split"] += 1
            flags |= records.FLAG_SPLIT
            if pending.buffer or not extra:
                out.append(
                    Line(
                        end, pending.ts, stream, linelimit.repair_utf8(bytes(pending.buffer)), flags
                    )
                )
            return
        if pending.over and self.on_overflow == "drop":
            self.counts["dropped"] += 1
            out.append(Line(end, pending.ts, stream, None, flags))
            return
        buffer = pending.buffer
        if pending.over:
            self.counts["truncated"] += 1
            flags |= records.FLAG_TRUNCATED
            buffer = buffer[: linelimit.cut_point(buffer, self.max_line_bytes)]
        else:
            self.counts["kept"] += 1
        out.append(Line(end, pending.ts, stream, linelimit.repair_utf8(bytes(buffer)), flags))

    def _flush(self, pending: _Pending, stream: int, out: list[Line]) -> None:
        self.partial_flushes += 1
        self._finish(pending, stream, pending.last_end, records.FLAG_PARTIAL_FLUSH, out)

    # Ordering.

    def _release(self, out: list[Line]) -> list[Line]:
        """Outputs safe to emit now, in offset order; the rest stays held."""
        held = self._held
        if out:
            for line in out:
                if held and line.end_offset < held[-1].end_offset:
                    bisect.insort(held, line, key=_end_offset)
                else:
                    held.append(line)
        if not held:
            return []
        if not self.pending:
            self._held = []
            return held
        # A pending line's next output ends at or after its last record's end.
        threshold = min(p.last_end for p in self.pending.values())
        if held[-1].end_offset <= threshold:
            self._held = []
            return held
        cut = bisect.bisect_right(held, threshold, key=_end_offset)
        ready = held[:cut]
        del held[:cut]
        return ready


def _end_offset(line: Line) -> int:
    return line.end_offset
