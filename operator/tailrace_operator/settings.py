"""Typed settings of `tailrace operator`, built once by the CLI from flags and passed in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tailrace import conventions


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    # http(s)://host:port of the server's HTTP API, where the control API lives.
    server: str
    token: str = ""  # bearer token for the control API (TAILRACE_TOKEN)
    token_file: Path | None = None  # re-read on every request: projected tokens rotate
    # The admission webhook (kopf's webhook server).
    webhook_addr: str = f"0.0.0.0:{conventions.DEFAULT_WEBHOOK_PORT}"
    webhook_cert: Path | None = None
    webhook_key: Path | None = None
    webhook_insecure: bool = False  # plain HTTP; tests and local runs only
    # /healthz, /readyz and /metrics.
    health_addr: str = f"0.0.0.0:{conventions.DEFAULT_OPERATOR_HEALTH_PORT}"
    namespaces: tuple[str, ...] = ()  # empty: the whole cluster
    collector_image: str = "ghcr.io/tailrace/tailrace:0.1.0"
    # host:port of the gRPC ingest that injected collectors push to.
    agent_server: str = f"tailrace.tailrace.svc:{conventions.DEFAULT_GRPC_PORT}"
    # "" detects the API server's version at startup; "1.29.0" forces it (native sidecars need
    # 1.29 or later, where the SidecarContainers feature is on by default).
    kubernetes_version: str = ""
    # Leader election: kopf peering through a ClusterKopfPeering (or KopfPeering per namespace)
    # of this name. standalone skips peering: only for a single replica and for tests.
    peering_name: str = "tailrace"
    peering_priority: int | None = None  # None: random, so that replicas never tie
    standalone: bool = False
    status_interval_s: float = 30.0  # how often status is refreshed from the server's stats
    retry_backoff_s: float = 10.0  # delay before retrying when the server is unreachable
    delete_retries: int = 30  # then a deleted workload is released even if the server never answers
    request_timeout_s: float = 10.0
    # Collector container resources when the workload does not say.
    collector_cpu_request: str = "20m"
    collector_memory_request: str = "32Mi"
    collector_memory_limit: str = "128Mi"
    # Audience of the projected service-account token the collector authenticates ingest with.
    ingest_token_audience: str = "tailrace"
