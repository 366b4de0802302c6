"""The mutating admission webhook that injects the collector into selected pods.

kopf serves it at `POST /tailrace-inject-collector` on its webhook server. The decision is made
here (is the pod selected, opted out, in node mode, in a Pod Security namespace that forbids
hostPath?), the patch itself comes from the pure `sidecar` module. A pod that is not injected is
always allowed: the MutatingWebhookConfiguration uses failurePolicy Ignore, so a Tailrace outage
never blocks a deploy either.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from tailrace_operator import context, resources, sidecar

logger = logging.getLogger(__name__)

HANDLER_ID = "tailrace-inject-collector"
WEBHOOK_PATH = f"/{HANDLER_ID}"


def register(registry: kopf.OperatorRegistry, ctx: context.OperatorContext) -> None:
    @kopf.on.mutate(
        "",
        "v1",
        "pods",
        id=HANDLER_ID,
        operations=["CREATE"],
        ignore_failures=True,
        side_effects=False,
        registry=registry,
    )
    async def inject_collector(
        body: kopf.Body, patch: kopf.Patch, warnings: list[str], **kwargs: Any
    ) -> None:
        started = time.perf_counter()
        try:
            outcome, ops, warning = decide(ctx, dict(body), kwargs)
        finally:
            ctx.metrics.webhook_duration.observe(time.perf_counter() - started)
        ctx.metrics.injections.labels(outcome=outcome).inc()
        if warning:
            warnings.append(warning)
        if ops:

            def apply(raw: kopf.RawBody) -> None:
                patched = sidecar.apply_patch(raw, ops)
                # kopf diffs the body before and after this function into the JSONPatch it returns.
                raw.clear()  # type: ignore[attr-defined]
                raw.update(patched)  # type: ignore[typeddict-item]

            patch.fns.append(apply)


def decide(
    ctx: context.OperatorContext, pod: Mapping[str, Any], indices: Mapping[str, Any]
) -> tuple[str, list[sidecar.JSONPatchOp], str]:
    """(outcome for the metrics, patch operations, admission warning) for one pod."""
    metadata = pod.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "")
    labels = metadata.get("labels") or {}
    selected = resources.selecting(context.workloads_in(indices, namespace), labels)
    if not selected:
        return "not_selected", [], ""
    workload = selected[0]
    if sidecar.is_opted_out(pod):
        return "opted_out", [], ""
    if sidecar.is_injected(pod):
        return "already_injected", [], ""
    if workload.mode == "node":
        return "node_mode", [], ""
    level = context.pod_security_level(indices, namespace)
    if context.forbids_hostpath(level):
        return (
            "pod_security",
            [],
            f"tailrace: collector not injected: namespace {namespace} enforces Pod Security "
            f"{level!r}, which forbids hostPath; set collector.mode: node on {workload.label}",
        )
    config = sidecar_config(ctx, workload)
    warning = ""
    if len(selected) > 1:
        others = ", ".join(ref.label for ref in selected[1:])
        warning = (
            f"tailrace: pod is selected by several workloads; its collector reports to "
            f"{workload.label} (also selected by {others})"
        )
    return "injected", sidecar.injection_patch(pod, config), warning


def sidecar_config(
    ctx: context.OperatorContext, workload: resources.WorkloadRef
) -> sidecar.SidecarConfig:
    settings = ctx.settings
    wanted = workload.resources or {}
    requests: dict[str, str | int] = {
        "cpu": settings.collector_cpu_request,
        "memory": settings.collector_memory_request,
    }
    limits: dict[str, str | int] = {"memory": settings.collector_memory_limit}
    requests.update(wanted.get("requests") or {})
    limits.update(wanted.get("limits") or {})
    return sidecar.SidecarConfig(
        image=settings.collector_image,
        agent_server=settings.agent_server,
        workload=workload.label,
        native=ctx.native_sidecars,
        max_line_bytes=workload.max_line_bytes,
        on_overflow=workload.on_overflow,
        requests=requests,
        limits=limits,
        token_audience=settings.ingest_token_audience,
    )
