"""Discovery of pods and containers that appear after the agent started; the watchers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tailrace.agent import layout, watchers
from tests.agent import agentproc, ingest_fake, pods

StartAgent = Callable[..., agentproc.AgentProcess]


def test_a_pod_created_after_start_is_discovered_and_read(
    tmp_path: Path, ingest: ingest_fake.IngestServer, agent_factory: StartAgent
) -> None:
    first = pods.Container(tmp_path / "pods", pod="early", uid="u-1")
    first.write_lines(0, 5)
    agent = agent_factory()
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 5, what="early pod read")
    late = pods.Container(tmp_path / "pods", namespace="team-b", pod="late", uid="u-2", name="web")
    written = time.monotonic()
    late.write_lines(0, 3, prefix="late")
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 8, what="late pod read")
    print(f"new pod delivered {time.monotonic() - written:.3f} s after its first write")
    assert agent.terminate() == 0
    stored = [s for s in ingest.servicer.records() if s.source.pod == "late"]
    assert [s.record.message for s in stored] == ["late 0", "late 1", "late 2"]
    assert (stored[0].source.namespace, stored[0].source.container) == ("team-b", "web")


def test_sidecar_mode_reads_only_its_own_pod(
    tmp_path: Path, ingest: ingest_fake.IngestServer, agent_factory: StartAgent
) -> None:
    mine = pods.Container(tmp_path / "pods", pod="mine", uid="uid-mine")
    other = pods.Container(tmp_path / "pods", pod="other", uid="uid-other")
    mine.write_lines(0, 3, prefix="mine")
    other.write_lines(0, 3, prefix="other")
    agent = agent_factory("--pod-uid", "uid-mine", "--workload", "Function/hello")
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 3, what="own pod read")
    mine.write_lines(3, 1, prefix="mine")
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 4, what="own pod read")
    assert agent.terminate() == 0
    assert {s.source.pod for s in ingest.servicer.records()} == {"mine"}
    assert {s.source.workload for s in ingest.servicer.records()} == {"Function/hello"}


def test_inotify_watcher_reports_new_pod_and_container_folders(tmp_path: Path) -> None:
    try:
        watcher = watchers.InotifyWatcher(tmp_path)
    except OSError as err:
        pytest.skip(f"no inotify here: {err}")
    try:
        assert watcher.wait(0.05) is False
        (tmp_path / "ns_pod_uid").mkdir()
        assert watcher.wait(2.0) is True
        (tmp_path / "ns_pod_uid" / "app").mkdir()  # watched at once, before any rescan
        assert watcher.wait(2.0) is True
        (tmp_path / "ns_pod_uid" / "app" / "0.log").write_bytes(b"")
        assert watcher.wait(2.0) is True
    finally:
        watcher.close()


def test_polling_watcher_reports_nothing_and_rescans_on_its_interval() -> None:
    watcher = watchers.PollingWatcher(0.25)
    assert watcher.wait(0.01) is False
    assert watcher.rescan_interval_s == 0.25
    watcher.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default_hello_0000-1111", ("default", "hello", "0000-1111")),
        (
            "kube-system_coredns-5d78c9869d-abcde_9f8e7d6c",
            ("kube-system", "coredns-5d78c9869d-abcde", "9f8e7d6c"),
        ),
        ("no-underscores", None),
        ("UPPER_case_uid", None),
    ],
)
def test_pod_folder_names_split_into_namespace_pod_and_uid(
    name: str, expected: tuple[str, str, str] | None
) -> None:
    assert layout.parse_pod_dir(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("0.log", (0, "", False)),
        ("12.log", (12, "", False)),
        ("0.log.20240101-120000", (0, "20240101-120000", False)),
        ("0.log.20240101-120000.gz", (0, "20240101-120000", True)),
        ("0.log.tmp", None),
        ("app.log", None),
    ],
)
def test_log_file_names_give_restart_rotation_and_compression(
    name: str, expected: tuple[int, str, bool] | None
) -> None:
    assert layout.parse_log_name(name) == expected
