"""One busy file does not starve the others: each round reads at most one chunk of every file."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from tailrace.agent import checkpoints, filesource, metrics, tailer
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
