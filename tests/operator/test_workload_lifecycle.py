"""A Function's life against the real operator: registered, status written, updated, deleted."""

from __future__ import annotations

from typing import Any

from tests.operator import harness
from tests.operator.conftest import KubernetesAPI
from tests.operator.harness import (
    GROUP_VERSION,
    FakeControlServer,
    eventually,
    function_body,
    operator_settings,
    pod_body,
    running_operator,
)

FUNCTIONS = f"/apis/{GROUP_VERSION}/namespaces/default/functions"


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


async def test_applied_function_is_registered_and_gets_active_status(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(
            "/api/v1/namespaces/default/pods", json=pod_body("hello-1", {"app": "hello"})
        )
        await k8s.post(FUNCTIONS, json=function_body("hello"))

        registered = await eventually(
            lambda: control_server.workloads.get("default/functions/hello")
        )
        assert registered["metadata"]["name"] == "hello"
        assert registered["spec"]["selector"] == {"matchLabels": {"app": "hello"}}

        def active() -> dict[str, Any] | None:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "hello")
            return obj if (obj or {}).get("status", {}).get("phase") == "Active" else None

        obj = await eventually(active)
        assert obj["status"]["observedGeneration"] == 1
        assert obj["status"]["pods"] == 1
        assert condition(obj, "Ready")["status"] == "True"
        assert condition(obj, "ServerReachable")["status"] == "True"
        assert condition(obj, "PodsSelected")["status"] == "True"
        assert "tailrace.dev/finalizer" in obj["metadata"]["finalizers"]
        # The selected pod existed before the Function: it is mirrored at registration.
        await eventually(lambda: control_server.pods.get("default/hello-1"))


async def test_status_timer_copies_counters_from_server_stats(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    control_server.stats = {
        "total": 10,
        "truncatedLines": 3,
        "droppedLines": 2,
        "lastLogAt": "2026-01-02T03:04:05.000000006Z",
        "pods": 1,
    }
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("counted"))

        def refreshed() -> dict[str, Any] | None:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "counted")
            return obj if (obj or {}).get("status", {}).get("truncatedLines") == 3 else None

        obj = await eventually(refreshed)
        assert obj["status"]["droppedLines"] == 2
        assert obj["status"]["lastLogAt"] == "2026-01-02T03:04:05.000000006Z"


async def test_spec_change_is_sent_to_the_server_again(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("changing"))
        await eventually(lambda: control_server.workloads.get("default/functions/changing"))

        await k8s.patch(
            f"{FUNCTIONS}/changing",
            json={"spec": {"logs": {"minLevel": "WARN"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )

        def updated() -> dict[str, Any] | None:
            body = control_server.workloads.get("default/functions/changing") or {}
            return body if body.get("spec", {}).get("logs", {}).get("minLevel") == "WARN" else None

        await eventually(updated)

        def observed() -> bool:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "changing") or {}
            return bool(obj.get("status", {}).get("observedGeneration") == 2)

        await eventually(observed)


async def test_deleted_function_is_unregistered_and_its_finalizer_removed(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("doomed"))
        await eventually(lambda: control_server.workloads.get("default/functions/doomed"))
        await eventually(
            lambda: (
                (k8s.get(f"{GROUP_VERSION}/functions", "default", "doomed") or {})
                .get("metadata", {})
                .get("finalizers")
            )
        )

        await k8s.delete(f"{FUNCTIONS}/doomed")

        await eventually(lambda: "default/functions/doomed" not in control_server.workloads)
        await eventually(lambda: k8s.get(f"{GROUP_VERSION}/functions", "default", "doomed") is None)
        assert control_server.sent("DELETE", "/v1/namespaces/default/functions/doomed")


async def test_pipeline_is_registered_under_pipelines_and_unregistered_on_delete(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    body = function_body("etl")
    body["kind"] = "Pipeline"
    pipelines = f"/apis/{GROUP_VERSION}/namespaces/default/pipelines"
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(pipelines, json=body)

        registered = await eventually(lambda: control_server.workloads.get("default/pipelines/etl"))
        assert registered["kind"] == "Pipeline"
        await eventually(
            lambda: (
                (k8s.get(f"{GROUP_VERSION}/pipelines", "default", "etl") or {})
                .get("status", {})
                .get("phase")
                == "Active"
            )
        )

        await k8s.delete(f"{pipelines}/etl")
        await eventually(lambda: "default/pipelines/etl" not in control_server.workloads)


async def test_workload_is_registered_once_the_server_comes_back(
    k8s: KubernetesAPI,
) -> None:
    late = FakeControlServer()
    port = harness.free_port()
    late.url = f"http://127.0.0.1:{port}"
    async with running_operator(k8s, operator_settings(late.url)):
        await k8s.post(FUNCTIONS, json=function_body("patient"))

        def degraded() -> bool:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "patient") or {}
            return bool(obj.get("status", {}).get("phase") == "Degraded")

        await eventually(degraded)

        async with harness.serving(late.app(), port):
            await eventually(lambda: late.workloads.get("default/functions/patient"))

            def recovered() -> dict[str, Any]:
                obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "patient")
                found = condition(obj, "ServerReachable")
                return found if found.get("status") == "True" else {}

            await eventually(recovered)
