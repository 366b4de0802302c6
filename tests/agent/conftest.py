from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent import agentproc, ingest_fake, pods


@pytest.fixture
def ingest() -> Iterator[ingest_fake.IngestServer]:
    server = ingest_fake.IngestServer().start()
    yield server
    server.stop()


@pytest.fixture
def container(tmp_path: Path) -> pods.Container:
    return pods.Container(tmp_path / "pods")


@pytest.fixture
def agent_factory(tmp_path: Path, ingest: ingest_fake.IngestServer) -> Iterator[object]:
    started: list[agentproc.AgentProcess] = []

    def start(*extra: str, state: str = "state") -> agentproc.AgentProcess:
        agent = agentproc.AgentProcess(
            tmp_path / "pods",
            ingest.address,
            tmp_path / state,
            tmp_path / f"agent-{len(started)}.log",
            list(extra),
        ).start()
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.stop()
