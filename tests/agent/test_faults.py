"""Faults with real processes: the server away for 30 s, the agent killed again and again, and
memory bounds while reading a 100 MiB line or while the server is down."""

from __future__ import annotations

import random
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent import agentproc, ingest_fake, pods
from tests.agent.test_rotation import assert_exactly_once, wait_all

StartAgent = Callable[..., agentproc.AgentProcess]
RSS_BOUND = 150 * 1024 * 1024  # a resource bound, stated generously for a Python process
MIB = 1024 * 1024


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name.startswith("tailrace_agent_")
    }


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_server_down_for_30_s_then_back_loses_nothing_with_bounded_memory(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    port = free_port()
    agent = agent_factory(
        "--metrics-addr",
        f"127.0.0.1:{port}",
        "--memory-buffer-bytes",
        str(1 * MIB),
        "--spool-max-bytes",
        str(4 * MIB),
    )
    sent = container.write_lines(0, 100, prefix="up")
    wait_all(ingest.servicer, 100)
    ingest.stop()
    down_since = time.monotonic()
    peak_rss = 0
    spooled = backpressure_lag = 0.0
    n = 100
    while time.monotonic() - down_since < 30:
        if time.monotonic() - down_since < 20:  # ~10 MB while down: memory, spool, then pause
            sent += container.write_lines(n, 1000, prefix="down " + "x" * 120)
            n += 1000
        peak_rss = max(peak_rss, agentproc.rss_bytes(agent.pid))
        values = scrape(port)
        spooled = max(spooled, values.get('tailrace_agent_buffer_bytes{tier="spool"}', 0.0))
        backpressure_lag = max(backpressure_lag, values.get("tailrace_agent_lag_bytes", 0.0))
        time.sleep(0.3)
    ingest.start()
    wait_all(ingest.servicer, len(sent), timeout_s=120)
    assert agent.terminate() == 0
    assert_exactly_once(ingest.servicer, sent)
    assert spooled > 0, "the bounded memory buffer overflowed to the spool"
    assert backpressure_lag > 0, "reading paused once the spool was full"
    assert "reading paused" in agent.log_text()
    assert peak_rss < RSS_BOUND
    assert "retrying with backoff" in agent.log_text()


@pytest.mark.timeout(180)
def test_agent_killed_at_random_points_again_and_again_stores_every_line_once(
    ingest: ingest_fake.IngestServer, container: pods.Container, agent_factory: StartAgent
) -> None:
    rng = random.Random(7)
    writer = pods.Writer(
        container,
        total=9000,
        per_burst=30,
        pause_s=0.03,
        rotate_every=2000,
        keep_rotated=10,  # a dead agent cannot read what is deleted: keep it all here
        split_every=7,
    ).start()
    fake = ingest.servicer
    for _ in range(6):
        before = len(fake.messages())
        agent = agent_factory()
        # Kill it while it delivers: after its first acknowledged batch, at a random moment.
        agentproc.wait_for(
            lambda before=before: len(fake.messages()) > before, 20, what="delivery resumed"
        )
        time.sleep(rng.uniform(0.0, 0.4))
        agent.kill()
    writer.join()
    agent = agent_factory()
    agent.wait_started()
    wait_all(ingest.servicer, len(writer.sent), timeout_s=60, sent=writer.sent)
    assert agent.terminate() == 0
    assert_exactly_once(ingest.servicer, writer.sent)


def write_huge_line(container: pods.Container, unsplit: bool) -> None:
    container.folder.mkdir(parents=True, exist_ok=True)
    chunk = b"h" * 16_384
    with container.path.open("wb") as file:
        if unsplit:
            file.write(pods.cri_line(0, b"")[:-1])  # the header, then 100 MiB, then one newline
            for _ in range(100 * 64):
                file.write(chunk)
            file.write(b"\n")
        else:
            record = pods.cri_line(0, chunk, tag="P")
            for _ in range(100 * 64 - 1):
                file.write(record)
            file.write(pods.cri_line(0, chunk))
        file.write(pods.cri_line(1, "after"))


@pytest.mark.parametrize("unsplit", [False, True], ids=["in-P-records", "one-physical-line"])
@pytest.mark.timeout(180)
def test_a_100_mib_line_is_read_in_bounded_memory_and_truncated(
    unsplit: bool,
    ingest: ingest_fake.IngestServer,
    container: pods.Container,
    agent_factory: StartAgent,
    tmp_path: Path,
) -> None:
    write_huge_line(container, unsplit)
    agent = agent_factory()
    wait_all(ingest.servicer, 2, timeout_s=120)
    peak = agentproc.peak_rss_bytes(agent.pid)
    assert agent.terminate() == 0
    huge, after = ingest.servicer.records()
    assert huge.record.message == "h" * 16_384
    assert huge.record.truncated
    assert after.record.message == "after"
    assert peak < RSS_BOUND, f"peak RSS {peak / MIB:.0f} MiB"
