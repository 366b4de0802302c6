"""The operator against the real `tailrace server` process (its control API), kmock as Kubernetes:
a Function is registered, its pods' lifecycle becomes system logs, deleting it ends a follower."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from tests.operator.conftest import KubernetesAPI
from tests.operator.harness import (
    GROUP_VERSION,
    eventually,
    eventually_async,
    function_body,
    operator_settings,
    pod_body,
    running_operator,
)
from tests.support import processes

FUNCTIONS = f"/apis/{GROUP_VERSION}/namespaces/default/functions"
PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}


async def follow(client: httpx.AsyncClient, path: str, seen: list[dict[str, Any]]) -> str:
    """Read an NDJSON follow until the server ends it; returns why it ended."""
    async with client.stream(
        "GET", path, params={"follow": "true"}, headers={"Accept": "application/x-ndjson"}
    ) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.strip():
                seen.append(json.loads(line))
    return "ended"


async def test_function_registration_pod_lifecycle_and_deletion_with_the_real_server(
    k8s: KubernetesAPI, tmp_path: Path
) -> None:
    # The control API is authenticated like ingest: the operator brings its token.
    tokens = tmp_path / "ingest-tokens"
    tokens.write_text("operator-token *\n")
    server = processes.server_process(tmp_path, extra=["--ingest-tokens-file", str(tokens)])
    server.start()
    try:
        await asyncio.to_thread(server.wait_ready)
        async with (
            running_operator(k8s, operator_settings(server.url, token="operator-token")),
            httpx.AsyncClient(base_url=server.url, timeout=10) as client,
        ):
            await k8s.post(FUNCTIONS, json=function_body("hello"))
            stats_path = "/v1/namespaces/default/functions/hello/stats"

            async def registered() -> bool:
                return (await client.get(stats_path)).status_code == 200

            await eventually_async(registered)

            seen: list[dict[str, Any]] = []
            follower = asyncio.create_task(
                follow(client, "/v1/namespaces/default/functions/hello/logs", seen)
            )

            labels = {"app": "hello", "tailrace.dev/execution-id": "run-1"}
            await k8s.post(PODS, json=pod_body("hello-1", labels))
            await k8s.patch(
                f"{PODS}/hello-1/status",
                json={
                    "status": {
                        "phase": "Running",
                        "conditions": [{"type": "PodScheduled", "status": "True"}],
                        "containerStatuses": [
                            {
                                "name": "app",
                                "restartCount": 0,
                                "ready": True,
                                "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}},
                            }
                        ],
                    }
                },
                headers=MERGE,
            )
            await k8s.patch(
                f"{PODS}/hello-1/status",
                json={
                    "status": {
                        "phase": "Failed",
                        "containerStatuses": [
                            {
                                "name": "app",
                                "restartCount": 0,
                                "ready": False,
                                "state": {
                                    "terminated": {
                                        "exitCode": 137,
                                        "reason": "OOMKilled",
                                        "finishedAt": "2026-01-01T00:01:00Z",
                                    }
                                },
                            }
                        ],
                    }
                },
                headers=MERGE,
            )

            async def system_records() -> list[dict[str, Any]]:
                answer = await client.get(
                    "/v1/namespaces/default/functions/hello/logs",
                    headers={"Accept": "application/json"},
                )
                records = answer.json().get("records", []) if answer.status_code == 200 else []
                oom = [r for r in records if "OOMKilled" in r.get("message", "")]
                return records if oom else []

            records = await eventually_async(system_records)
            assert all(r["stream"] == "system" for r in records)
            assert {r["pod"] for r in records} == {"hello-1"}
            # A Kubernetes Event about the pod becomes a system record as well.
            await k8s.post(
                "/api/v1/namespaces/default/events",
                json={
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": "hello-1.17a", "namespace": "default"},
                    "involvedObject": {
                        "kind": "Pod",
                        "name": "hello-1",
                        "namespace": "default",
                        "fieldPath": "spec.containers{app}",
                    },
                    "reason": "BackOff",
                    "message": "Back-off restarting failed container app",
                    "type": "Warning",
                    "count": 1,
                    "source": {"component": "kubelet"},
                },
            )

            async def backoff_record() -> list[dict[str, Any]]:
                answer = await client.get(
                    "/v1/namespaces/default/functions/hello/logs",
                    headers={"Accept": "application/json"},
                )
                records = answer.json().get("records", []) if answer.status_code == 200 else []
                return [r for r in records if "Back-off restarting" in r.get("message", "")]

            [backoff] = await eventually_async(backoff_record)
            assert backoff["stream"] == "system"
            assert backoff["level"] == "WARN"
            assert backoff["pod"] == "hello-1"

            answer = await client.get("/v1/namespaces/default/functions/hello/events")
            events = [e.get("event") for e in answer.json()["events"]]
            assert "CALL" in events
            assert "FAILED" in events
            # The live follower saw the same system records as they happened.
            await eventually(lambda: any("OOMKilled" in r.get("message", "") for r in seen))

            await k8s.delete(f"{FUNCTIONS}/hello")

            assert await asyncio.wait_for(follower, timeout=15) == "ended"
            await eventually(
                lambda: k8s.get(f"{GROUP_VERSION}/functions", "default", "hello") is None
            )

            # Already unregistered by the operator: the server knows it as deleted (its stored
            # logs stay until retention removes them).
            again = await client.delete(
                "/v1/namespaces/default/functions/hello",
                headers={"Authorization": "Bearer operator-token"},
            )
            assert again.status_code == 404
    finally:
        await asyncio.to_thread(server.stop)
