"""Names and defaults that the agent, the server and the operator must agree on.

Everything here is a constant: a label, an annotation, a path, a port, a limit. Changing one is a
wire-compatible change only if every component is upgraded together, so they live in one place.
"""

from __future__ import annotations

from typing import Final, Literal

API_GROUP: Final = "tailrace.dev"
API_VERSION: Final = "v1alpha1"

WorkloadKind = Literal["Function", "Pipeline"]
WORKLOAD_KINDS: Final[tuple[WorkloadKind, ...]] = ("Function", "Pipeline")
# URL segment (plural, lower case) for each kind, as in Kubernetes resource names.
KIND_PLURALS: Final[dict[WorkloadKind, str]] = {"Function": "functions", "Pipeline": "pipelines"}
PLURAL_KINDS: Final[dict[str, WorkloadKind]] = {v: k for k, v in KIND_PLURALS.items()}

# Line limit: containerd splits lines over 16 KiB into P records; Poly documents the same limit.
DEFAULT_MAX_LINE_BYTES: Final = 16_384
MIN_MAX_LINE_BYTES: Final = 1_024
MAX_MAX_LINE_BYTES: Final = 1_048_576
OverflowPolicy = Literal["truncate", "drop", "split"]
OVERFLOW_POLICIES: Final[tuple[OverflowPolicy, ...]] = ("truncate", "drop", "split")

Stream = Literal["stdout", "stderr"]
LEVELS: Final = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
LEVEL_RANK: Final[dict[str, int]] = {name: rank for rank, name in enumerate(LEVELS)}

# Labels and annotations on pods.
EXECUTION_ID_LABEL: Final = "tailrace.dev/execution-id"
INJECT_ANNOTATION: Final = "tailrace.dev/inject"  # "false" opts a pod out of injection
INJECTED_ANNOTATION: Final = "tailrace.dev/injected"  # set by the webhook; makes it idempotent
WORKLOAD_ANNOTATION: Final = "tailrace.dev/workload"  # "<Kind>/<name>", set by the webhook
COLLECTOR_CONTAINER: Final = "tailrace-collector"

# Where kubelet writes container logs on a node.
PODS_LOG_DIR: Final = "/var/log/pods"

# Default listening ports.
DEFAULT_HTTP_PORT: Final = 8080
DEFAULT_GRPC_PORT: Final = 7070
DEFAULT_AGENT_METRICS_PORT: Final = 9102
DEFAULT_OPERATOR_HEALTH_PORT: Final = 8081
DEFAULT_WEBHOOK_PORT: Final = 9443

# Authentication: the agent's ingest token and the API bearer token travel in this header.
AUTHORIZATION_HEADER: Final = "authorization"

# Environment variables read by the CLI (and set by the chart and the webhook).
ENV_SERVER: Final = "TAILRACE_SERVER"
ENV_STORE_URL: Final = "TAILRACE_STORE_URL"
ENV_TOKEN: Final = "TAILRACE_TOKEN"
ENV_INGEST_TOKEN: Final = "TAILRACE_INGEST_TOKEN"
ENV_POD_NAME: Final = "TAILRACE_POD_NAME"
ENV_POD_NAMESPACE: Final = "TAILRACE_POD_NAMESPACE"
ENV_POD_UID: Final = "TAILRACE_POD_UID"
ENV_NODE_NAME: Final = "TAILRACE_NODE_NAME"
ENV_WORKLOAD: Final = "TAILRACE_WORKLOAD"

NEXT_CURSOR_HEADER: Final = "Tailrace-Next-Cursor"

METRICS_PREFIX: Final = "tailrace"
