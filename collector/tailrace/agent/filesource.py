"""One log file incarnation being read: bytes to parsed records to batches.

This is the hot path. A read chunk is split into physical lines with one `bytes.split`. Runs of
complete CRI lines in the common shape (`...nnnnnnnnnZ stdout F `) go into the batch columns in
bulk (`bulk.Chunk`); anything else (partials, other formats, oversize or non-ASCII lines, parse
errors, and every line while a partial is pending) takes the general path, one line at a time
through the parser lookup and the merger.

Offsets: `consumed` is the end of the last physical line handed on, `resume_offset` where a reader
must restart to lose nothing (the start of a pending partial line, if any). A physical line with no
newline after `long_line_bytes` is fed on in fragments, as if the runtime had split it into `P`
records, so an unterminated 100 MiB line is read in bounded memory and never stalls the file.
"""

from __future__ import annotations

import gzip
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tailrace import records
from tailrace.agent import bulk, enrichment, formats, layout, reassembly
from tailrace.settings import LinePolicy
from tailrace.wire import codec
from tailrace.wire.v1 import ingest_pb2

_STDOUT = records.STREAM_CODES["stdout"]
_PARSE_ERROR = records.FLAG_PARSE_ERROR
_DEFAULT_LEVEL = enrichment.DEFAULT_LEVELS


class Reader(Protocol):
    def read(self, size: int) -> bytes: ...
    def close(self) -> None: ...


class PlainReader:
    """A regular file read from an offset; the descriptor keeps the inode after rename or unlink."""

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        os.lseek(fd, offset, os.SEEK_SET)

    def read(self, size: int) -> bytes:
        return os.read(self.fd, size)

    def close(self) -> None:
        os.close(self.fd)


class GzipReader:
    """A kubelet-compressed rotated file, read from an offset of its uncompressed content."""

    def __init__(self, path: os.PathLike[str] | str, offset: int) -> None:
        self._file = gzip.open(path, "rb")  # noqa: SIM115 - closed by close()
        self._file.seek(offset)

    def read(self, size: int) -> bytes:
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()


@dataclass(slots=True)
class Sealed:
    """A batch ready to push, serialized, with what the checkpoint needs once it is acknowledged.

    Kept as bytes, not as a message object: the buffer's accounting is then exact, the spool
    writes it as is, and the forwarder frames several into one `PushRequest` without copying
    them into a new message.
    """

    key: str
    payload: bytes  # a serialized tailrace.v1.Batch
    covered_offset: int
    resume_offset: int
    records: int

    @property
    def size(self) -> int:
        return len(self.payload)

    @property
    def batch(self) -> ingest_pb2.Batch:
        return ingest_pb2.Batch.FromString(self.payload)


@dataclass(slots=True)
class Config:
    """What a file source needs to know beyond the file itself."""

    node: str = ""
    workload: str = ""
    line_policy: LinePolicy = field(default_factory=LinePolicy)
    partial_timeout_s: float = 5.0
    batch_max_records: int = 4_000
    batch_max_bytes: int = 2 * 1024 * 1024
    read_chunk_bytes: int = 256 * 1024
    long_line_bytes: int = 1024 * 1024
    json_level_field: str = "level"
    json_execution_field: str = "executionId"
    execution_id: str = ""
    bulk: bool = True  # False sends every line through the general path (tests compare the two)


