"""`python -m tailrace.agent`: the agent without the `tailrace` CLI (tests and debugging)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tailrace import conventions
from tailrace.agent import jsonlog, runner
from tailrace.settings import AgentSettings, LinePolicy


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tailrace.agent")
    parser.add_argument("--pods-dir", type=Path, required=True)
    parser.add_argument("--server", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--node", default="")
    parser.add_argument("--pod-uid", default="")
    parser.add_argument("--workload", default="")
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--max-line-bytes", type=int, default=conventions.DEFAULT_MAX_LINE_BYTES)
    parser.add_argument("--on-overflow", choices=conventions.OVERFLOW_POLICIES, default="truncate")
    parser.add_argument("--metrics-addr", default="")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--memory-buffer-bytes", type=int, default=8 * 1024 * 1024)
    parser.add_argument("--spool-max-bytes", type=int, default=512 * 1024 * 1024)
    parser.add_argument("--partial-timeout", type=float, default=5.0)
    parser.add_argument("--drain-timeout", type=float, default=20.0)
    args = parser.parse_args(argv)
    jsonlog.configure(args.log_level)
    settings = AgentSettings(
        pods_dir=args.pods_dir,
        server=args.server,
        state_dir=args.state_dir,
        node=args.node,
        only_pod_uid=args.pod_uid,
        workload=args.workload,
        token_file=args.token_file,
        line_policy=LinePolicy(args.max_line_bytes, args.on_overflow),
        metrics_addr=args.metrics_addr,
        memory_buffer_bytes=args.memory_buffer_bytes,
        spool_max_bytes=args.spool_max_bytes,
        partial_timeout_s=args.partial_timeout,
        drain_timeout_s=args.drain_timeout,
    )
    return runner.run(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
