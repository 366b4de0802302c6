"""What every handler needs, built once by the runner and captured by the handlers it registers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tailrace import conventions
from tailrace_operator import control, metrics, resources, settings

# kopf index ids; kopf passes each index to every handler as a keyword argument of that name.
FUNCTIONS_INDEX = "tailrace_functions"
PIPELINES_INDEX = "tailrace_pipelines"
PODS_INDEX = "tailrace_pods"
NAMESPACES_INDEX = "tailrace_namespaces"
WORKLOAD_INDEXES: dict[conventions.WorkloadKind, str] = {
    "Function": FUNCTIONS_INDEX,
    "Pipeline": PIPELINES_INDEX,
}

# Namespace label of Pod Security admission; baseline and restricted forbid hostPath volumes.
POD_SECURITY_ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
HOSTPATH_FORBIDDING_LEVELS = ("baseline", "restricted")


@dataclass(slots=True)
class OperatorContext:
    settings: settings.OperatorSettings
    control: control.ControlClient
    metrics: metrics.OperatorMetrics
    # Decided at startup from settings.kubernetes_version or the API server's /version.
    native_sidecars: bool = False
    kubernetes_version: str = ""
    event_extension_missing: bool = False
    # (namespace, name) of pods sent to the server, so a pod that stops being selected (its labels
    # or the workloads changed) is withdrawn instead of lingering there.
    mirrored_pods: set[tuple[str, str]] = field(default_factory=set)


def index_values(indices: Mapping[str, Any], index_id: str, key: str) -> list[Any]:
    """All values kopf collected under one key of one index (empty when none)."""
    index = indices.get(index_id)
    if index is None:
        return []
    store = index.get(key)
    return list(store) if store is not None else []


def workloads_in(indices: Mapping[str, Any], namespace: str) -> list[resources.WorkloadRef]:
    found: list[resources.WorkloadRef] = []
    for index_id in WORKLOAD_INDEXES.values():
        found += index_values(indices, index_id, namespace)
    return found


def pods_in(indices: Mapping[str, Any], namespace: str) -> list[dict[str, Any]]:
    return index_values(indices, PODS_INDEX, namespace)


def pod_security_level(indices: Mapping[str, Any], namespace: str) -> str:
    levels = index_values(indices, NAMESPACES_INDEX, namespace)
    return str(levels[0]) if levels else ""


def forbids_hostpath(level: str) -> bool:
    return level in HOSTPATH_FORBIDDING_LEVELS


def selected_pods(
    pods: Iterable[Mapping[str, Any]], selector: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    return [
        pod
        for pod in pods
        if resources.selector_matches(selector, (pod.get("metadata") or {}).get("labels") or {})
    ]
