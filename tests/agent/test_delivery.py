"""End to end through a real agent process: lines written to CRI files arrive at the server once."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.agent import agentproc, ingest_fake, pods

StartAgent = Callable[..., agentproc.AgentProcess]


def test_complete_lines_are_delivered_with_pod_identity_and_checkpointed_on_sigterm(
    tmp_path: Path,
    ingest: ingest_fake.IngestServer,
    container: pods.Container,
    agent_factory: StartAgent,
) -> None:
    sent = container.write_lines(0, 100)
    agent = agent_factory()
    fake = ingest.servicer
    agentproc.wait_for(lambda: len(fake.messages()) >= 100, what="100 lines stored")
    sent += container.write_lines(100, 50, stream="stderr")
    agentproc.wait_for(lambda: len(fake.messages()) >= 150, what="150 lines stored")
    assert agent.terminate() == 0
    assert fake.messages() == sent
    first = fake.records()[0]
    assert (first.source.namespace, first.source.pod, first.source.pod_uid) == (
        "default",
        "hello",
        "0000-1111",
    )
    assert first.source.container == "app"
    assert first.source.key.startswith("node-1/")
    assert fake.records()[120].record.stream == "stderr"
    assert fake.records()[120].record.level == "ERROR"
    assert fake.records()[0].record.level == "INFO"
    state = json.loads((tmp_path / "state" / "checkpoints.json").read_text())
    assert state["version"] == 1
    [entry] = state["sources"]
    assert entry["acked"] == container.path.stat().st_size


def test_restart_resumes_from_the_checkpoint_without_duplicates(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    sent = container.write_lines(0, 50)
    fake = ingest.servicer
    agent = agent_factory()
    agentproc.wait_for(lambda: len(fake.messages()) >= 50, what="first lines stored")
    assert agent.terminate() == 0
    sent += container.write_lines(50, 50)
    agent = agent_factory()
    agentproc.wait_for(lambda: len(fake.messages()) >= 100, what="later lines stored")
    assert agent.terminate() == 0
    assert fake.messages() == sent
    assert fake.duplicates == 0


def test_agent_retries_with_backoff_and_says_so_while_the_server_is_not_up(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    ingest.stop()
    sent = container.write_lines(0, 20)
    agent = agent_factory()
    agentproc.wait_for(
        lambda: "retrying with backoff" in agent.log_text(), what="a retry in the log"
    )
    ingest.start()
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 20, what="lines after restart")
    assert agent.terminate() == 0
    assert ingest.servicer.messages() == sent
    retry = next(
        json.loads(line)
        for line in agent.log_text().splitlines()
        if "retrying with backoff" in line
    )
    assert retry["level"] == "WARNING"
    assert retry["server"] == ingest.address


def test_sigterm_while_the_server_is_down_exits_cleanly_and_loses_nothing(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    sent = container.write_lines(0, 30)
    ingest.stop()
    agent = agent_factory("--drain-timeout", "1")
    agentproc.wait_for(lambda: "retrying with backoff" in agent.log_text(), what="a retry")
    assert agent.terminate(timeout=15) == 0
    assert "drain cut short" in agent.log_text()
    ingest.start()
    agent = agent_factory()
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 30, what="lines after restart")
    assert agent.terminate() == 0
    assert ingest.servicer.messages() == sent
