"""`tailrace`: one entry point for every role.

The CLI is the one module allowed to reach the agent, the server and the operator; each role is
imported only when it runs, so `tailrace agent` never loads the web stack and `--help` is fast.
Flags are documented in docs/interfaces.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import orjson

from tailrace import __version__, conventions, settings

Handler = Callable[[argparse.Namespace], int]


def _add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default=os.environ.get("TAILRACE_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="level of Tailrace's own logs (default INFO; env TAILRACE_LOG_LEVEL)",
    )


class _JsonFormatter(logging.Formatter):
    """One JSON object per line, so a cluster's log pipeline (ours included) can parse it."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = _JsonFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Each HTTP request a client makes is not news at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _server_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("server", help="run the server: gRPC ingest, storage, HTTP APIs, metrics")
    p.add_argument(
        "--store",
        # From the environment so a PostgreSQL URL with a password stays out of `ps` output.
        default=os.environ.get(conventions.ENV_STORE_URL, "sqlite:///./tailrace.db"),
        help="sqlite:///PATH (default ./tailrace.db), sqlite:///:memory: or postgresql://... "
        "(env TAILRACE_STORE_URL)",
    )
    p.add_argument("--http-addr", default=f"127.0.0.1:{conventions.DEFAULT_HTTP_PORT}")
    p.add_argument("--grpc-addr", default=f"127.0.0.1:{conventions.DEFAULT_GRPC_PORT}")
    p.add_argument("--tokens-file", type=Path, help="bearer tokens allowed to read logs")
    p.add_argument("--ingest-tokens-file", type=Path, help="tokens allowed to ingest and control")
    p.add_argument(
        "--kubernetes-auth",
        action="store_true",
        help="check bearer tokens with TokenReview + SubjectAccessReview (in a cluster)",
    )
    p.add_argument(
        "--ingest-service-account",
        action="append",
        default=[],
        metavar="system:serviceaccount:NS:NAME",
        help="with --kubernetes-auth: service accounts allowed to ingest (repeatable)",
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="allow binding a non-loopback address with no authentication",
    )
    p.add_argument("--cursor-secret-file", type=Path, help="key that signs paging cursors")
    _add_log_level(p)
    p.set_defaults(handler=_run_server)


def _run_server(args: argparse.Namespace) -> int:
    from tailrace.server import runner

    secret = args.cursor_secret_file.read_bytes().strip() if args.cursor_secret_file else b""
    server_settings = settings.ServerSettings(
        store_url=args.store,
        http_addr=args.http_addr,
        grpc_addr=args.grpc_addr,
        insecure=args.insecure,
        tokens_file=args.tokens_file,
        ingest_tokens_file=args.ingest_tokens_file,
        kubernetes_auth=args.kubernetes_auth,
        ingest_service_accounts=tuple(args.ingest_service_account),
        cursor_secret=secret,
    )
    return runner.run(server_settings)


def _agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = os.environ.get
    p = sub.add_parser("agent", help="run the collector agent: tail pod log files, forward them")
    p.add_argument("--pods-dir", type=Path, default=Path(conventions.PODS_LOG_DIR))
    p.add_argument(
        "--server",
        default=env(conventions.ENV_SERVER, f"127.0.0.1:{conventions.DEFAULT_GRPC_PORT}"),
        help="host:port of the server's gRPC ingest (env TAILRACE_SERVER)",
    )
    p.add_argument("--state-dir", type=Path, required=True, help="where checkpoints are kept")
    p.add_argument("--node", default=env(conventions.ENV_NODE_NAME, ""))
    p.add_argument(
        "--pod-uid",
        default=env(conventions.ENV_POD_UID, ""),
        help="sidecar mode: tail only this pod's folder (env TAILRACE_POD_UID)",
    )
    p.add_argument("--workload", default=env(conventions.ENV_WORKLOAD, ""), help="Kind/name")
    p.add_argument("--token-file", type=Path, help="ingest token (else env TAILRACE_INGEST_TOKEN)")
    p.add_argument("--max-line-bytes", type=int, default=conventions.DEFAULT_MAX_LINE_BYTES)
    p.add_argument("--on-overflow", choices=conventions.OVERFLOW_POLICIES, default="truncate")
    p.add_argument("--metrics-addr", default=f"127.0.0.1:{conventions.DEFAULT_AGENT_METRICS_PORT}")
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=20.0,
        help="seconds SIGTERM may spend sending what was read (keep below the pod's grace period)",
    )
    _add_log_level(p)
    p.set_defaults(handler=_run_agent)


def _run_agent(args: argparse.Namespace) -> int:
    from tailrace.agent import runner

    try:
        policy = settings.LinePolicy(args.max_line_bytes, args.on_overflow)
    except ValueError as err:
        print(f"tailrace agent: {err}", file=sys.stderr)
        return 2
    agent_settings = settings.AgentSettings(
        pods_dir=args.pods_dir,
        server=args.server,
        state_dir=args.state_dir,
        node=args.node,
        only_pod_uid=args.pod_uid,
        workload=args.workload,
        token=os.environ.get(conventions.ENV_INGEST_TOKEN, ""),
        token_file=args.token_file,
        line_policy=policy,
        metrics_addr=args.metrics_addr,
        drain_timeout_s=args.drain_timeout,
    )
    return runner.run(agent_settings)


