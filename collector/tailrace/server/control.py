"""The control API: the operator (or `tailrace up`, or a test) mirrors workloads and pods here.

Bodies are Kubernetes JSON. A workload's spec is validated and completed with the CRD's
defaults; pods are matched to workloads by label selector; a pod's state changes become system
records (via `lifecycle`) that are stored and published to the live tail like any other record;
deleting a workload ends its live streams.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace import conventions
from tailrace.server import context, errors, lifecycle, streaming
from tailrace.server.storage import base, retention_policy

SELECTOR_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
DEFAULT_RING_LINES = 5000
DEFAULT_RING_BYTES = 4 * 1024 * 1024
MAX_NAME_CHARS = 253


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type="application/json")


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise errors.bad_body("body", f"not JSON: {err}") from None
    if not isinstance(value, dict):
        raise errors.bad_body("body", "expected a JSON object")
    return value


def _mapping(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise errors.bad_body(field, "expected an object")
    return value


def _check_metadata(obj: dict[str, Any], namespace: str, name: str) -> dict[str, Any]:
    metadata = _mapping(obj.get("metadata"), "metadata")
    if metadata.get("name") not in (None, name):
        raise errors.bad_body(
            "metadata.name", f"is {metadata.get('name')!r}, the URL says {name!r}"
        )
    if metadata.get("namespace") not in (None, namespace):
        raise errors.bad_body(
            "metadata.namespace", f"is {metadata.get('namespace')!r}, the URL says {namespace!r}"
        )
    uid = metadata.get("uid")
    if uid is not None and (not isinstance(uid, str) or not uid or len(uid) > 128):
        raise errors.bad_body("metadata.uid", "expected a non-empty string")
    labels = _mapping(metadata.get("labels"), "metadata.labels")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise errors.bad_body(f"metadata.labels.{key}", "label values are strings")
    return metadata


def validate_selector(selector: Any, field: str = "spec.selector") -> dict[str, Any]:
    """A Kubernetes LabelSelector, checked; an empty one is refused (it would claim every pod)."""
    selector = _mapping(selector, field)
    match_labels = _mapping(selector.get("matchLabels"), f"{field}.matchLabels")
    for key, value in match_labels.items():
        if not isinstance(value, str):
            raise errors.bad_body(f"{field}.matchLabels.{key}", "expected a string")
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise errors.bad_body(f"{field}.matchExpressions", "expected a list")
    for index, expression in enumerate(expressions):
        where = f"{field}.matchExpressions[{index}]"
        if not isinstance(expression, dict):
            raise errors.bad_body(where, "expected an object")
        label_key, operator, values = (
            expression.get("key"),
            expression.get("operator"),
            expression.get("values"),
        )
        if not isinstance(label_key, str) or not label_key:
            raise errors.bad_body(f"{where}.key", "expected a label key")
        if operator not in SELECTOR_OPERATORS:
            raise errors.bad_body(
                f"{where}.operator", f"expected one of {', '.join(SELECTOR_OPERATORS)}"
            )
        if operator in ("In", "NotIn"):
            if (
                not isinstance(values, list)
                or not values
                or not all(isinstance(v, str) for v in values)
            ):
                raise errors.bad_body(
                    f"{where}.values", f"{operator} needs a non-empty list of strings"
                )
        elif values:
            raise errors.bad_body(f"{where}.values", f"{operator} takes no values")
    if not match_labels and not expressions:
        raise errors.bad_body(field, "needs matchLabels or matchExpressions")
    return {"matchLabels": match_labels, "matchExpressions": expressions}


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = (
            expression["key"],
            expression["operator"],
            expression.get("values") or [],
        )
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return bool(selector.get("matchLabels") or selector.get("matchExpressions"))


def _int_field(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.bad_body(field, f"expected an integer between {low} and {high}")
    if not low <= value <= high:
        raise errors.bad_body(field, f"must be between {low} and {high}, got {value}")
    return value


def validate_spec(raw: Any) -> dict[str, Any]:
    """The workload spec with every default of the CRD applied, or a 400 naming the field."""
    spec: dict[str, Any] = copy.deepcopy(_mapping(raw, "spec"))
    spec["selector"] = validate_selector(spec.get("selector"))
    logs = _mapping(spec.get("logs"), "spec.logs")
    enabled = logs.get("enabled", True)
    if not isinstance(enabled, bool):
        raise errors.bad_body("spec.logs.enabled", "expected true or false")
    min_level = str(logs.get("minLevel", "INFO")).upper()
    if min_level not in conventions.LEVEL_RANK:
        raise errors.bad_body(
            "spec.logs.minLevel", f"expected one of {', '.join(conventions.LEVELS)}"
        )
    max_line = _int_field(
        logs.get("maxLineBytes", conventions.DEFAULT_MAX_LINE_BYTES),
        "spec.logs.maxLineBytes",
        conventions.MIN_MAX_LINE_BYTES,
        conventions.MAX_MAX_LINE_BYTES,
    )
    overflow = logs.get("onOverflow", "truncate")
    if overflow not in conventions.OVERFLOW_POLICIES:
        raise errors.bad_body(
            "spec.logs.onOverflow", f"expected one of {', '.join(conventions.OVERFLOW_POLICIES)}"
        )
    retention = _mapping(logs.get("retention"), "spec.logs.retention")
    retention = {"maxAge": "14d", "maxLines": 1_000_000, "maxBytes": "1Gi", **retention}
    try:
        retention_policy.parse(retention)
    except retention_policy.InvalidRetention as err:
        raise errors.bad_body("spec.logs.retention", str(err)) from None
    execution = _mapping(logs.get("executionId"), "spec.logs.executionId")
    execution = {
        "jsonField": "executionId",
        "podLabel": conventions.EXECUTION_ID_LABEL,
        **execution,
    }
    for key in ("jsonField", "podLabel"):
        if not isinstance(execution[key], str) or not execution[key]:
            raise errors.bad_body(f"spec.logs.executionId.{key}", "expected a non-empty string")
    ring = _mapping(logs.get("ringBuffer"), "spec.logs.ringBuffer")
    ring = {"lines": DEFAULT_RING_LINES, "bytes": "4Mi", **ring}
    _int_field(ring["lines"], "spec.logs.ringBuffer.lines", 1, 1_000_000)
    try:
        ring_bytes = retention_policy.parse_quantity(ring["bytes"])
    except retention_policy.InvalidRetention as err:
        raise errors.bad_body("spec.logs.ringBuffer.bytes", str(err)) from None
    if not 1024 <= ring_bytes <= 1024**3:
        raise errors.bad_body("spec.logs.ringBuffer.bytes", "must be between 1Ki and 1Gi")
    spec["logs"] = {
        **logs,
        "enabled": enabled,
        "minLevel": min_level,
        "maxLineBytes": max_line,
        "onOverflow": overflow,
        "retention": retention,
        "executionId": execution,
        "ringBuffer": ring,
    }
    collector = _mapping(spec.get("collector"), "spec.collector")
    mode = collector.get("mode", "sidecar")
    if mode not in ("sidecar", "node"):
        raise errors.bad_body("spec.collector.mode", "expected sidecar or node")
    spec["collector"] = {**collector, "mode": mode}
    return spec


def ring_size(spec: Mapping[str, Any]) -> tuple[int, int]:
    ring = (spec.get("logs") or {}).get("ringBuffer") or {}
    lines = ring.get("lines", DEFAULT_RING_LINES)
    try:
        size = retention_policy.parse_quantity(ring.get("bytes", DEFAULT_RING_BYTES))
    except retention_policy.InvalidRetention:
        size = DEFAULT_RING_BYTES
    return int(lines), size


def execution_label(workload: base.Workload | None) -> str:
    if workload is None:
        return conventions.EXECUTION_ID_LABEL
    label = ((workload.spec.get("logs") or {}).get("executionId") or {}).get("podLabel")
    return label if isinstance(label, str) and label else conventions.EXECUTION_ID_LABEL


def _claimed_by(pod_obj: Mapping[str, Any], workloads: list[base.Workload]) -> base.Workload | None:
    metadata = pod_obj.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotation = (metadata.get("annotations") or {}).get(conventions.WORKLOAD_ANNOTATION)
    live = [w for w in workloads if not w.deleted]
    if isinstance(annotation, str) and "/" in annotation:
        kind, _, name = annotation.partition("/")
        for workload in live:
            if workload.key.kind == kind and workload.key.name == name:
                return workload
    for workload in sorted(live, key=lambda w: (w.key.kind, w.key.name)):
        if selector_matches(workload.spec.get("selector") or {}, labels):
            return workload
    return None


class Control:
    def __init__(self, ctx: context.ServerContext, clock: Any = time.time_ns) -> None:
        self.ctx = ctx
        self._clock = clock

    async def _emit(self, pod: base.Pod, happenings: list[lifecycle.Happening], label: str) -> int:
        if not happenings:
            return 0
        execution = pod.labels.get(label, "")
        records = [
            base.NewRecord(
                ts_ns=h.ts_ns,
                namespace=pod.namespace,
                pod=pod.name,
                container=h.container,
                stream="system",
                level=h.level,
                message=h.message,
                kind=pod.workload.kind if pod.workload else "",
                workload=pod.workload.name if pod.workload else "",
                pod_uid=pod.uid,
                execution_id=execution,
                attrs=h.attrs,
                source="operator",
            )
            for h in happenings
        ]
        stored = await self.ctx.store.append_records(records)
        self.ctx.hub.publish(stored)
        self.ctx.metrics.system_records.inc(len(stored))
        return len(stored)

    async def put_workload(self, request: Request) -> Response:
        await self.ctx.operator(request)
        namespace, plural, name = (request.path_params[k] for k in ("ns", "plural", "name"))
        kind = conventions.PLURAL_KINDS.get(plural)
        if kind is None:
            raise errors.not_found(f"resource type {plural!r}", expected=["functions", "pipelines"])
        obj = parse_object(await self.ctx.read_body(request))
        if obj.get("kind") not in (None, kind):
            raise errors.bad_body("kind", f"is {obj.get('kind')!r}, the URL says {kind}")
        metadata = _check_metadata(obj, namespace, name)
        spec = validate_spec(obj.get("spec"))
        key = base.WorkloadKey(namespace, kind, name)
        uid = metadata.get("uid") or str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"tailrace:{namespace}/{kind}/{name}")
        )
        previous = await self.ctx.store.get_workload(key)
        generation = metadata.get("generation")
        workload = base.Workload(
            key=key,
            uid=uid,
            spec=spec,
            generation=generation if isinstance(generation, int) else 0,
            created_ns=previous.created_ns
            if previous is not None and not previous.deleted
            else self._clock(),
        )
        await self.ctx.store.put_workload(workload)
        lines, size = ring_size(spec)
        self.ctx.hub.configure_workload(key, lines, size)
        matched = await self._rematch(namespace)
        pods = sorted(p.name for p in matched if p.workload == key)
        return _json({"kind": kind, "name": name, "uid": uid, "pods": pods})

    async def _rematch(self, namespace: str) -> list[base.Pod]:
        """Assign every pod of the namespace to the workload whose selector claims it."""
        workloads = await self.ctx.store.list_workloads(namespace)
        pods = [p for p in await self.ctx.store.list_pods(None) if p.namespace == namespace]
        for pod in pods:
            owner = _claimed_by(pod.obj or {"metadata": {"labels": pod.labels}}, workloads)
            key = owner.key if owner is not None else None
            if key != pod.workload:
                # A selector that no longer claims a pod releases it; records already stored
                # keep the workload they were attributed to when they arrived.
                pod.workload = key
                await self.ctx.store.put_pod(pod)
        return pods

    async def delete_workload(self, request: Request) -> Response:
        await self.ctx.operator(request)
        namespace, plural, name = (request.path_params[k] for k in ("ns", "plural", "name"))
        kind = conventions.PLURAL_KINDS.get(plural)
        if kind is None:
            raise errors.not_found(f"resource type {plural!r}", expected=["functions", "pipelines"])
        key = base.WorkloadKey(namespace, kind, name)
        workload = await self.ctx.store.get_workload(key)
        if workload is None or workload.deleted:
            raise errors.not_found(
                f"{kind} {namespace}/{name}", namespace=namespace, kind=kind, name=name
            )
        # A tombstone, not a removal: the spec's retention keeps applying to the logs the
        # workload left behind, so they expire as promised instead of staying forever.
        await self.ctx.store.put_workload(dataclasses.replace(workload, deleted=True))
        ended = self.ctx.hub.end_workload(key, streaming.WORKLOAD_DELETED)
        return _json(
            {
                "kind": kind,
                "name": name,
                "uid": workload.uid,
                "deleted": True,
                "streamsEnded": ended,
            }
        )

    async def put_pod(self, request: Request) -> Response:
        await self.ctx.operator(request)
        namespace, name = request.path_params["ns"], request.path_params["pod"]
        obj = parse_object(await self.ctx.read_body(request))
        if obj.get("kind") not in (None, "Pod"):
            raise errors.bad_body("kind", f"is {obj.get('kind')!r}, expected Pod")
        metadata = _check_metadata(obj, namespace, name)
        uid = metadata.get("uid")
        if not uid:
            raise errors.bad_body("metadata.uid", "is required for a pod")
        _mapping(obj.get("spec"), "spec")
        status = _mapping(obj.get("status"), "status")
        phase = status.get("phase", "")
        if not isinstance(phase, str):
            raise errors.bad_body("status.phase", "expected a string")
        previous = await self.ctx.store.get_pod(namespace, name)
        if previous is not None and previous.uid != uid:
            # A new pod under an old name (StatefulSet): the old one is gone.
            await self._emit(
                previous, lifecycle.pod_changes(previous.obj, None), conventions.EXECUTION_ID_LABEL
            )
            previous = None
        workloads = await self.ctx.store.list_workloads(namespace)
        owner = _claimed_by(obj, workloads)
        pod = base.Pod(
            namespace=namespace,
            name=name,
            uid=uid,
            labels=dict(metadata.get("labels") or {}),
            workload=owner.key if owner is not None else None,
            phase=phase,
            obj=obj,
        )
        await self.ctx.store.put_pod(pod)
        label = execution_label(owner)
        happenings = lifecycle.pod_changes(previous.obj if previous else None, obj, label)
        emitted = await self._emit(pod, happenings, label)
        workload = {"kind": owner.key.kind, "name": owner.key.name} if owner is not None else None
        return _json(
            {"kind": "Pod", "name": name, "uid": uid, "workload": workload, "records": emitted}
        )

    async def delete_pod(self, request: Request) -> Response:
        await self.ctx.operator(request)
        namespace, name = request.path_params["ns"], request.path_params["pod"]
        pod = await self.ctx.store.get_pod(namespace, name)
        if pod is None:
            raise errors.not_found(f"pod {namespace}/{name}", namespace=namespace, pod=name)
        await self._emit(pod, lifecycle.pod_changes(pod.obj, None), conventions.EXECUTION_ID_LABEL)
        await self.ctx.store.delete_pod(namespace, name)
        return _json({"kind": "Pod", "name": name, "uid": pod.uid, "deleted": True})


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    control = Control(ctx)
    ns = "/v1/namespaces/{ns}"
    return [
        Route(ns + "/pods/{pod}", control.put_pod, methods=["PUT"]),
        Route(ns + "/pods/{pod}", control.delete_pod, methods=["DELETE"], name="delete_pod"),
        Route(ns + "/{plural}/{name}", control.put_workload, methods=["PUT"]),
        Route(
            ns + "/{plural}/{name}",
            control.delete_workload,
            methods=["DELETE"],
            name="delete_workload",
        ),
    ]
