"""`tailrace up` as a newcomer runs it: one process, a URL to open, logs within 2 seconds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support import processes


def test_up_prints_a_url_that_serves_the_demo_logs_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    http_port, grpc_port = processes.free_port(), processes.free_port()
    out_path = tmp_path / "up.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tailrace.cli",
                "up",
                "--http-port",
                str(http_port),
                "--grpc-port",
                str(grpc_port),
                "--data-dir",
                str(tmp_path / "data"),
                "--lines-per-second",
                "20",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        processes.wait_until(lambda: "Ctrl-C" in out_path.read_text(), timeout_s=60)
        text = out_path.read_text()
        match = re.search(r"open\s+(http://\S+/logs)", text)
        assert match, text
        url = match.group(1)
        assert "curl" in text

        # A line written now must be served within 2 seconds.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = httpx.get(url, params={"limit": 5000}, timeout=5)
            if r.status_code == 200 and r.text.strip():
                break
            time.sleep(0.1)
        assert r.status_code == 200
        seen_before = len(r.text.splitlines())
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.0:
            count = len(httpx.get(url, params={"limit": 5000}, timeout=5).text.splitlines())
            if count > seen_before:
                break
            time.sleep(0.05)
        assert count > seen_before, "no new demo line was served within 2 seconds"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
    assert code == 0, out_path.read_text()
    assert "stopping" in out_path.read_text()
