"""`GET /v1/workloads`: what there is to read, for the viewer's pickers and for scripts.

Answers `{"workloads": [{namespace, kind, name, uid, pods: [names]}]}`, limited to the namespaces
the caller may read (`?namespace=` narrows further). Pods are listed under their workload, so
the viewer can offer `pod/NAME` as well as `function/NAME` without another round trip.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tailrace.server import context


async def _listing(ctx: context.ServerContext, namespace: str | None) -> list[dict[str, Any]]:
    listed = []
    for workload in await ctx.store.list_workloads(namespace):
        if workload.deleted:
            continue
        pods = await ctx.store.list_pods(workload.key)
        listed.append(
            {
                "namespace": workload.key.namespace,
                "kind": workload.key.kind,
                "name": workload.key.name,
                "uid": workload.uid,
                "pods": sorted(pod.name for pod in pods),
            }
        )
    listed.sort(key=lambda w: (w["namespace"], w["kind"], w["name"]))
    return listed


def routes(ctx: context.ServerContext) -> list[BaseRoute]:
    async def workloads(request: Request) -> Response:
        namespace = request.query_params.get("namespace") or None
        principal = await ctx.reader(request, namespace)
        listed = [
            w for w in await _listing(ctx, namespace) if principal.may_read(str(w["namespace"]))
        ]
        return Response(orjson.dumps({"workloads": listed}), media_type="application/json")

    return [Route("/v1/workloads", workloads, methods=["GET"])]
