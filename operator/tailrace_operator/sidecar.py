"""The collector injection as a pure function: a pod and a config in, RFC 6902 operations out.

No kopf here, so the exact patch can be tested on plain dicts and validated against the Kubernetes
schema. The webhook decides *whether* to inject (selection, opt-out, Pod Security, node mode); this
module decides *what* the injected pod looks like, and never injects twice.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tailrace import conventions

STATE_DIR = "/var/lib/tailrace"
TOKEN_DIR = "/var/run/secrets/tailrace"
LOG_VOLUME = "tailrace-pods-log"
STATE_VOLUME = "tailrace-state"
TOKEN_VOLUME = "tailrace-token"
# A fixed non-root uid; group 0 because kubelet writes container logs 0640 root:root.
COLLECTOR_UID = 65532
NATIVE_SIDECAR_MINOR = 29  # SidecarContainers is on by default from Kubernetes 1.29

JSONPatchOp = dict[str, Any]


@dataclass(frozen=True, slots=True)
class SidecarConfig:
    image: str
    agent_server: str  # host:port of the gRPC ingest
    workload: str  # "Kind/name"
    native: bool  # an init container with restartPolicy Always (Kubernetes >= 1.29)
    max_line_bytes: int = conventions.DEFAULT_MAX_LINE_BYTES
    on_overflow: conventions.OverflowPolicy = "truncate"
    requests: Mapping[str, str | int] = field(
        default_factory=lambda: {"cpu": "20m", "memory": "32Mi"}
    )
    limits: Mapping[str, str | int] = field(default_factory=lambda: {"memory": "128Mi"})
    token_audience: str = "tailrace"
    state_size_limit: str = "256Mi"


def native_sidecars_supported(version: str) -> bool:
    """Whether a Kubernetes version string (v1.29.3, 1.31.0+k3s1, 1.30) has native sidecars."""
    found = re.match(r"^v?(\d+)\.(\d+)", version.strip())
    if found is None:
        return False
    major, minor = int(found.group(1)), int(found.group(2))
    return (major, minor) >= (1, NATIVE_SIDECAR_MINOR)


def is_injected(pod: Mapping[str, Any]) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    if annotations.get(conventions.INJECTED_ANNOTATION) == "true":
        return True
    spec = pod.get("spec") or {}
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return any(c.get("name") == conventions.COLLECTOR_CONTAINER for c in containers)


def is_opted_out(pod: Mapping[str, Any]) -> bool:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(conventions.INJECT_ANNOTATION, "")).lower() == "false"


def injection_patch(pod: Mapping[str, Any], config: SidecarConfig) -> list[JSONPatchOp]:
    """The operations that add the collector to this pod; empty if it has one or opted out."""
    if is_injected(pod) or is_opted_out(pod):
        return []
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ops: list[JSONPatchOp] = []
    if not metadata.get("annotations"):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    for key, value in (
        (conventions.INJECTED_ANNOTATION, "true"),
        (conventions.WORKLOAD_ANNOTATION, config.workload),
    ):
        ops.append({"op": "add", "path": f"/metadata/annotations/{_escape(key)}", "value": value})

    container = collector_container(config)
    if config.native:
        # First among the init containers, so it also collects the other init containers' logs
        # (Deno's build logs) and starts before them.
        container["restartPolicy"] = "Always"
        if spec.get("initContainers"):
            ops.append({"op": "add", "path": "/spec/initContainers/0", "value": container})
        else:
            ops.append({"op": "add", "path": "/spec/initContainers", "value": [container]})
    else:
        ops.append({"op": "add", "path": "/spec/containers/-", "value": container})

    volumes = collector_volumes(config)
    if spec.get("volumes"):
        ops += [{"op": "add", "path": "/spec/volumes/-", "value": volume} for volume in volumes]
    else:
        ops.append({"op": "add", "path": "/spec/volumes", "value": volumes})
    return ops


def collector_container(config: SidecarConfig) -> dict[str, Any]:
    def field_env(name: str, path: str) -> dict[str, Any]:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}

    return {
        "name": conventions.COLLECTOR_CONTAINER,
        "image": config.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [
            "tailrace",
            "agent",
            "--pods-dir",
            conventions.PODS_LOG_DIR,
            "--server",
            config.agent_server,
            "--state-dir",
            STATE_DIR,
            "--max-line-bytes",
            str(config.max_line_bytes),
            "--on-overflow",
            config.on_overflow,
            "--token-file",
            f"{TOKEN_DIR}/token",
        ],
        "env": [
            field_env(conventions.ENV_POD_NAME, "metadata.name"),
            field_env(conventions.ENV_POD_NAMESPACE, "metadata.namespace"),
            field_env(conventions.ENV_POD_UID, "metadata.uid"),
            field_env(conventions.ENV_NODE_NAME, "spec.nodeName"),
            {"name": conventions.ENV_WORKLOAD, "value": config.workload},
        ],
        "resources": {"requests": dict(config.requests), "limits": dict(config.limits)},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": COLLECTOR_UID,
            "runAsGroup": 0,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": LOG_VOLUME, "mountPath": conventions.PODS_LOG_DIR, "readOnly": True},
            {"name": STATE_VOLUME, "mountPath": STATE_DIR},
            {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def collector_volumes(config: SidecarConfig) -> list[dict[str, Any]]:
    return [
        {"name": LOG_VOLUME, "hostPath": {"path": conventions.PODS_LOG_DIR, "type": "Directory"}},
        {"name": STATE_VOLUME, "emptyDir": {"sizeLimit": config.state_size_limit}},
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": config.token_audience,
                            "expirationSeconds": 3600,
                            "path": "token",
                        }
                    }
                ]
            },
        },
    ]


def apply_patch(document: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Apply the add/replace/remove operations this module emits (a subset of RFC 6902)."""
    result: dict[str, Any] = copy.deepcopy(dict(document))
    for op in ops:
        *parents, last = [_unescape(part) for part in op["path"].split("/")[1:]]
        target: Any = result
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        kind = op["op"]
        if kind == "remove":
            del target[int(last) if isinstance(target, list) else last]
        elif isinstance(target, list):
            value = copy.deepcopy(op["value"])
            if last == "-":
                target.append(value)
            elif kind == "add":
                target.insert(int(last), value)
            else:
                target[int(last)] = value
        elif kind in ("add", "replace"):
            target[last] = copy.deepcopy(op["value"])
        else:
            raise ValueError(f"unsupported JSON patch operation {kind!r}")
    return result


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")