def _operator_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("operator", help="run the Kubernetes operator and its admission webhook")
    p.add_argument("--server", required=True, help="http://HOST:PORT of the Tailrace server")
    p.add_argument("--token-file", type=Path, help="control-API token (else env TAILRACE_TOKEN)")
    p.add_argument("--webhook-addr", default=f"0.0.0.0:{conventions.DEFAULT_WEBHOOK_PORT}")
    p.add_argument("--webhook-cert", type=Path)
    p.add_argument("--webhook-key", type=Path)
    p.add_argument("--webhook-insecure", action="store_true", help="plain HTTP webhook (tests)")
    p.add_argument("--health-addr", default=f"0.0.0.0:{conventions.DEFAULT_OPERATOR_HEALTH_PORT}")
    p.add_argument("--namespace", action="append", default=[], help="watch only these (repeat)")
    p.add_argument("--collector-image", help="image of the injected collector")
    p.add_argument(
        "--agent-server",
        default=f"tailrace-server:{conventions.DEFAULT_GRPC_PORT}",
        help="gRPC address injected collectors push to",
    )
    p.add_argument(
        "--kubernetes-version",
        default="",
        help="e.g. 1.30: picks native sidecars on 1.29+ (default: asked of the API server)",
    )
    p.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: for a single replica in a cluster without kopf's peering CRDs",
    )
    p.add_argument("--peering-name", default="tailrace", help="kopf peering object to join")
    _add_log_level(p)
    p.set_defaults(handler=_run_operator)


def _run_operator(args: argparse.Namespace) -> int:
    from tailrace_operator import runner
    from tailrace_operator import settings as operator_settings

    optional = {"collector_image": args.collector_image} if args.collector_image else {}
    return runner.run(
        operator_settings.OperatorSettings(
            server=args.server,
            # The file is re-read on every request: projected service-account tokens rotate.
            token=os.environ.get(conventions.ENV_TOKEN, ""),
            token_file=args.token_file,
            webhook_addr=args.webhook_addr,
            webhook_cert=args.webhook_cert,
            webhook_key=args.webhook_key,
            webhook_insecure=args.webhook_insecure,
            health_addr=args.health_addr,
            namespaces=tuple(args.namespace),
            agent_server=args.agent_server,
            kubernetes_version=args.kubernetes_version,
            standalone=args.standalone,
            peering_name=args.peering_name,
            **optional,
        )
    )


def _up_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "up", help="server + agent + a demo workload on the embedded store, no cluster needed"
    )
    p.add_argument("--http-port", type=int, default=conventions.DEFAULT_HTTP_PORT)
    p.add_argument("--grpc-port", type=int, default=conventions.DEFAULT_GRPC_PORT)
    p.add_argument("--data-dir", type=Path, help="keep data here (default: a temporary folder)")
    p.add_argument("--lines-per-second", type=float, default=2.0, help="demo log rate")
    p.set_defaults(handler=_run_up)


def _run_up(args: argparse.Namespace) -> int:
    from tailrace import up

    return up.run(
        up.UpOptions(
            http_port=args.http_port,
            grpc_port=args.grpc_port,
            data_dir=args.data_dir,
            lines_per_second=args.lines_per_second,
        )
    )


def _logs_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("logs", help="print or follow logs, like kubectl logs", add_help=False)
    p.set_defaults(handler=_run_logs)


def _run_logs(args: argparse.Namespace) -> int:
    from tailrace import logs_client

    return logs_client.main(args.rest)


def _bench_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("bench", help="benchmarks: `tailrace bench agent|server --help`")
    p.add_argument("target", choices=["agent", "server"])
    p.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    if args.target == "agent":
        from tailrace.bench import agent as bench_agent

        return bench_agent.main(args.rest)
    from tailrace.bench import server as bench_server

    return bench_server.main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tailrace",
        description="Kubernetes log collection for serverless functions and streaming pipelines.",
    )
    parser.add_argument("--version", action="version", version=f"tailrace {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _up_parser,
        _server_parser,
        _agent_parser,
        _operator_parser,
        _logs_parser,
        _bench_parser,
    ):
        add(sub)
    return parser


# Sub-commands whose remaining arguments belong to another parser (the client, the benchmarks).
_PASS_THROUGH = {"logs", "bench"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in _PASS_THROUGH:
        head = argv[:2] if argv[0] == "bench" and len(argv) > 1 else argv[:1]
        args = parser.parse_args(head)
        args.rest = argv[len(head) :]
    else:
        args = parser.parse_args(argv)
        args.rest = []
    _configure_logging(getattr(args, "log_level", "INFO"))
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
