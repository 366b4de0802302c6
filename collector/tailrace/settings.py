"""Typed settings of each role, built once by the CLI from flags and environment and passed in.

Nothing here reads the environment or the command line itself: that happens in `tailrace.cli`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tailrace import conventions


@dataclass(frozen=True, slots=True)
class LinePolicy:
    """The line-limit policy applied to each reassembled line."""

    max_line_bytes: int = conventions.DEFAULT_MAX_LINE_BYTES
    on_overflow: conventions.OverflowPolicy = "truncate"

    def __post_init__(self) -> None:
        if (
            not conventions.MIN_MAX_LINE_BYTES
            <= self.max_line_bytes
            <= (conventions.MAX_MAX_LINE_BYTES)
        ):
            raise ValueError(
                f"maxLineBytes must be between {conventions.MIN_MAX_LINE_BYTES} and "
                f"{conventions.MAX_MAX_LINE_BYTES}, got {self.max_line_bytes}"
            )
        if self.on_overflow not in conventions.OVERFLOW_POLICIES:
            raise ValueError(
                f"onOverflow must be one of {', '.join(conventions.OVERFLOW_POLICIES)}, "
                f"got {self.on_overflow!r}"
            )


@dataclass(frozen=True, slots=True)
class AgentSettings:
    pods_dir: Path
    server: str  # host:port of the server's gRPC ingest
    state_dir: Path
    node: str = ""
    # Sidecar mode: only this pod's folder is tailed (from the downward API).
    only_pod_uid: str = ""
    workload: str = ""  # "<Kind>/<name>" when known (sidecar mode)
    token: str = ""  # ingest bearer token (the agent's service-account token)
    token_file: Path | None = None
    line_policy: LinePolicy = field(default_factory=LinePolicy)
    partial_timeout_s: float = 5.0
    batch_max_records: int = 4_000
    batch_max_bytes: int = 1024 * 1024
    batch_max_wait_s: float = 0.2
    memory_buffer_bytes: int = 8 * 1024 * 1024
    spool_max_bytes: int = 512 * 1024 * 1024
    poll_interval_s: float = 0.25
    metrics_addr: str = f"127.0.0.1:{conventions.DEFAULT_AGENT_METRICS_PORT}"
    json_level_field: str = "level"
    json_message_field: str = "msg"
    json_execution_field: str = "executionId"
    execution_id: str = ""  # from the pod label, sidecar mode
    # SIGTERM: time to push what was read before exiting (Kubernetes' default grace is 30 s).
    drain_timeout_s: float = 20.0


@dataclass(frozen=True, slots=True)
class ServerSettings:
    store_url: str  # sqlite:///path | sqlite:///:memory: | postgresql://...
    http_addr: str = f"127.0.0.1:{conventions.DEFAULT_HTTP_PORT}"
    grpc_addr: str = f"127.0.0.1:{conventions.DEFAULT_GRPC_PORT}"
    insecure: bool = False  # allow a non-loopback bind without auth
    tokens_file: Path | None = None  # static bearer tokens (see server.auth)
    ingest_tokens_file: Path | None = None
    kubernetes_auth: bool = False  # TokenReview + SubjectAccessReview in a cluster
    ingest_service_accounts: tuple[str, ...] = ()  # with kubernetes_auth: who may ingest
    cursor_secret: bytes = b""  # signs cursors; random per process when empty
    rate_limit_per_s: float = 50.0
    rate_limit_burst: int = 100
    retention_interval_s: float = 60.0
    max_request_bytes: int = 8 * 1024 * 1024
    ui: bool = True
    # Live tail: heartbeat period, shared ring buffer, and per-follower queue before cut-off.
    heartbeat_s: float = 15.0
    ring_lines: int = 50_000
    ring_bytes: int = 32 * 1024 * 1024
    follower_queue_records: int = 10_000
    # Compatibility surfaces to mount (names in tailrace.server.surfaces.SURFACES); None = all.
    surfaces: tuple[str, ...] | None = None
