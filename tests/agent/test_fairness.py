"""One busy file does not starve the others: each round reads at most one chunk of every file."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from tailrace import records
from tailrace.agent import checkpoints, filesource, metrics, tailer
from tailrace.wire import codec
from tests.agent import pods


def test_a_huge_file_does_not_starve_small_ones(tmp_path: Path) -> None:
    big = pods.Container(tmp_path / "pods", pod="big", uid="u-big")
    big.write(b"".join(pods.cri_line(n, "x" * 200) for n in range(40_000)))  # ~9 MB
    small = [pods.Container(tmp_path / "pods", pod=f"small{i}", uid=f"u-{i}") for i in range(20)]
    for container in small:
        container.write_lines(0, 10)
    sealed: list[filesource.Sealed] = []
    reader = tailer.Tailer(
        tmp_path / "pods",
        filesource.Config(node="n", read_chunk_bytes=64 * 1024),
        checkpoints.Checkpoints(tmp_path / "state"),
        sealed.append,
        metrics.Metrics(CollectorRegistry()),
    )
    reader.discover(0.0)
    reader.pump(0.0)  # one round
    by_pod = {t.source.log.pod: t.source for t in reader.files.values()}
    assert all(by_pod[f"small{i}"].lines_read == 10 for i in range(20))
    assert by_pod["big"].bytes_read == 64 * 1024
    reader.close()


def test_a_trailing_partial_is_flushed_when_the_container_restarts(tmp_path: Path) -> None:
    container = pods.Container(tmp_path / "pods")
    container.write(pods.cri_line(0, "whole") + pods.cri_line(1, "dangling", tag="P"))
    sealed: list[filesource.Sealed] = []
    reader = tailer.Tailer(
        tmp_path / "pods",
        filesource.Config(node="n", partial_timeout_s=3600.0),
        checkpoints.Checkpoints(tmp_path / "state"),
        sealed.append,
        metrics.Metrics(CollectorRegistry()),
        retire_after_s=1.0,
    )
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
