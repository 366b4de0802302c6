"""A server that is up but slower than the reader paces reading; the spool stays for outages and
for rotated files, which must be read on at full speed (real processes)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.agent import agentproc, ingest_fake, pods
from tests.agent.test_faults import free_port, scrape
from tests.agent.test_rotation import assert_exactly_once, wait_all

StartAgent = Callable[..., agentproc.AgentProcess]
SPOOL = 'tailrace_agent_buffer_bytes{tier="spool"}'
PADDING = "p" * 120


def watch_until_stored(
    ingest: ingest_fake.IngestServer, port: int, count: int, timeout_s: float = 90.0
) -> dict[str, float]:
    """Scrape the agent until `count` lines are stored; the largest value seen of each metric."""
    peak: dict[str, float] = {}
    deadline = time.monotonic() + timeout_s
    while len(ingest.servicer.messages()) < count and time.monotonic() < deadline:
        try:
            values = scrape(port)
        except OSError:  # not serving /metrics yet
            values = {}
        for name, value in values.items():
            peak[name] = max(peak.get(name, value), value)
        time.sleep(0.05)
    return peak


@pytest.mark.timeout(120)
def test_a_slow_but_acknowledging_server_paces_reading_and_nothing_is_spooled(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    ingest.servicer.push_delay_s = 0.2  # ~1 MB/s with a 256 KiB memory buffer: a slow server
    sent = container.write_lines(0, 20_000, prefix="slow " + PADDING)  # ~3.3 MB, all unread
    port = free_port()
    agent = agent_factory(
        "--metrics-addr", f"127.0.0.1:{port}", "--memory-buffer-bytes", str(256 * 1024)
    )
    peak = watch_until_stored(ingest, port, len(sent))
    wait_all(ingest.servicer, len(sent), sent=sent)
    paced = scrape(port).get("tailrace_agent_paced_seconds_total", 0.0)
    assert agent.terminate() == 0
    assert_exactly_once(ingest.servicer, sent)
    assert peak.get(SPOOL, 0.0) == 0.0, "a merely slow server made the agent spool"
    assert paced > 0.5, "reading waited for the server"
    assert "reading paced" in agent.log_text()
    assert "send buffer full" not in agent.log_text()


@pytest.mark.timeout(180)
def test_a_rotated_file_is_read_on_to_the_spool_while_the_server_is_slow(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    """Kubelet keeps one rotated file: the writer deletes each at the next rotation. A rotated
    file is not paced (the agent would be slow to let go of it): it goes to the spool."""
    ingest.servicer.push_delay_s = 0.2
    port = free_port()
    agent = agent_factory(
        "--metrics-addr", f"127.0.0.1:{port}", "--memory-buffer-bytes", str(256 * 1024)
    )
    agent.wait_started()
    writer = pods.Writer(
        container,
        total=40_000,
        per_burst=1000,
        pause_s=0.05,
        rotate_every=10_000,
        keep_rotated=1,
        prefix="rot " + PADDING,
    ).start()
    peak = watch_until_stored(ingest, port, writer.total, timeout_s=120)
    writer.join(60)
    wait_all(ingest.servicer, len(writer.sent), sent=writer.sent)
    assert agent.terminate() == 0
    assert_exactly_once(ingest.servicer, writer.sent)
    assert writer.rotations == 3
    assert peak.get(SPOOL, 0.0) > 0, "the rotated file was read on, to the spool"
