"""A file truncated in place without a copy: the new content is read, the loss is counted."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from tailrace.agent import checkpoints, filesource, metrics, tailer
from tailrace.wire import codec
from tests.agent import pods


def test_truncation_without_a_copy_starts_a_new_generation_and_counts_lost_bytes(
    tmp_path: Path,
) -> None:
    container = pods.Container(tmp_path / "pods")
    container.write_lines(0, 3, prefix="read")
    sealed: list[filesource.Sealed] = []
    registry = CollectorRegistry()
    reader = tailer.Tailer(
        tmp_path / "pods",
        filesource.Config(node="n"),
        checkpoints.Checkpoints(tmp_path / "state"),
        sealed.append,
        metrics.Metrics(registry),
        batch_max_wait_s=0.0,
    )
    reader.discover(0.0)
    reader.pump(0.0)
    unread = container.write_lines(3, 2, prefix="unread")
    reader.discover(0.5)  # sees the file grow, does not read yet
    with container.path.open("r+b") as file:
        file.truncate(0)
    container.write_lines(10, 2, prefix="after")
    for now in (1.0, 1.1, 1.2):
        reader.discover(now)  # the file is now shorter than the offset read
        reader.pump(now)
        reader.housekeeping(now)
    messages = [r.message for s in sealed for r in codec.iter_records(s.batch)]
    assert messages == ["read 0", "read 1", "read 2", "after 10", "after 11"]
    assert {s.key for s in sealed} == {sealed[0].key, sealed[0].key[:-1] + "1"}
    lost = registry.get_sample_value("tailrace_agent_lost_bytes_total")
    assert lost == sum(len(pods.cri_line(n, m)) for n, m in zip((3, 4), unread, strict=True))
    assert (
        registry.get_sample_value("tailrace_agent_rotations_total", {"kind": "copytruncate"}) == 1
    )
    reader.close()