class FileSource:
    """Reads one file incarnation (dev, inode, generation) and turns it into sealed batches."""

    def __init__(
        self,
        log: layout.LogFile,
        dev: int,
        inode: int,
        generation: int,
        reader: Reader,
        offset: int,
        acked: int,
        config: Config,
    ) -> None:
        self.log = log
        self.dev = dev
        self.inode = inode
        self.generation = generation
        self.reader = reader
        self.config = config
        self.key = f"{config.node}/{dev}:{inode}:{generation}"
        self.consumed = offset
        self.read_offset = offset
        self.skip_until = acked  # records ending at or below this are stored already
        self.format = ""
        self._parse: formats.Parser = formats.PARSERS["cri"]
        self._header_length = formats.HEADER_LENGTHS["cri"]
        self._rest = b""
        self._long: tuple[int, int, bool, int] | None = None  # ts, stream, partial tag, flags
        self._long_start = 0
        policy = config.line_policy
        self.merger = reassembly.Merger(
            policy.max_line_bytes, policy.on_overflow, config.partial_timeout_s
        )
        self.enricher = enrichment.Enricher(
            config.json_level_field, config.json_execution_field, config.execution_id
        )
        self._source_pb = ingest_pb2.Source(
            key=self.key,
            node=config.node,
            namespace=log.namespace,
            pod=log.pod,
            pod_uid=log.pod_uid,
            container=log.container,
            restart=log.restart,
            workload=config.workload,
            path=str(log.path),
        )
        self.builder = codec.Columns()
        self.text_bytes = 0
        self.batch_started = 0.0
        self.parse_errors = 0
        self.lines_read = 0
        self.bytes_read = 0
        self.at_eof = False
        self.last_ts = 0
        self.guard: Callable[[], bool] | None = None  # still the same file? (live files)
        self.truncated = False

    # Reading.

    def read(self, now: float, max_bytes: int = 0) -> int:
        """Read one chunk and process its complete lines; 0 at end of file."""
        data = self.reader.read(max_bytes or self.config.read_chunk_bytes)
        if not data:
            self.at_eof = True
            return 0
        if self.guard is not None and not self.guard():
            # Truncated (copytruncate) between our reads: these bytes are the new content at our
            # old offset, not the continuation. Drop them; the tailer starts a new generation.
            self.truncated = True
            return 0
        self.at_eof = False
        self.read_offset += len(data)
        self.bytes_read += len(data)
        rest = self._rest
        if data.rfind(b"\n") < 0:
            buffer = rest + data if rest else data
            if len(buffer) >= self.config.long_line_bytes:
                self._fragment(buffer, now, final=False)
                self._rest = b""
            else:
                self._rest = buffer
            return len(data)
        # The chunk is split as read, and the unfinished line left from the last one joined to
        # its first line only: joining it to the whole chunk, then cutting the new unfinished
        # line off, copied every chunk twice.
        lines = data.split(b"\n")
        self._rest = lines.pop()
        if rest:
            lines[0] = rest + lines[0]
        if self._long is not None:
            self._fragment(lines[0] + b"\n", now, final=True)
            del lines[0]
        if not self.format and lines:
            self._set_format(formats.detect(lines[0]))
        self._lines(lines, (rest, data), now)
        return len(data)

    def _set_format(self, name: str) -> None:
        self.format = name
        self._parse = formats.PARSERS[name]
        self._header_length = formats.HEADER_LENGTHS[name]

    def _lines(self, lines: list[bytes], blocks: tuple[bytes, ...], now: float) -> None:
        """`blocks` hold the bytes of `lines` (and maybe more), for `bulk.Chunk`'s scans."""
        if self.format != "cri" or self.skip_until > self.consumed or not self.config.bulk:
            for line in lines:
                self._general(line, now)
            self.lines_read += len(lines)
            return
        chunk = bulk.Chunk(lines, blocks, self.config.line_policy.max_line_bytes)
        merger = self.merger
        cols = self.builder
        at = 0
        for stop in [*chunk.irregular, len(lines)]:
            # While a partial is pending, lines go through the merger: one may continue it, and
            # a complete line of the other stream must wait behind it.
            while at < stop and merger.busy:
                self._general(lines[at], now)
                at += 1
            if at < stop:
                self.text_bytes += chunk.append_run(
                    cols,
                    at,
                    stop,
                    self.consumed,
                    self.enricher,
                )
                merger.counts["kept"] += stop - at
                self.consumed = cols.ends[-1]
                self.last_ts = cols.ts[-1]
                at = stop
            if stop < len(lines):
                self._general(lines[stop], now)
                at = stop + 1
        self.lines_read += len(lines)

    def _general(self, line: bytes, now: float) -> None:
        start = self.consumed
        self.consumed = start + len(line) + 1  # _line reads the end from here
        self._line(line, start, now)

    def _line(self, line: bytes, start: int, now: float) -> None:
        """The general path for one physical line spanning [start, self.consumed)."""
        end = self.consumed
        parsed = self._parse(line)
        if parsed is None:
            self.parse_errors += 1
            flags = _PARSE_ERROR
            ts, stream, partial = self.last_ts or time.time_ns(), _STDOUT, False
            content = line[:-1] if line.endswith(b"\r") else line
        else:
            flags = 0
            ts, stream, partial, content = parsed
            self.last_ts = ts
            if not partial and content.endswith(b"\r"):
                content = content[:-1]
        content_start = start + self._header_length(line) if parsed else start
        for out in self.merger.feed(ts, stream, partial, content, start, content_start, end, now):
            self._emit(out, flags)

    def _fragment(self, fragment: bytes, now: float, final: bool) -> None:
        """Part of one physical line too long to hold: fed on like a `P` record."""
        start = self.consumed
        end = start + len(fragment)
        content = fragment[:-1] if final else fragment
        if self._long is None:
            self._long_start = start
            parsed = self._parse(content) if not final else None
            if parsed is None:
                self.parse_errors += 1
                self._long = (self.last_ts or time.time_ns(), _STDOUT, False, _PARSE_ERROR)
                content_start = start
            else:
                ts, stream, tag_partial, content = parsed
                self._long = (ts, stream, tag_partial, 0)
                content_start = start + self._header_length(fragment)
        else:
            content_start = start
        ts, stream, tag_partial, flags = self._long
        partial = tag_partial if final else True
        if final and not partial and content.endswith(b"\r"):
            content = content[:-1]
        for out in self.merger.feed(
            ts, stream, partial, content, self._long_start, content_start, end, now
        ):
            self._emit(out, flags)
        self.consumed = end
        if final:
            self._long = None
            self.lines_read += 1

    def _emit(self, out: reassembly.Line, flags: int) -> None:
        if out.end_offset <= self.skip_until:
            return
        if out.message is None:
            self.builder.account_dropped(out.end_offset)
            return
        self.text_bytes += len(out.message)
        content = out.message
        default = _DEFAULT_LEVEL[out.stream]
        if content[:1] == b"{":
            level, execution_id, attrs = self.enricher.json_fields(content, default)
        else:
            level = enrichment.leading_level(content)
            level = default if level < 0 else level
            execution_id, attrs = self.enricher.execution_id, b""
        self.builder.add(
            out.ts_ns,
            out.stream,
            level,
            content,
            out.end_offset,
            out.flags | flags,
            execution_id,
            attrs,
        )

    # Partials that wait too long, rotation, exit.

    def expire(self, now: float) -> None:
        for out in self.merger.expire(now):
            self._emit(out, 0)

    def finish(self) -> None:
        """No more data will come: flush the dangling partials and any unterminated last line."""
        if self._rest:
            rest, self._rest = self._rest, b""
            if self._long is not None:
                self._fragment(rest + b"\n", 0.0, final=True)
            else:
                start = self.consumed
                self.consumed = self.read_offset  # the last line has no newline
                self._line(rest, start, 0.0)
        for out in self.merger.flush():
            self._emit(out, 0)

    def resume_offset(self) -> int:
        return self.merger.resume_offset(self.consumed)

    # Batches.

    @property
    def has_output(self) -> bool:
        return len(self.builder) > 0 or self.builder.dropped_lines > 0

    def batch_full(self) -> bool:
        builder = self.builder
        return (
            len(builder) >= self.config.batch_max_records
            or self.text_bytes >= self.config.batch_max_bytes
        )

    def seal(self) -> Sealed | None:
        builder = self.builder
        if not (len(builder) or builder.dropped_lines):
            return None
        batch = builder.build(self._source_pb)
        sealed = Sealed(
            self.key,
            batch.SerializeToString(),
            batch.covered_offset,
            self.resume_offset(),
            len(builder),
        )
        self.skip_until = max(self.skip_until, batch.covered_offset)
        self.builder = codec.Columns()
        self.text_bytes = 0
        return sealed

    def close(self) -> None:
        self.reader.close()
