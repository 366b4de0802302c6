"""`tailrace logs -f` keeps following through a server restart: it reconnects with the last
record id it printed and the server replays what came after, so nothing is missed or repeated."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import httpx

from tests.cli import feeding, running
from tests.support import processes


class _Lines:
    """Collects a child's output lines from a background thread."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line.rstrip("\n"))

    def join(self) -> None:
        self._thread.join(timeout=10)


def test_follow_across_a_server_restart_resumes_with_no_gap_and_no_repeat(
    tmp_path: Path,
) -> None:
    with feeding.fed_server(tmp_path / "work", 10) as fed:
        client = subprocess.Popen(
            running.command(
                "function/hello",
                "-n",
                feeding.NAMESPACE,
                "--server",
                fed.server.url,
                "-f",
                "-o",
                "json",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=running.clean_env(tmp_path / "config"),
        )
        out, err = _Lines(client.stdout), _Lines(client.stderr)
        try:
            processes.wait_until(lambda: len(out.lines) >= 10, timeout_s=60)
            for i in range(10, 20):
                fed.write(i, f"before the restart {i}")
            processes.wait_until(lambda: len(out.lines) >= 20, timeout_s=60)

            fed.server.stop()
            for i in range(20, 30):
                fed.write(i, f"while the server is down {i}")  # the agent holds these
            fed.server.start().wait_ready()
            for i in range(30, 40):
                fed.write(i, f"after the restart {i}")
            fed.wait_stored(40)
            processes.wait_until(lambda: len(out.lines) >= 40, timeout_s=60)
            fed.write(40, "the last line")
            processes.wait_until(lambda: "the last line" in out.lines[-1], timeout_s=60)

            printed = [json.loads(line) for line in out.lines]
            stored = fed.records()
            # Live lines come in commit (id) order, stored pages in time order: compare as sets,
            # and count, so a repeat or a gap shows either way.
            assert len(printed) == len(stored)
            assert sum(r["stream"] != "system" for r in printed) == 41  # + the pods' own events
            assert {r["id"] for r in printed} == {r["id"] for r in stored}
            assert sorted(r["message"] for r in printed) == sorted(r["message"] for r in stored)
            assert any("reconnect" in line for line in err.lines), err.lines

            # Deleting the workload ends its streams: the client stops on its own, successfully.
            r = httpx.delete(f"{fed.server.url}{fed.workload_path}")
            assert r.status_code in (200, 204), r.text
            assert client.wait(timeout=30) == 0
            err.join()
            assert any("ended the stream" in line for line in err.lines), err.lines
        finally:
            if client.poll() is None:
                client.send_signal(signal.SIGINT)
                client.wait(timeout=10)
            out.join()
            err.join()
            for stream in (client.stdout, client.stderr):
                if stream is not None:
                    stream.close()


def test_follow_with_tail_and_level_prints_the_last_matching_lines_then_new_ones(
    tmp_path: Path,
) -> None:
    with feeding.fed_server(tmp_path / "work", 40) as fed:
        last_errors = fed.records({"level": "ERROR", "tailLines": "2"})
        assert len(last_errors) == 2
        client = subprocess.Popen(
            running.command(
                "function/hello",
                "-n",
                feeding.NAMESPACE,
                "--server",
                fed.server.url,
                "-f",
                "--tail",
                "2",
                "--level",
                "ERROR",
                "--no-prefix",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=running.clean_env(tmp_path / "config"),
        )
        out = _Lines(client.stdout)
        try:
            processes.wait_until(lambda: len(out.lines) >= 2, timeout_s=60)
            fed.write(0, "just information")
            fed.write(1, "ERROR a new failure", stream="stderr")
            processes.wait_until(lambda: len(out.lines) >= 3, timeout_s=60)
            assert out.lines == [r["message"] for r in last_errors] + ["ERROR a new failure"]
        finally:
            client.send_signal(signal.SIGINT)
            assert client.wait(timeout=10) == 130
            out.join()
            if client.stdout is not None:
                client.stdout.close()
