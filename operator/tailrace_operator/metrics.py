"""The operator's Prometheus metrics, all on one registry passed in (never the global one)."""

from __future__ import annotations

from dataclasses import dataclass

import prometheus_client

from tailrace import conventions

PREFIX = f"{conventions.METRICS_PREFIX}_operator"


@dataclass(frozen=True, slots=True)
class OperatorMetrics:
    registry: prometheus_client.CollectorRegistry
    reconciles: prometheus_client.Counter
    injections: prometheus_client.Counter
    webhook_duration: prometheus_client.Histogram
    errors: prometheus_client.Counter
    pod_mirrors: prometheus_client.Counter
    control_requests: prometheus_client.Counter


def create(registry: prometheus_client.CollectorRegistry) -> OperatorMetrics:
    return OperatorMetrics(
        registry=registry,
        reconciles=prometheus_client.Counter(
            f"{PREFIX}_reconciles_total",
            "Workload reconciliations by kind and outcome (ok, invalid, unreachable, rejected).",
            ["kind", "outcome"],
            registry=registry,
        ),
        injections=prometheus_client.Counter(
            f"{PREFIX}_injections_total",
            "Admission reviews of pods by outcome (injected, not_selected, opted_out, "
            "already_injected, node_mode, pod_security).",
            ["outcome"],
            registry=registry,
        ),
        webhook_duration=prometheus_client.Histogram(
            f"{PREFIX}_webhook_duration_seconds",
            "Time spent deciding and building one admission patch.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        ),
        errors=prometheus_client.Counter(
            f"{PREFIX}_errors_total",
            "Errors by where they happened and why.",
            ["where", "reason"],
            registry=registry,
        ),
        pod_mirrors=prometheus_client.Counter(
            f"{PREFIX}_pod_mirrors_total",
            "Pods and pod Events mirrored to the server, by action and outcome.",
            ["action", "outcome"],
            registry=registry,
        ),
        control_requests=prometheus_client.Counter(
            f"{PREFIX}_control_requests_total",
            "Requests to the server's control API by method and status code.",
            ["method", "code"],
            registry=registry,
        ),
    )
