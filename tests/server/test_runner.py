"""`tailrace server` as a process: loopback-only without auth, clean stop on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tailrace import settings
from tailrace.server import runner
from tests.support import processes


@pytest.mark.parametrize(
    "http_addr", ["0.0.0.0:8080", "10.1.2.3:8080", "[::]:8080", "example.com:8080"]
)
def test_non_loopback_without_auth_is_refused(tmp_path: Path, http_addr: str) -> None:
    config = settings.ServerSettings(store_url=f"sqlite:///{tmp_path}/t.db", http_addr=http_addr)
    assert runner.run(config) == 2
    assert not (tmp_path / "t.db").exists()


@pytest.mark.parametrize("http_addr", ["127.0.0.1:8080", "localhost:8080", "[::1]:8080"])
def test_loopback_without_auth_passes_the_check(http_addr: str) -> None:
    runner.check_exposure(settings.ServerSettings(store_url="memory://", http_addr=http_addr))


def test_non_loopback_with_tokens_or_insecure_passes_the_check(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t *\n")
    runner.check_exposure(
        settings.ServerSettings(store_url="memory://", http_addr="0.0.0.0:1", tokens_file=tokens)
    )
    runner.check_exposure(
        settings.ServerSettings(
            store_url="memory://",
            http_addr="0.0.0.0:1",
            grpc_addr="0.0.0.0:2",
            tokens_file=tokens,
            ingest_tokens_file=tokens,
        )
    )
    runner.check_exposure(
        settings.ServerSettings(store_url="memory://", http_addr="0.0.0.0:1", insecure=True)
    )


def test_exposed_grpc_ingest_needs_ingest_auth(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t *\n")
    reader_only = settings.ServerSettings(
        store_url="memory://", grpc_addr="0.0.0.0:7070", tokens_file=tokens
    )
    with pytest.raises(runner.ConfigError, match="--grpc-addr"):
        runner.check_exposure(reader_only)
    kube_without_accounts = settings.ServerSettings(
        store_url="memory://", grpc_addr="0.0.0.0:7070", kubernetes_auth=True
    )
    with pytest.raises(runner.ConfigError, match="--ingest-service-account"):
        runner.check_exposure(kube_without_accounts)


@pytest.mark.parametrize("addr", ["8080", "host:", "host:99999"])
def test_bad_address_is_a_config_error(addr: str) -> None:
    with pytest.raises(runner.ConfigError):
        runner.split_addr(addr)


def test_server_process_says_loopback_only_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = processes.server_process(tmp_path).start().wait_ready()
    try:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{server.url}/ui/").status_code == 200
        # No auth: no rate limit (the default burst is 100 per token).
        with httpx.Client(base_url=server.url) as client:
            codes = {client.get("/v1/namespaces/ns/pods/p/logs").status_code for _ in range(150)}
        assert codes == {200}
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.output()
    assert "serving on loopback only" in server.output()


def test_unusable_auth_or_store_configuration_exits_2(tmp_path: Path) -> None:
    bad_tokens = tmp_path / "tokens"
    bad_tokens.write_text("only-a-token\n")
    port = processes.free_port()
    for config in (
        settings.ServerSettings(store_url="nosuch://x", http_addr=f"127.0.0.1:{port}"),
        settings.ServerSettings(
            store_url=f"sqlite:///{tmp_path}/a.db",
            http_addr=f"127.0.0.1:{port}",
            grpc_addr=f"127.0.0.1:{processes.free_port()}",
            tokens_file=bad_tokens,
        ),
        settings.ServerSettings(
            store_url=f"sqlite:///{tmp_path}/b.db",
            http_addr=f"127.0.0.1:{port}",
            tokens_file=tmp_path / "missing",
        ),
    ):
        assert runner.run(config) == 2


def test_sigterm_ends_live_streams_with_a_reason_and_exits_cleanly(tmp_path: Path) -> None:
    server = processes.server_process(tmp_path).start().wait_ready()
    try:
        with httpx.stream(
            "GET",
            f"{server.url}/v1/namespaces/ns/pods/p/logs",
            params={"follow": "true"},
            headers={"Accept": "text/event-stream"},
            timeout=20,
        ) as response:
            lines = response.iter_lines()
            assert next(lines) == ": following"
            assert server.proc is not None
            server.proc.send_signal(signal.SIGTERM)
            rest = list(lines)
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.output()
    assert "event: error" in rest
    assert any('"reason":"shutdown"' in line for line in rest)
