"""The agent's /metrics, /healthz, structured logs and ingest token, through a real process."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent import agentproc, ingest_fake, pods
from tests.agent.cases import p_chunks
from tests.agent.test_faults import free_port, scrape

StartAgent = Callable[..., agentproc.AgentProcess]


def test_metrics_count_lines_by_outcome_and_healthz_answers(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    container.write_lines(0, 5)
    container.write(p_chunks(10, b"t" * 40_000))  # truncated at 16 KiB
    container.write(b"garbage line\n")
    port = free_port()
    agent = agent_factory("--metrics-addr", f"127.0.0.1:{port}")
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 7, what="7 records")
    values = scrape(port)
    assert values['tailrace_agent_lines_total{outcome="kept"}'] == 6
    assert values['tailrace_agent_lines_total{outcome="truncated"}'] == 1
    assert values['tailrace_agent_lines_total{outcome="dropped"}'] == 0
    assert values["tailrace_agent_parse_errors_total"] == 1
    assert values["tailrace_agent_files_open"] == 1
    agentproc.wait_for(
        lambda: scrape(port).get("tailrace_agent_records_sent_total", 0) == 7, what="acked"
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        health = json.loads(response.read())
    assert health["status"] == "ok"
    assert health["serverConnected"] is True
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nope", timeout=5)
    assert missing.value.code == 404
    assert agent.terminate() == 0
    for line in agent.log_text().splitlines():
        assert json.loads(line)["logger"].startswith("tailrace.agent")


def test_the_ingest_token_is_sent_as_a_bearer_token(
    tmp_path: Path,
    ingest: ingest_fake.IngestServer,
    container: pods.Container,
    agent_factory: StartAgent,
) -> None:
    ingest.servicer.token = "s3cret"
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    sent = container.write_lines(0, 3)
    agent = agent_factory("--token-file", str(token_file))
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 3, what="authorised push")
    assert agent.terminate() == 0
    assert ingest.servicer.messages() == sent


def test_a_rejected_token_is_read_again_from_its_file_and_nothing_is_dropped(
    tmp_path: Path,
    ingest: ingest_fake.IngestServer,
    container: pods.Container,
    agent_factory: StartAgent,
) -> None:
    ingest.servicer.token = "right"
    token_file = tmp_path / "token"
    token_file.write_text("wrong")
    sent = container.write_lines(0, 3)
    agent = agent_factory("--token-file", str(token_file))
    agentproc.wait_for(lambda: "UNAUTHENTICATED" in agent.log_text(), what="auth failure logged")
    assert ingest.servicer.messages() == []
    token_file.write_text("right\n")  # the kubelet rotated the projected token
    agentproc.wait_for(lambda: len(ingest.servicer.messages()) >= 3, what="pushed with new token")
    assert agent.terminate() == 0
    assert ingest.servicer.messages() == sent
