"""`tailrace logs` as a user runs it: a real subprocess, its own environment, its exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_INHERITED_SETTINGS = ("TAILRACE_SERVER", "TAILRACE_TOKEN", "TAILRACE_CONFIG", "NO_COLOR")


def clean_env(config_home: Path, **extra: str) -> dict[str, str]:
    """The test's environment without Tailrace settings, and a config folder of its own."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_SETTINGS}
    env["XDG_CONFIG_HOME"] = str(config_home)
    env.update(extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tailrace.cli", "logs", *args]


def run(
    args: list[str], config_home: Path, timeout_s: float = 60.0, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=clean_env(config_home, **env),
        check=False,
    )
