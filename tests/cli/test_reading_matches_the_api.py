"""`tailrace logs` without -f against a real server fed by a real agent: what it prints is what
the native API answers for the same filters, and piped output is plain text."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tailrace import demo
from tests.cli import feeding, running

LINES = 60


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[feeding.Fed]:
    with feeding.fed_server(tmp_path_factory.mktemp("cli-read"), LINES) as fed:
        yield fed


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


def _logs(
    fed: feeding.Fed, config_home: Path, *args: str, target: str = "function/hello"
) -> subprocess.CompletedProcess[str]:
    result = running.run(
        [target, "-n", feeding.NAMESPACE, "--server", fed.server.url, *args], config_home
    )
    assert result.returncode == 0, result.stderr
    return result


def _json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines()]


def test_piped_read_prints_every_line_oldest_first_with_pod_prefix_and_no_colour(
    fed: feeding.Fed, config_home: Path
) -> None:
    # A small page size makes the client walk several cursors.
    result = _logs(fed, config_home, "--page-size", "7")
    records = fed.records()
    assert len(feeding.written_lines(records)) == LINES
    assert result.stdout.splitlines() == [
        " ".join(part for part in (r["pod"], r["container"], r["message"]) if part) for r in records
    ]
    assert "\x1b" not in result.stdout


CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "tail": (["--tail", "5"], {"tailLines": "5"}),
    "since": (["--since", "1h"], {"last": "1h"}),
    "level": (["--level", "WARN,ERROR"], {"level": "WARN,ERROR"}),
    "grep": (["--grep", "timeout"], {"q": "timeout"}),
    "execution": (["--execution", "exec-2"], {"executionId": "exec-2"}),
    "container": (["-c", feeding.CONTAINER], {"container": feeding.CONTAINER}),
    "combined": (
        ["--level", "ERROR", "--grep", "upstream", "--tail", "3"],
        {"level": "ERROR", "q": "upstream", "tailLines": "3"},
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_filter_flags_print_exactly_what_the_api_answers(
    fed: feeding.Fed, config_home: Path, case: str
) -> None:
    args, params = CASES[case]
    printed = _json_lines(_logs(fed, config_home, "-o", "json", *args).stdout)
    answered = fed.records(params)
    assert answered, "the case must select something to be meaningful"
    assert printed == answered
    # And the API's answer means what the flag says.
    if case == "since":
        assert len(feeding.written_lines(printed)) == LINES - feeding.OLD_LINES
    elif case == "level":
        assert {r["level"] for r in printed} == {"WARN", "ERROR"}
    elif case == "grep":
        assert all("timeout" in r["message"] for r in printed)
    elif case == "tail":
        assert printed == fed.records()[-5:]
    elif case == "execution":
        assert {r["executionId"] for r in printed} == {"exec-2"}


def test_since_time_keeps_lines_at_or_after_the_given_time(
    fed: feeding.Fed, config_home: Path
) -> None:
    cut = demo.rfc3339_nano(fed.started_ns - feeding.HOUR_NS)
    printed = _json_lines(_logs(fed, config_home, "-o", "json", "--since-time", cut).stdout)
    assert printed == fed.records({"since": cut})
    assert len(feeding.written_lines(printed)) == LINES - feeding.OLD_LINES


def test_pod_target_prints_messages_alone_like_kubectl(fed: feeding.Fed, config_home: Path) -> None:
    pod = feeding.PODS[1]
    result = _logs(fed, config_home, target=f"pod/{pod}")
    records = fed.records(path=f"/v1/namespaces/{feeding.NAMESPACE}/pods/{pod}/logs")
    assert records
    assert result.stdout.splitlines() == [r["message"] for r in records]


def test_timestamps_and_wide_output_show_time_level_source_and_truncation(
    fed: feeding.Fed, config_home: Path
) -> None:
    records = fed.records()
    stamped = _logs(fed, config_home, "--timestamps", "--no-prefix").stdout.splitlines()
    assert stamped == [f"{r['time']} {r['message']}" for r in records]
    wide = _logs(fed, config_home, "-o", "wide").stdout.splitlines()
    assert len(wide) == len(records)
    [at] = [i for i, r in enumerate(records) if r["message"].startswith("a very long line")]
    assert records[at]["truncated"] is True
    assert wide[at].startswith(records[at]["time"])
    assert wide[at].endswith("[truncated]")
    assert sum(line.endswith("[truncated]") for line in wide) == 1
    first = records[0]
    assert wide[0].split()[:4] == [
        first["time"],
        first["level"],
        f"{first['pod']}/{first['container']}" if first["container"] else first["pod"],
        first["executionId"] or "-",
    ]


def _on_a_terminal(args: list[str], env: dict[str, str]) -> str:
    """Run with stdout on a pseudo-terminal, as a person at a shell would."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        running.command(*args), stdout=follower, stderr=subprocess.PIPE, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    return b"".join(chunks).decode()


def test_terminal_output_is_coloured_by_level_and_pod_unless_no_color(
    fed: feeding.Fed, config_home: Path
) -> None:
    args = ["function/hello", "-n", feeding.NAMESPACE, "--server", fed.server.url]
    coloured = _on_a_terminal(args, running.clean_env(config_home))
    assert "\x1b[31mERROR upstream timeout" in coloured  # errors in red
    for record in fed.records({"level": "WARN"}):
        assert f"\x1b[33m{record['message']}\x1b[0m" in coloured  # warnings in amber
    pod_colours = {
        line.split(feeding.PODS[0])[0] for line in coloured.splitlines() if feeding.PODS[0] in line
    }
    assert len(pod_colours) == 1
    assert next(iter(pod_colours)).startswith("\x1b[")
    plain = _on_a_terminal(args, running.clean_env(config_home, NO_COLOR="1"))
    assert "\x1b" not in plain
    assert len(plain.splitlines()) == len(fed.records())
