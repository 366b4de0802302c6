"""Rotation under load with a real agent process: every line is stored exactly once."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable

import pytest

from tests.agent import agentproc, ingest_fake, pods

StartAgent = Callable[..., agentproc.AgentProcess]


def assert_exactly_once(fake: ingest_fake.FakeIngest, sent: list[str]) -> None:
    stored = Counter(fake.messages())
    duplicates = {m: c for m, c in stored.items() if c > 1}
    missing = set(sent) - set(stored)
    assert not duplicates, f"{len(duplicates)} lines stored twice, e.g. {list(duplicates)[:3]}"
    assert not missing, f"{len(missing)} lines lost, e.g. {sorted(missing)[:3]}"
    assert sum(stored.values()) == len(sent)


def wait_all(
    fake: ingest_fake.FakeIngest,
    count: int,
    timeout_s: float = 60.0,
    sent: list[str] | None = None,
) -> None:
    try:
        agentproc.wait_for(
            lambda: len(fake.messages()) >= count, timeout_s, what=f"{count} lines stored"
        )
    except AssertionError:
        if sent is not None:
            assert_exactly_once(fake, sent)  # says which lines are missing or doubled
        raise


@pytest.mark.parametrize("how", ["rename", "copytruncate", "gzip"])
def test_rotation_under_load_stores_every_line_exactly_once(
    how: str,
    ingest: ingest_fake.IngestServer,
    container: pods.Container,
    agent_factory: StartAgent,
) -> None:
    first = container.write_lines(0, 10, prefix="before")
    agent = agent_factory()
    wait_all(ingest.servicer, 10)  # the agent is up and tailing
    writer = pods.Writer(
        container, total=6000, per_burst=40, pause_s=0.02, rotate_every=700, how=how
    ).start()
    writer.join()
    wait_all(ingest.servicer, 10 + len(writer.sent))
    assert agent.terminate() == 0
    assert_exactly_once(ingest.servicer, first + writer.sent)
    assert writer.rotations >= 8


def test_file_rotated_and_compressed_while_the_agent_was_down_is_finished_from_the_gz(
    ingest: ingest_fake.IngestServer,
    container: pods.Container,
    agent_factory: StartAgent,
) -> None:
    sent = container.write_lines(0, 300)
    agent = agent_factory()
    wait_all(ingest.servicer, 300)
    os.kill(agent.pid, signal.SIGSTOP)  # the agent stalls ...
    sent += container.write_lines(300, 500)
    agent.kill()  # ... and dies before reading these 500 lines
    rotated = container.rotate("20240101-000001")
    container.compress(rotated)
    sent += container.write_lines(800, 200)
    agent = agent_factory()
    wait_all(ingest.servicer, len(sent))
    assert agent.terminate() == 0
    assert_exactly_once(ingest.servicer, sent)
    assert "finishing" in agent.log_text()
    assert ".gz" in agent.log_text()


def test_deleted_pod_folder_is_read_to_its_end_and_released(
    ingest: ingest_fake.IngestServer,
    container: pods.Container,
    agent_factory: StartAgent,
) -> None:
    sent = container.write_lines(0, 100)
    agent = agent_factory()
    wait_all(ingest.servicer, 100)
    sent += container.write_lines(100, 100)
    container.delete_pod()
    wait_all(ingest.servicer, 200)
    agentproc.wait_for(lambda: "released" in agent.log_text(), what="file released")
    assert agent.terminate() == 0
    assert_exactly_once(ingest.servicer, sent)
