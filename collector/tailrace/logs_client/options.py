"""The command line of `tailrace logs`: kubectl's and stern's flags, parsed into `Options`."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from typing import Literal

from tailrace.logs_client import failures

Output = Literal["text", "json", "wide"]
Colour = Literal["auto", "always", "never"]
TargetKind = Literal["functions", "pipelines", "pods"]

# The resource prefixes people type, as kubectl accepts `po/`, `pod/` and `pods/`.
_KIND_ALIASES: dict[str, TargetKind] = {
    "function": "functions",
    "functions": "functions",
    "fn": "functions",
    "pipeline": "pipelines",
    "pipelines": "pipelines",
    "pl": "pipelines",
    "pod": "pods",
    "pods": "pods",
    "po": "pods",
}
_SINGULAR: dict[TargetKind, str] = {
    "functions": "function",
    "pipelines": "pipeline",
    "pods": "pod",
}
# Go/Loki durations, as the server's `last` parameter takes them.
_DURATION = re.compile(r"^(\d+(ns|us|µs|ms|s|m|h|d|w))+$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    name: str

    @property
    def is_pod(self) -> bool:
        return self.kind == "pods"

    def __str__(self) -> str:
        return f"{_SINGULAR[self.kind]}/{self.name}"


@dataclass(frozen=True)
class Options:
    target: Target
    namespace: str | None  # None: the config context's namespace, else "default"
    follow: bool
    since: str | None  # a duration: the server's `last`
    since_time: str | None  # RFC3339: the server's `since`
    tail: int | None
    container: str | None
    timestamps: bool
    levels: str | None  # comma list, as the server's `level`
    grep: str | None  # the server's full-text `q`
    execution: str | None
    output: Output
    colour: Colour
    prefix: bool | None  # None: on for a workload (several pods), off for one pod
    server: str | None
    token: str | None
    config: str | None
    context: str | None
    page_size: int
    reconnect_for_s: float


def parse_target(text: str) -> Target:
    if "/" not in text:
        return Target("pods", text)  # kubectl: a bare name is a pod
    prefix, _, name = text.partition("/")
    kind = _KIND_ALIASES.get(prefix.lower())
    if kind is None or not name or "/" in name:
        raise failures.UsageError(
            f"cannot read {text!r}: expected function/NAME, pipeline/NAME or pod/NAME"
        )
    return Target(kind, name)


def parse_duration_seconds(text: str) -> float:
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    units |= {"d": 86400, "w": 604800}
    if not _DURATION.match(text):
        raise failures.UsageError(f"invalid duration {text!r}: expected e.g. 30s, 5m, 2h or 7d")
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(ns|us|µs|ms|s|m|h|d|w)", text))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tailrace logs",
        description="Print or follow the logs of a Function, a Pipeline or a pod.",
        epilog=(
            "The server and token come from --server/--token, else TAILRACE_SERVER/"
            "TAILRACE_TOKEN, else the current context of ~/.config/tailrace/config.yaml. "
            "Exit codes: 0 done, 1 server unreachable or failing, 2 bad usage or parameter, "
            "3 not found, 4 unauthorized or forbidden."
        ),
    )
    p.add_argument("target", metavar="function/NAME | pipeline/NAME | pod/NAME")
    p.add_argument("-n", "--namespace", help="namespace (default: the context's, else default)")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    p.add_argument("--since", metavar="DURATION", help="only lines newer than this, e.g. 5m, 2h")
    p.add_argument("--since-time", metavar="RFC3339", help="only lines at or after this time")
    p.add_argument("--tail", type=int, metavar="N", help="only the last N lines (-1: all)")
    p.add_argument("-c", "--container", help="only this container")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--level", metavar="LEVELS", help="only these levels, e.g. ERROR or WARN,ERROR")
    p.add_argument("--grep", metavar="TEXT", help="only lines matching this search (server-side)")
    p.add_argument("--execution", metavar="ID", help="only lines of this execution id")
    p.add_argument("-o", "--output", choices=["text", "json", "wide"], default="text")
    p.add_argument(
        "--color",
        "--colour",
        dest="colour",
        choices=["auto", "always", "never"],
        default="auto",
        help="colour by level and pod: auto = on a terminal unless NO_COLOR is set",
    )
    p.add_argument(
        "--prefix",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="prefix lines with pod and container (default: on for a function or pipeline)",
    )
    p.add_argument("--server", help="http(s)://HOST:PORT of the Tailrace server")
    p.add_argument("--token", help="bearer token")
    p.add_argument("--config", help="config file (default ~/.config/tailrace/config.yaml)")
    p.add_argument("--context", help="context of the config file to use")
    p.add_argument("--page-size", type=int, default=1000, help=argparse.SUPPRESS)
    p.add_argument(
        "--reconnect-for",
        default="5m",
        metavar="DURATION",
        help="with -f: how long to keep reconnecting to a lost server (default 5m)",
    )
    return p


def parse(argv: list[str]) -> Options:
    args = build_parser().parse_args(argv)
    if args.since is not None and args.since_time is not None:
        raise failures.UsageError("--since and --since-time cannot be used together")
    if args.since is not None:
        parse_duration_seconds(args.since)
    if args.since_time is not None and not _RFC3339.match(args.since_time):
        raise failures.UsageError(
            f"invalid --since-time {args.since_time!r}: expected RFC3339, e.g. 2024-05-01T12:00:00Z"
        )
    tail = args.tail
    if tail is not None and tail < -1:
        raise failures.UsageError("--tail must be -1 (all lines) or a number of lines")
    if not 1 <= args.page_size <= 5000:
        raise failures.UsageError("--page-size must be between 1 and 5000")
    return Options(
        target=parse_target(args.target),
        namespace=args.namespace,
        follow=args.follow,
        since=args.since,
        since_time=args.since_time,
        tail=None if tail == -1 else tail,
        container=args.container,
        timestamps=args.timestamps,
        levels=args.level,
        grep=args.grep,
        execution=args.execution,
        output=args.output,
        colour=args.colour,
        prefix=args.prefix,
        server=args.server,
        token=args.token,
        config=args.config,
        context=args.context,
        page_size=args.page_size,
        reconnect_for_s=parse_duration_seconds(args.reconnect_for),
    )
