"""Pods that some workload selects, and the Events about them, mirrored to the server.

The server turns pod state changes into system log records and execution events (scheduled,
started, restarted, OOMKilled, terminated with exit code, deleted), so the operator only forwards
what Kubernetes says. Pods nobody selects are never sent. Kubernetes Events about selected pods go
to the control API extension `PUT /v1/namespaces/{ns}/pods/{pod}/events/{event}`
(docs/interfaces.md).

The indexes defined here are also read by the workload handlers (pod counts, Pod Security) and the
webhook (which workloads select a new pod).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from tailrace_operator import context, control, resources

logger = logging.getLogger(__name__)

# Only what the server needs of a pod: identity, labels, where it runs, its containers and status.
# Keeping the index small matters: it holds every pod of the watched namespaces.
_METADATA_KEYS = (
    "name",
    "namespace",
    "uid",
    "labels",
    "annotations",
    "ownerReferences",
    "creationTimestamp",
    "deletionTimestamp",
    "resourceVersion",
)
_CONTAINER_KEYS = ("name", "image", "restartPolicy")


def trimmed_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    metadata = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {key: metadata[key] for key in _METADATA_KEYS if key in metadata},
        "spec": {
            "nodeName": spec.get("nodeName"),
            "containers": [_container(c) for c in spec.get("containers") or []],
            "initContainers": [_container(c) for c in spec.get("initContainers") or []],
        },
        "status": dict(body.get("status") or {}),
    }


def _container(container: Mapping[str, Any]) -> dict[str, Any]:
    return {key: container[key] for key in _CONTAINER_KEYS if key in container}


def register(registry: kopf.OperatorRegistry, ctx: context.OperatorContext) -> None:
    @kopf.index("", "v1", "pods", id=context.PODS_INDEX, registry=registry)
    async def index_pod(body: kopf.Body, namespace: str | None, **_: Any) -> dict[str, Any]:
        return {namespace or "": trimmed_pod(body)}

    @kopf.index("", "v1", "namespaces", id=context.NAMESPACES_INDEX, registry=registry)
    async def index_namespace(name: str | None, labels: kopf.Labels, **_: Any) -> dict[str, str]:
        return {name or "": labels.get(context.POD_SECURITY_ENFORCE_LABEL, "")}

    @kopf.on.event("", "v1", "pods", id="tailrace-pod-mirror", registry=registry)
    async def mirror_pod(
        event: Mapping[str, Any], body: kopf.Body, namespace: str | None, name: str | None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        key = (namespace or "", name or "")
        labels = (body.get("metadata") or {}).get("labels") or {}
        selected = resources.selecting(context.workloads_in(kwargs, key[0]), labels)
        if not selected and key not in ctx.mirrored_pods:
            return
        action = "delete" if event.get("type") == "DELETED" or not selected else "put"
        try:
            if action == "delete":
                await ctx.control.delete_pod(*key)
                ctx.mirrored_pods.discard(key)
            else:
                await ctx.control.put_pod(*key, trimmed_pod(body))
                ctx.mirrored_pods.add(key)
        except control.ControlError as err:
            # Event handlers are not retried; the workload's status timer re-sends its pods once
            # the server answers again.
            ctx.metrics.pod_mirrors.labels(action=action, outcome="failed").inc()
            ctx.metrics.errors.labels(where="pod_mirror", reason=type(err).__name__).inc()
            logger.warning("could not mirror pod %s/%s: %s", namespace, name, err)
            return
        ctx.metrics.pod_mirrors.labels(action=action, outcome="ok").inc()

    def about_a_pod(body: kopf.Body, **_: Any) -> bool:
        return bool((body.get("involvedObject") or {}).get("kind") == "Pod")

    @kopf.on.event(
        "", "v1", "events", id="tailrace-pod-event-mirror", when=about_a_pod, registry=registry
    )
    async def mirror_pod_event(
        event: Mapping[str, Any], body: kopf.Body, namespace: str | None, name: str | None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        if event.get("type") == "DELETED" or ctx.event_extension_missing:
            return  # Events expire; that is not news about the pod
        involved = body.get("involvedObject") or {}
        pod_name = str(involved.get("name") or "")
        pod_namespace = str(involved.get("namespace") or namespace or "")
        pods = [
            pod
            for pod in context.pods_in(kwargs, pod_namespace)
            if (pod.get("metadata") or {}).get("name") == pod_name
        ]
        labels = (pods[0].get("metadata") or {}).get("labels") or {} if pods else {}
        if not pods or not resources.selecting(context.workloads_in(kwargs, pod_namespace), labels):
            return
        try:
            await ctx.control.put_pod_event(pod_namespace, pod_name, name or "", dict(body))
        except control.ExtensionMissing:
            # An older server: stop sending Events instead of failing on every one.
            ctx.event_extension_missing = True
            ctx.metrics.pod_mirrors.labels(action="event", outcome="unsupported").inc()
            logger.warning("the server does not accept pod Events; they are not mirrored")
            return
        except control.ControlError as err:
            ctx.metrics.pod_mirrors.labels(action="event", outcome="failed").inc()
            ctx.metrics.errors.labels(where="event_mirror", reason=type(err).__name__).inc()
            return
        ctx.metrics.pod_mirrors.labels(action="event", outcome="ok").inc()


async def put_selected_pods(
    ctx: context.OperatorContext, ref: resources.WorkloadRef, indices: Mapping[str, Any]
) -> int:
    """Send the pods a workload selects (for pods that existed before it); returns how many."""
    pods = context.selected_pods(context.pods_in(indices, ref.namespace), ref.selector)
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "")
        try:
            await ctx.control.put_pod(ref.namespace, name, pod)
        except control.ServerRejected as err:
            # One pod the server cannot take is that pod's problem, not the workload's.
            ctx.metrics.pod_mirrors.labels(action="put", outcome="rejected").inc()
            logger.warning("server rejected pod %s/%s: %s", ref.namespace, name, err)
            continue
        ctx.mirrored_pods.add((ref.namespace, name))
        ctx.metrics.pod_mirrors.labels(action="put", outcome="ok").inc()
    return len(pods)
