"""One log file incarnation being read: bytes to parsed records to batches.

This is the hot path. A read chunk is split into physical lines with one `bytes.split`; each line
costs a header parse (a few `find`s, the timestamp's second cached), a level lookup and one
`BatchBuilder.add`. Records leave in batches by size; the tailer closes a batch by age.

Offsets: `consumed` is the end of the last physical line handed on, `resume_offset` where a reader
must restart to lose nothing (the start of a pending partial line, if any). A physical line with no
newline after `long_line_bytes` is fed on in fragments, as if the runtime had split it into `P`
records, so an unterminated 100 MiB line is read in bounded memory and never stalls the file.
"""

from __future__ import annotations

import gzip
import os
import time
from dataclasses import dataclass, field
from typing import Protocol

from tailrace import records
from tailrace.agent import enrichment, formats, layout, linelimit, reassembly
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
    """A batch ready to push, with what the checkpoint needs once it is acknowledged."""

    key: str
    batch: ingest_pb2.Batch
    covered_offset: int
    resume_offset: int
    records: int
    size: int  # serialized bytes, for the buffer's accounting


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
        self.source = records.SourceInfo(
            key=self.key,
            namespace=log.namespace,
            pod=log.pod,
            pod_uid=log.pod_uid,
            container=log.container,
            node=config.node,
            restart=log.restart,
            workload=config.workload,
            path=str(log.path),
        )
        self.builder = codec.BatchBuilder(self.source)
        self.batch_started = 0.0
        self.parse_errors = 0
        self.lines_read = 0
        self.bytes_read = 0
        self.at_eof = False
        self.last_ts = 0

    # Reading.

    def read(self, now: float, max_bytes: int = 0) -> int:
        """Read one chunk and process its complete lines; 0 at end of file."""
        data = self.reader.read(max_bytes or self.config.read_chunk_bytes)
        if not data:
            self.at_eof = True
            return 0
        self.at_eof = False
        self.read_offset += len(data)
        self.bytes_read += len(data)
        buffer = self._rest + data if self._rest else data
        cut = buffer.rfind(b"\n")
        if cut < 0:
            if len(buffer) >= self.config.long_line_bytes:
                self._fragment(buffer, now, final=False)
                self._rest = b""
            else:
                self._rest = buffer
            return len(data)
        self._rest = buffer[cut + 1 :]
        lines = buffer[:cut].split(b"\n")
        if self._long is not None:
            self._fragment(lines[0] + b"\n", now, final=True)
            del lines[0]
        if not self.format and lines:
            self._set_format(formats.detect(lines[0]))
        self._lines(lines, now)
        return len(data)

    def _set_format(self, name: str) -> None:
        self.format = name
        self._parse = formats.PARSERS[name]
        self._header_length = formats.HEADER_LENGTHS[name]

    def _lines(self, lines: list[bytes], now: float) -> None:
        parse = self._parse
        merger = self.merger
        limit = self.config.line_policy.max_line_bytes
        add = self.builder.add
        enricher = self.enricher
        leading_level = enrichment.leading_level
        skip = self.skip_until
        pos = self.consumed
        last_ts = self.last_ts
        for line in lines:
            start = pos
            pos += len(line) + 1
            parsed = parse(line)
            if parsed is None:
                self.parse_errors += 1
                flags = _PARSE_ERROR
                ts, stream, partial = last_ts or time.time_ns(), _STDOUT, False
                content = line[:-1] if line.endswith(b"\r") else line
            else:
                flags = 0
                ts, stream, partial, content = parsed
                last_ts = ts
                if not partial and content.endswith(b"\r"):
                    content = content[:-1]
            if partial or merger.busy or len(content) > limit:
                content_start = start + self._header_length(line) if parsed else start
                for out in merger.feed(
                    ts, stream, partial, content, start, content_start, pos, now
                ):
                    self._emit(out, flags)
                continue
            merger.counts["kept"] += 1
            if pos <= skip:
                continue
            if not content.isascii():
                content = linelimit.repair_utf8(content)
            default = _DEFAULT_LEVEL[stream]
            if content[:1] == b"{":
                level, execution_id, attrs = enricher.json_fields(content, default)
                add(ts, stream, level, content, pos, flags, execution_id, attrs)
            else:
                level = leading_level(content)
                add(
                    ts,
                    stream,
                    default if level < 0 else level,
                    content,
                    pos,
                    flags,
                    enricher.execution_id,
                )
        self.consumed = pos
        self.last_ts = last_ts
        self.lines_read += len(lines)

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
                self.consumed -= 1  # the last line has no newline: its end is the file's end
                self._lines([rest], 0.0)
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
            or builder.text_bytes >= self.config.batch_max_bytes
        )

    def seal(self) -> Sealed | None:
        builder = self.builder
        if not (len(builder) or builder.dropped_lines):
            return None
        batch = builder.build()
        sealed = Sealed(
            self.key,
            batch,
            builder.covered_offset,
            self.resume_offset(),
            len(builder),
            batch.ByteSize(),
        )
        self.skip_until = max(self.skip_until, builder.covered_offset)
        self.builder = codec.BatchBuilder(self.source)
        return sealed

    def close(self) -> None:
        self.reader.close()
