"""The control API's Pod Events extension: Kubernetes Events about a pod become system records.

`PUT /v1/namespaces/{ns}/pods/{pod}/events/{event}` carries a core/v1 Event (docs/interfaces.md,
"Pod Events"). Kubernetes updates one Event in place and bumps its `count`, so the server keeps,
per pod, the highest count it has recorded for each Event name and stores a new record only when
the count grew. Those counts are rebuilt from the stored records after a restart, so an operator
that re-sends every Event on its own restart does not duplicate them.
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace import conventions
from tailrace.server import context, control, errors, formats
from tailrace.server.storage import base

SOURCE: Final = "kubernetes"
MAX_TRACKED_PODS = 10_000
REBUILD_TAIL = 5_000
_CONTAINER_FIELD = re.compile(r"spec\.(?:initContainers|containers|ephemeralContainers)\{(.+)\}")


def _text(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise errors.bad_body(field, "expected a string")
    return value


def event_count(obj: dict[str, Any]) -> int:
    """How often the Event happened: `count` (core/v1) or `series.count` (events.k8s.io style)."""
    series = obj.get("series")
    value = obj.get("count")
    if value is None and isinstance(series, dict):
        value = series.get("count")
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.bad_body("count", "expected a positive integer")
    return value


def event_time(obj: dict[str, Any], now_ns: int) -> int:
    series = obj.get("series") if isinstance(obj.get("series"), dict) else {}
    for value in (
        obj.get("lastTimestamp"),
        (series or {}).get("lastObservedTime"),
        obj.get("eventTime"),
        obj.get("firstTimestamp"),
    ):
        if isinstance(value, str) and value:
            try:
                return formats.parse_time(value)
            except ValueError:
                continue
    return now_ns


def event_container(obj: dict[str, Any]) -> str:
    involved = obj.get("involvedObject")
    field_path = involved.get("fieldPath") if isinstance(involved, dict) else None
    if isinstance(field_path, str):
        match = _CONTAINER_FIELD.fullmatch(field_path)
        if match:
            return match.group(1)
    return ""


class PodEvents:
    def __init__(self, ctx: context.ServerContext) -> None:
        self.ctx = ctx
        # (namespace, pod) -> Event name -> highest count recorded.
        self._counts: dict[tuple[str, str], dict[str, int]] = {}

    async def _recorded(self, namespace: str, pod: str) -> dict[str, int]:
        counts = self._counts.get((namespace, pod))
        if counts is not None:
            return counts
        if len(self._counts) >= MAX_TRACKED_PODS:
            self._counts.clear()  # rebuilt from the store on demand
        query = base.Query(
            namespace=namespace, pod=pod, sources=(SOURCE,), streams=("system",), tail=REBUILD_TAIL
        )
        counts = {}
        for record in await self.ctx.store.query(query):
            name, count = record.attrs.get("event"), record.attrs.get("count")
            if isinstance(name, str) and isinstance(count, int):
                counts[name] = max(count, counts.get(name, 0))
        self._counts[(namespace, pod)] = counts
        return counts

    async def put(self, request: Request) -> Response:
        await self.ctx.operator(request)
        namespace, pod_name, name = (request.path_params[k] for k in ("ns", "pod", "event"))
        obj = control.parse_object(await self.ctx.read_body(request))
        if obj.get("kind") not in (None, "Event"):
            raise errors.bad_body("kind", f"is {obj.get('kind')!r}, expected Event")
        reason, message = _text(obj, "reason"), _text(obj, "message")
        event_type = _text(obj, "type") or "Normal"
        count = event_count(obj)
        source = obj.get("source") if isinstance(obj.get("source"), dict) else {}
        component = (source or {}).get("component") or obj.get("reportingComponent") or ""
        ok = Response(b"{}", media_type="application/json")
        pod = await self.ctx.store.get_pod(namespace, pod_name)
        if pod is None:
            return ok
        recorded = await self._recorded(namespace, pod_name)
        if recorded.get(name, 0) >= count:
            return ok
        recorded[name] = count
        record = base.NewRecord(
            ts_ns=event_time(obj, time.time_ns()),
            namespace=namespace,
            pod=pod_name,
            container=event_container(obj),
            stream="system",
            level="WARN" if event_type == "Warning" else "INFO",
            message=f"{reason}: {message}" if reason else message,
            kind=pod.workload.kind if pod.workload else "",
            workload=pod.workload.name if pod.workload else "",
            pod_uid=pod.uid,
            execution_id=pod.labels.get(conventions.EXECUTION_ID_LABEL, ""),
            attrs={
                "reason": reason,
                "count": count,
                "component": str(component),
                "event": name,
            },
            source=SOURCE,
        )
        stored = await self.ctx.store.append_records([record])
        self.ctx.hub.publish(stored)
        self.ctx.metrics.system_records.inc(len(stored))
        return Response(orjson.dumps({}), media_type="application/json")


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    events = PodEvents(ctx)
    return [Route("/v1/namespaces/{ns}/pods/{pod}/events/{event}", events.put, methods=["PUT"])]
