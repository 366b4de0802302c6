"""`tailrace logs` fails clearly: one line on stderr and an exit code scripts can rely on
(1 unreachable, 2 usage, 3 not found, 4 unauthorized or forbidden)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli import running
from tests.support import processes

READER = "reader-token-shop"
ADMIN = "admin-token-all"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.ServerProcess]:
    workdir = tmp_path_factory.mktemp("cli-auth")
    tokens = workdir / "tokens"
    tokens.write_text(f"# readers\n{READER} shop\n{ADMIN} *\n")
    server = processes.server_process(workdir, extra=["--tokens-file", str(tokens)])
    with processes.running(server):
        server.start().wait_ready()
        yield server


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


def _logs(config_home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return running.run(list(args), config_home, **env)


def test_missing_token_exits_4_and_says_how_to_give_one(
    secured: processes.ServerProcess, config_home: Path
) -> None:
    result = _logs(config_home, "function/hello", "-n", "shop", "--server", secured.url)
    assert result.returncode == 4
    assert "401" in result.stderr
    assert "--token" in result.stderr
    assert "TAILRACE_TOKEN" in result.stderr
    assert result.stdout == ""


def test_wrong_token_exits_4(secured: processes.ServerProcess, config_home: Path) -> None:
    result = _logs(
        config_home, "function/hello", "-n", "shop", "--server", secured.url, "--token", "nope"
    )
    assert result.returncode == 4
    assert "401" in result.stderr


def test_token_of_another_namespace_exits_4_naming_the_namespace(
    secured: processes.ServerProcess, config_home: Path
) -> None:
    result = _logs(
        config_home, "function/hello", "-n", "billing", "--server", secured.url, "--token", READER
    )
    assert result.returncode == 4
    assert "403" in result.stderr
    assert "'billing'" in result.stderr


def test_unknown_workload_exits_3_naming_it(
    secured: processes.ServerProcess, config_home: Path
) -> None:
    result = _logs(
        config_home, "function/nope", "-n", "shop", "--server", secured.url, "--token", READER
    )
    assert result.returncode == 3
    assert "function/nope not found in namespace 'shop'" in result.stderr


def test_unknown_workload_with_follow_exits_3_without_retrying(
    secured: processes.ServerProcess, config_home: Path
) -> None:
    result = _logs(
        config_home, "pipeline/nope", "-n", "shop", "-f", "--server", secured.url, "--token", ADMIN
    )
    assert result.returncode == 3
    assert "pipeline/nope not found" in result.stderr


def test_server_and_token_from_the_environment_with_a_bare_host_port(
    secured: processes.ServerProcess, config_home: Path
) -> None:
    # TAILRACE_SERVER doubles as the agent's host:port; the client reads it as http://host:port.
    address = secured.url.removeprefix("http://")
    result = _logs(
        config_home, "function/nope", "-n", "shop", TAILRACE_SERVER=address, TAILRACE_TOKEN=READER
    )
    assert result.returncode == 3, result.stderr  # authenticated: the workload is what is missing


def test_server_token_and_namespace_from_the_config_file_context(
    secured: processes.ServerProcess, config_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "shop.token").write_text(READER + "\n")
    config = config_home / "tailrace" / "config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(
        "current-context: elsewhere\n"
        "contexts:\n"
        "  - name: elsewhere\n"
        "    server: http://127.0.0.1:1\n"
        "  - name: test\n"
        f"    server: {secured.url}\n"
        f"    tokenFile: {tmp_path / 'shop.token'}\n"
        "    namespace: shop\n"
    )
    result = _logs(config_home, "function/nope", "--context", "test")
    assert result.returncode == 3, result.stderr
    assert "namespace 'shop'" in result.stderr
    # The current context points at nothing: that is a server that is down.
    down = _logs(config_home, "function/nope")
    assert down.returncode == 1
    # --config names another file; flags still win over it.
    moved = tmp_path / "elsewhere.yaml"
    moved.write_text(
        config.read_text().replace("current-context: elsewhere", "current-context: test")
    )
    result = _logs(config_home, "function/nope", "--config", str(moved))
    assert result.returncode == 3, result.stderr
    result = _logs(config_home, "function/nope", "--config", str(moved), "--token", "nope")
    assert result.returncode == 4


def test_server_that_is_down_exits_1_saying_where_it_looked(config_home: Path) -> None:
    url = f"http://127.0.0.1:{processes.free_port()}"
    for follow in ([], ["-f"]):
        result = _logs(config_home, "function/hello", "-n", "shop", "--server", url, *follow)
        assert result.returncode == 1
        assert f"cannot reach the Tailrace server at {url}" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["deployment/hello"],
        ["function/hello", "--since", "yesterday"],
        ["function/hello", "--since-time", "noon"],
        ["function/hello", "--since", "1h", "--since-time", "2024-01-01T00:00:00Z"],
    ],
)
def test_bad_usage_exits_2_before_calling_anyone(config_home: Path, args: list[str]) -> None:
    result = _logs(config_home, *args, "--server", "http://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith("tailrace logs: ")
