"""The Dockerfile, read statically (no Docker engine here): a multi-stage build onto a slim
Python, a numeric non-root user, the `tailrace` entry point, OCI labels, nothing written at run
time, and a build context that cannot carry the repository's history, tools, tests or secrets."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    arguments: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped, numbered by stage."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    instructions = []
    stage = -1
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), arguments.strip()))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(instruction.stage for instruction in instructions)
    return [instruction for instruction in instructions if instruction.stage == last]


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    defaults = {}
    for instruction in instructions:
        if instruction.keyword == "ARG" and "=" in instruction.arguments:
            name, _, value = instruction.arguments.partition("=")
            defaults[name] = value
    return defaults


def test_build_has_a_builder_stage_and_a_slim_python_311_final_stage(
    dockerfile: list[Instruction],
) -> None:
    froms = [instruction.arguments for instruction in dockerfile if instruction.keyword == "FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith(" AS builder")
    base = build_args(dockerfile)["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base)
    assert froms[-1] == "${PYTHON_IMAGE}"
    copies = [i.arguments for i in final_stage(dockerfile) if i.keyword == "COPY"]
    assert copies == ["--from=builder /opt/tailrace /opt/tailrace"]


def test_image_runs_as_a_numeric_non_root_user(dockerfile: list[Instruction]) -> None:
    users = [i.arguments for i in final_stage(dockerfile) if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    user, _, group = users[-1].partition(":")
    assert user.isdigit()
    assert int(user) == 65532
    assert group.isdigit()
    assert int(group) != 0
    # A named account too: getpass (kopf's peer identity) looks the uid up in /etc/passwd.
    runs = " ".join(i.arguments for i in final_stage(dockerfile) if i.keyword == "RUN")
    assert "useradd" in runs
    assert "--uid 65532" in runs


def test_entry_point_is_the_tailrace_command(dockerfile: list[Instruction]) -> None:
    entrypoints = [i.arguments for i in final_stage(dockerfile) if i.keyword == "ENTRYPOINT"]
    assert entrypoints == ['["tailrace"]']
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "tailrace" in pyproject["project"]["scripts"]


def test_image_writes_nothing_outside_mounted_volumes(dockerfile: list[Instruction]) -> None:
    env = " ".join(i.arguments for i in final_stage(dockerfile) if i.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "HOME=/tmp" in env
    # Bytecode is compiled at build time instead.
    builder_runs = " ".join(i.arguments for i in dockerfile if i.stage == 0 and i.keyword == "RUN")
    assert "compileall" in builder_runs


def test_image_carries_oci_labels(dockerfile: list[Instruction]) -> None:
    labels = " ".join(i.arguments for i in final_stage(dockerfile) if i.keyword == "LABEL")
    for key in ("title", "version", "revision", "source", "licenses", "created", "description"):
        assert f"org.opencontainers.image.{key}=" in labels
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert build_args(dockerfile)["VERSION"] == pyproject["project"]["version"]


def test_image_version_matches_the_chart_app_version(dockerfile: list[Instruction]) -> None:
    chart = (REPO / "deploy" / "helm" / "tailrace" / "Chart.yaml").read_text()
    app_version = re.search(r'^appVersion: "?([^"\n]+)"?$', chart, re.MULTILINE)
    assert app_version is not None
    assert build_args(dockerfile)["VERSION"] == app_version.group(1)


def test_only_sources_are_copied_into_the_build(dockerfile: list[Instruction]) -> None:
    sources = set()
    for instruction in dockerfile:
        if instruction.keyword in {"COPY", "ADD"} and not instruction.arguments.startswith("--"):
            *from_paths, _destination = shlex.split(instruction.arguments)
            sources.update(from_paths)
    assert sources == {"pyproject.toml", "README.md", "collector/", "operator/"}
    assert not any(i.keyword == "ADD" for i in dockerfile)


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""

    def matches(pattern: str, candidate: str) -> bool:
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**", index):
                regex += ".*"
                index += 2
                if pattern.startswith("/", index):
                    regex += "/?"
                    index += 1
            elif pattern[index] == "*":
                regex += "[^/]*"
                index += 1
            elif pattern[index] == "?":
                regex += "[^/]"
                index += 1
            else:
                regex += re.escape(pattern[index])
                index += 1
        return re.fullmatch(regex, candidate) is not None

    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.removeprefix("!").strip("/")
        if any(matches(pattern, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".tools/bin/helm",
        "tests/deploy/conftest.py",
        "tests/fixtures/pods/x.log",
        "benchmarks/run.py",
        "artifacts/screenshot.png",
        "tailrace.db",
        "collector/tailrace/tailrace.db-wal",
        "collector/tailrace/__pycache__/cli.cpython-311.pyc",
        ".env",
        "collector/.env",
        "deploy/helm/tailrace/values.yaml",
        "server.key",
        ".venv/bin/python",
    ],
)
def test_build_context_leaves_out(dockerignore: list[str], path: str) -> None:
    assert dockerignore_excludes(dockerignore, path)


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "README.md",
        "collector/tailrace/cli.py",
        "collector/tailrace/wire/v1/ingest.proto",
        "operator/tailrace_operator/sidecar.py",
    ],
)
def test_build_context_keeps_what_the_wheel_is_built_from(
    dockerignore: list[str], path: str
) -> None:
    assert not dockerignore_excludes(dockerignore, path)


def build_context(dockerignore: list[str], destination: Path) -> None:
    """Copy what `docker build .` would send, per .dockerignore, into destination."""
    for top in REPO.iterdir():
        # An excluded folder can hold files to send only through a `!` pattern naming it.
        re_included = any(pattern.startswith(f"!{top.name}") for pattern in dockerignore)
        if top.is_dir() and dockerignore_excludes(dockerignore, top.name) and not re_included:
            continue
        files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for path in files:
            relative = path.relative_to(REPO).as_posix()
            if not dockerignore_excludes(dockerignore, relative):
                target = destination / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)


def test_build_context_alone_builds_the_tailrace_wheel(
    dockerignore: list[str], tmp_path: Path
) -> None:
    """The builder stage's `pip wheel .`, run on exactly the files the build context holds."""
    context = tmp_path / "context"
    build_context(dockerignore, context)
    sent = {path.relative_to(context).as_posix() for path in context.rglob("*") if path.is_file()}
    assert "pyproject.toml" in sent
    assert not any(path.startswith(("tests/", ".git/", "deploy/")) for path in sent)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "wheels"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "wheels").glob("tailrace-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        assert "tailrace = tailrace.cli:main" in archive.read(entry_points).decode()
    assert "tailrace/cli.py" in names
    assert "tailrace_operator/webhook.py" in names
    assert "tailrace/wire/v1/ingest.proto" in names
