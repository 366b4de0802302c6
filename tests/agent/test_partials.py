"""Dangling partial lines in a running tailer: flushed on timeout and on container exit."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from tailrace import records
from tailrace.agent import checkpoints, filesource, metrics, tailer
from tailrace.wire import codec
from tests.agent import pods


def make_tailer(tmp_path: Path, sealed: list[filesource.Sealed], timeout_s: float) -> tailer.Tailer:
    return tailer.Tailer(
        tmp_path / "pods",
        filesource.Config(node="n", partial_timeout_s=timeout_s),
        checkpoints.Checkpoints(tmp_path / "state"),
        sealed.append,
        metrics.Metrics(CollectorRegistry()),
        retire_after_s=1.0,
    )


def test_a_dangling_partial_is_flushed_after_the_timeout_and_the_rest_follows_alone(
    tmp_path: Path,
) -> None:
    container = pods.Container(tmp_path / "pods")
    container.write(pods.cri_line(0, "head of a line ", tag="P"))
    sealed: list[filesource.Sealed] = []
    reader = make_tailer(tmp_path, sealed, timeout_s=5.0)
    reader.discover(0.0)
    reader.pump(0.0)
    reader.pump(0.0)  # at end of file
    reader.housekeeping(4.9)
    assert sealed == []
    reader.housekeeping(5.0)
    reader.housekeeping(5.5)  # the batch is sealed by age
    container.write(pods.cri_line(1, "and its tail"))
    reader.pump(6.0)
    reader.housekeeping(7.0)
    got = [(r.message, r.flags) for s in sealed for r in _records(s)]
    assert got == [("head of a line ", records.FLAG_PARTIAL_FLUSH), ("and its tail", 0)]
    reader.close()


def test_a_trailing_partial_is_flushed_when_the_container_restarts(tmp_path: Path) -> None:
    container = pods.Container(tmp_path / "pods")
    container.write(pods.cri_line(0, "whole") + pods.cri_line(1, "dangling", tag="P"))
    sealed: list[filesource.Sealed] = []
    reader = make_tailer(tmp_path, sealed, timeout_s=3600.0)
    reader.discover(0.0)
    reader.pump(0.0)
    reader.housekeeping(10.0)
    assert [m for s in sealed for m in _messages(s)] == ["whole"]
    pods.Container(tmp_path / "pods", restart=1).write_lines(0, 1, prefix="restarted")
    reader.discover(11.0)  # 1.log appears: 0.log belongs to an exited container
    reader.pump(11.0)
    reader.housekeeping(12.5)
    reader.housekeeping(12.5)
    messages = [m for s in sealed for m in _messages(s)]
    assert "dangling" in messages
    flushed = next(r for s in sealed for r in _records(s) if r.message == "dangling")
    assert flushed.flags & records.FLAG_PARTIAL_FLUSH
    reader.close()


def _records(sealed: filesource.Sealed) -> list[records.LogRecord]:
    return list(codec.iter_records(sealed.batch))


def _messages(sealed: filesource.Sealed) -> list[str]:
    return [r.message for r in _records(sealed)]
