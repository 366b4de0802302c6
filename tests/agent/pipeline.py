"""Runs bytes through the agent's reading pipeline in-process: a file, a FileSource, its batches."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tailrace import conventions, records
from tailrace.agent import filesource, layout
from tailrace.settings import LinePolicy
from tailrace.wire import codec


@dataclass
class Result:
    records: list[records.LogRecord] = field(default_factory=list)
    dropped: int = 0
    covered: int = 0
    parse_errors: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    partial_flushes: int = 0

    @property
    def messages(self) -> list[str]:
        return [r.message for r in self.records]


def run(
    tmp_path: Path,
    data: bytes,
    max_line_bytes: int = conventions.DEFAULT_MAX_LINE_BYTES,
    on_overflow: conventions.OverflowPolicy = "truncate",
    finish: bool = False,
    chunk: int = 0,
    long_line_bytes: int = 1024 * 1024,
) -> Result:
    folder = tmp_path / "pods" / "ns_pod_uid" / "c"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "0.log"
    path.write_bytes(data)
    log = layout.from_path(path)
    assert log is not None
    config = filesource.Config(
        node="n",
        line_policy=LinePolicy(max_line_bytes, on_overflow),
        long_line_bytes=long_line_bytes,
        batch_max_records=1_000_000,
        batch_max_bytes=1 << 40,
    )
    import os

    fd = os.open(path, os.O_RDONLY)
    source = filesource.FileSource(log, 1, 2, 0, filesource.PlainReader(fd, 0), 0, 0, config)
    result = Result()
    while source.read(0.0, chunk):
        pass
    if finish:
        source.finish()
    sealed = source.seal()
    source.close()
    if sealed is not None:
        codec.validate(sealed.batch)
        result.records = list(codec.iter_records(sealed.batch))
        result.dropped = sealed.batch.dropped_lines
        result.covered = sealed.batch.covered_offset
    result.parse_errors = source.parse_errors
    result.counts = dict(source.merger.counts)
    result.partial_flushes = source.merger.partial_flushes
    ends = [r.end_offset for r in result.records]
    assert ends == sorted(set(ends)), "end offsets must strictly increase"
    assert not ends or ends[-1] <= len(data)
    return result


@dataclass(frozen=True)
class Outcome:
    """Everything a FileSource produced from some bytes, comparable as a whole."""

    payload: bytes  # the serialized Batch, b"" when nothing was sealed
    counts: tuple[tuple[str, int], ...]
    parse_errors: int
    partial_flushes: int
    lines_read: int
    consumed: int
    resume_offset: int


def outcome(
    folder: Path, data: bytes, config: filesource.Config, chunk: int = 0, finish: bool = False
) -> Outcome:
    """Read `data` as a pod's log file with `config`, in reads of `chunk` bytes (0: the default)."""
    import os

    path = folder / "pods" / "ns_pod_uid" / "c" / "0.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    log = layout.from_path(path)
    assert log is not None
    fd = os.open(path, os.O_RDONLY)
    source = filesource.FileSource(log, 1, 2, 0, filesource.PlainReader(fd, 0), 0, 0, config)
    while source.read(0.0, chunk):
        pass
    if finish:
        source.finish()
    resume = source.resume_offset()
    sealed = source.seal()
    source.close()
    if sealed is not None:
        codec.validate(sealed.batch)
    return Outcome(
        sealed.payload if sealed is not None else b"",
        tuple(source.merger.counts.items()),
        source.parse_errors,
        source.merger.partial_flushes,
        source.lines_read,
        source.consumed,
        resume,
    )
