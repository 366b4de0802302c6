"""Function and Pipeline handlers: register with the server, keep status, unregister on delete.

A bad spec is answered with conditions and a Warning Event, never with an exception, so kopf does
not retry it forever and the other workloads keep being served. An unreachable server is the one
temporary failure: kopf retries with backoff and the status says ServerReachable=False meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from tailrace import conventions
from tailrace_operator import context, control, pods, resources, status

logger = logging.getLogger(__name__)


def register(registry: kopf.OperatorRegistry, ctx: context.OperatorContext) -> None:
    for kind in conventions.WORKLOAD_KINDS:
        _register_kind(registry, ctx, kind)


def _register_kind(
    registry: kopf.OperatorRegistry, ctx: context.OperatorContext, kind: conventions.WorkloadKind
) -> None:
    plural = conventions.KIND_PLURALS[kind]
    resource = (conventions.API_GROUP, conventions.API_VERSION, plural)
    prefix = f"tailrace-{kind.lower()}"
    settings = ctx.settings

    @kopf.index(*resource, id=context.WORKLOAD_INDEXES[kind], registry=registry)
    async def index_workload(
        body: kopf.Body, namespace: str | None, **_: Any
    ) -> dict[str, resources.WorkloadRef]:
        return {namespace or "": resources.workload_ref(kind, body)}

    @kopf.on.resume(*resource, id=f"{prefix}-resume", registry=registry)
    @kopf.on.create(*resource, id=f"{prefix}-create", registry=registry)
    @kopf.on.update(*resource, id=f"{prefix}-update", registry=registry)
    async def reconcile(
        body: kopf.Body, patch: kopf.Patch, namespace: str | None, name: str | None, **kwargs: Any
    ) -> None:
        await _reconcile(ctx, kind, body, patch, namespace or "", name or "", kwargs)

    @kopf.timer(
        *resource,
        id=f"{prefix}-refresh-status",
        interval=settings.status_interval_s,
        initial_delay=settings.status_interval_s,
        registry=registry,
    )
    async def refresh(
        body: kopf.Body, patch: kopf.Patch, namespace: str | None, name: str | None, **kwargs: Any
    ) -> None:
        await _refresh(ctx, kind, body, patch, namespace or "", name or "", kwargs)

    @kopf.on.delete(
        *resource,
        id=f"{prefix}-unregister",
        retries=settings.delete_retries,
        backoff=settings.retry_backoff_s,
        registry=registry,
    )
    async def unregister(namespace: str | None, name: str | None, **_: Any) -> None:
        try:
            await ctx.control.delete_workload(kind, namespace or "", name or "")
        except control.ServerUnreachable as err:
            ctx.metrics.errors.labels(where="unregister", reason="unreachable").inc()
            raise kopf.TemporaryError(str(err), delay=settings.retry_backoff_s) from err
        except control.ServerRejected as err:
            # The server refuses to forget it (4xx other than 404): nothing a retry changes, and
            # holding the finalizer would block the namespace, so release it and say so.
            ctx.metrics.errors.labels(where="unregister", reason="rejected").inc()
            logger.warning("server refused to unregister %s %s/%s: %s", kind, namespace, name, err)


async def _reconcile(
    ctx: context.OperatorContext,
    kind: conventions.WorkloadKind,
    body: kopf.Body,
    patch: kopf.Patch,
    namespace: str,
    name: str,
    indices: Mapping[str, Any],
) -> None:
    spec = body.get("spec") or {}
    generation = (body.get("metadata") or {}).get("generation")
    existing = (body.get("status") or {}).get("conditions")
    now = status.now_rfc3339()

    problems = resources.validate_spec(spec)
    if problems:
        message = "; ".join(problems)
        invalid = status.Condition(status.SPEC_VALID, False, "InvalidSpec", message)
        not_ready = status.Condition(status.READY, False, "InvalidSpec", message)
        patch.status["phase"] = "Invalid"
        patch.status["observedGeneration"] = generation
        patch.status["conditions"] = status.merge_conditions(
            existing, [invalid, not_ready], generation=generation, now=now
        )
        kopf.warn(body, reason="InvalidSpec", message=message)
        ctx.metrics.reconciles.labels(kind=kind, outcome="invalid").inc()
        return

    ref = resources.workload_ref(kind, body)
    try:
        selected = await _register(ctx, body, ref, indices)
    except control.ServerUnreachable as err:
        _mark_unreachable(patch, existing, generation, now, err)
        ctx.metrics.reconciles.labels(kind=kind, outcome="unreachable").inc()
        raise kopf.TemporaryError(str(err), delay=ctx.settings.retry_backoff_s) from err
    except control.ServerRejected as err:
        message = f"the server rejected the {kind}: {err}"
        patch.status["phase"] = "Invalid"
        patch.status["observedGeneration"] = generation
        patch.status["conditions"] = status.merge_conditions(
            existing,
            [
                status.Condition(status.SPEC_VALID, False, "ServerRejected", message),
                status.Condition(status.SERVER_REACHABLE, True, "Registered", ""),
                status.Condition(status.READY, False, "ServerRejected", message),
            ],
            generation=generation,
            now=now,
        )
        kopf.warn(body, reason="ServerRejected", message=message)
        ctx.metrics.reconciles.labels(kind=kind, outcome="rejected").inc()
        return

    conditions = [
        status.Condition(status.SPEC_VALID, True, "Valid", ""),
        status.Condition(status.SERVER_REACHABLE, True, "Registered", "registered with the server"),
        _pods_condition(selected, ref),
        _injection_condition(ref, indices),
        status.Condition(status.READY, True, "Registered", ""),
    ]
    if not selected:
        kopf.event(
            body,
            type="Warning",
            reason="NoMatchingPods",
            message=f"selector {dict(ref.selector)} matches no pod in namespace {namespace}",
        )
    patch.status["phase"] = "Active"
    patch.status["observedGeneration"] = generation
    patch.status["pods"] = selected
    patch.status["conditions"] = status.merge_conditions(
        existing, conditions, generation=generation, now=now
    )
    ctx.metrics.reconciles.labels(kind=kind, outcome="ok").inc()


async def _refresh(
    ctx: context.OperatorContext,
    kind: conventions.WorkloadKind,
    body: kopf.Body,
    patch: kopf.Patch,
    namespace: str,
    name: str,
    indices: Mapping[str, Any],
) -> None:
    spec = body.get("spec") or {}
    if resources.validate_spec(spec):
        return  # the reconcile handler already said why; nothing is registered to refresh
    generation = (body.get("metadata") or {}).get("generation")
    current = body.get("status") or {}
    existing = current.get("conditions")
    now = status.now_rfc3339()
    ref = resources.workload_ref(kind, body)
    was_unreachable = any(
        c.get("type") == status.SERVER_REACHABLE and c.get("status") != "True"
        for c in existing or ()
    )
    try:
        if was_unreachable:
            # The server may have lost what it was told while it was away: tell it again.
            await _register(ctx, body, ref, indices)
        try:
            stats = await ctx.control.workload_stats(kind, namespace, name)
        except control.ServerRejected as err:
            if err.status_code != 404:
                raise
            await _register(ctx, body, ref, indices)
            stats = await ctx.control.workload_stats(kind, namespace, name)
    except control.ServerUnreachable as err:
        _mark_unreachable(patch, existing, generation, now, err)
        ctx.metrics.errors.labels(where="refresh", reason="unreachable").inc()
        return
    except control.ServerRejected as err:
        ctx.metrics.errors.labels(where="refresh", reason="rejected").inc()
        logger.warning("could not refresh %s %s/%s: %s", kind, namespace, name, err)
        return

    selected = len(context.selected_pods(context.pods_in(indices, namespace), ref.selector))
    patch.status.update(status.counters_from_stats(stats))
    patch.status["pods"] = selected
    patch.status["phase"] = "Active"
    patch.status["conditions"] = status.merge_conditions(
        existing,
        [
            status.Condition(status.SERVER_REACHABLE, True, "Registered", ""),
            _pods_condition(selected, ref),
            _injection_condition(ref, indices),
            status.Condition(status.READY, True, "Registered", ""),
        ],
        generation=current.get("observedGeneration", generation),
        now=now,
    )


def _mark_unreachable(
    patch: kopf.Patch,
    existing: Any,
    generation: int | None,
    now: str,
    err: control.ServerUnreachable,
) -> None:
    reason = "Unauthorized" if isinstance(err, control.ServerUnauthorized) else "ServerUnreachable"
    patch.status["phase"] = "Degraded"
    patch.status["conditions"] = status.merge_conditions(
        existing,
        [
            status.Condition(status.SERVER_REACHABLE, False, reason, str(err)),
            status.Condition(status.READY, False, reason, str(err)),
        ],
        generation=generation,
        now=now,
    )


def _pods_condition(selected: int, ref: resources.WorkloadRef) -> status.Condition:
    if selected:
        return status.Condition(status.PODS_SELECTED, True, "PodsFound", f"{selected} pod(s)")
    return status.Condition(
        status.PODS_SELECTED,
        False,
        "NoMatchingPods",
        f"selector {dict(ref.selector)} matches no pod in namespace {ref.namespace}",
    )


def _injection_condition(
    ref: resources.WorkloadRef, indices: Mapping[str, Any]
) -> status.Condition:
    if ref.mode == "node":
        return status.Condition(
            status.COLLECTOR_INJECTED,
            False,
            "NodeMode",
            "collector.mode is node: the node agent collects these pods, nothing is injected",
        )
    level = context.pod_security_level(indices, ref.namespace)
    if context.forbids_hostpath(level):
        return status.Condition(
            status.COLLECTOR_INJECTED,
            False,
            "PodSecurity",
            f"namespace {ref.namespace} enforces Pod Security {level!r}, which forbids the "
            "collector's hostPath mount of /var/log/pods; use collector.mode: node",
        )
    return status.Condition(
        status.COLLECTOR_INJECTED, True, "Sidecar", "new pods get the collector sidecar"
    )


async def _register(
    ctx: context.OperatorContext,
    body: kopf.Body,
    ref: resources.WorkloadRef,
    indices: Mapping[str, Any],
) -> int:
    """Tell the server the workload and the pods it selects; returns how many pods."""
    await ctx.control.put_workload(ref.kind, ref.namespace, ref.name, _for_server(body))
    return await pods.put_selected_pods(ctx, ref, indices)


def _for_server(body: kopf.Body) -> dict[str, Any]:
    """The resource as Kubernetes JSON, without the bookkeeping the server has no use for."""
    raw = {key: value for key, value in body.items()}
    metadata = dict(raw.get("metadata") or {})
    metadata.pop("managedFields", None)
    raw["metadata"] = metadata
    return raw
