"""Selected pods, their changes, deletion and the Events about them reach the control API."""

from __future__ import annotations

from typing import Any

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
PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}


def pod_event(name: str, pod: str, reason: str, message: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": pod, "namespace": "default"},
        "reason": reason,
        "message": message,
        "type": "Warning",
        "count": 1,
    }


async def test_selected_pod_state_changes_and_deletion_are_mirrored(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("hello"))
        await eventually(lambda: control_server.workloads.get("default/functions/hello"))

        await k8s.post(PODS, json=pod_body("hello-1", {"app": "hello"}))
        put = await eventually(lambda: control_server.pods.get("default/hello-1"))
        assert put["metadata"]["labels"] == {"app": "hello"}
        assert put["metadata"]["uid"]

        terminated = {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "app",
                    "restartCount": 1,
                    "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                }
            ],
        }
        await k8s.patch(f"{PODS}/hello-1/status", json={"status": terminated}, headers=MERGE)

        def oom_killed() -> bool:
            status = (control_server.pods.get("default/hello-1") or {}).get("status", {})
            return status.get("phase") == "Failed"

        await eventually(oom_killed)
        statuses = control_server.pods["default/hello-1"]["status"]["containerStatuses"]
        assert statuses[0]["state"]["terminated"]["exitCode"] == 137

        await k8s.delete(f"{PODS}/hello-1")
        await eventually(
            lambda: control_server.sent("DELETE", "/v1/namespaces/default/pods/hello-1")
        )
        assert "default/hello-1" not in control_server.pods


async def test_pods_no_workload_selects_are_never_sent(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("hello"))
        await eventually(lambda: control_server.workloads.get("default/functions/hello"))

        await k8s.post(PODS, json=pod_body("stranger", {"app": "other"}))
        await k8s.post(PODS, json=pod_body("hello-2", {"app": "hello"}))
        await eventually(lambda: control_server.pods.get("default/hello-2"))

        assert not control_server.sent("PUT", "/v1/namespaces/default/pods/stranger")


async def test_pod_relabelled_out_of_its_workload_is_withdrawn_from_the_server(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("hello"))
        await k8s.post(PODS, json=pod_body("hello-5", {"app": "hello"}))
        await eventually(lambda: control_server.pods.get("default/hello-5"))

        await k8s.patch(
            f"{PODS}/hello-5", json={"metadata": {"labels": {"app": "moved"}}}, headers=MERGE
        )

        await eventually(lambda: "default/hello-5" not in control_server.pods)
        assert control_server.sent("DELETE", "/v1/namespaces/default/pods/hello-5")


async def test_kubernetes_events_about_selected_pods_are_mirrored(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("hello"))
        await k8s.post(PODS, json=pod_body("hello-3", {"app": "hello"}))
        await k8s.post(PODS, json=pod_body("stranger", {"app": "other"}))
        await eventually(lambda: control_server.pods.get("default/hello-3"))

        events = "/api/v1/namespaces/default/events"
        await k8s.post(events, json=pod_event("hello-3.1", "hello-3", "BackOff", "back-off 10s"))
        await k8s.post(events, json=pod_event("stranger.1", "stranger", "Pulled", "pulled"))

        path = "/v1/namespaces/default/pods/hello-3/events/hello-3.1"
        sent = (await eventually(lambda: control_server.sent("PUT", path)))[0]
        assert sent["reason"] == "BackOff"
        assert sent["involvedObject"]["name"] == "hello-3"
        assert not control_server.sent("PUT", "/v1/namespaces/default/pods/stranger")


async def test_server_without_event_endpoint_stops_receiving_events(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    control_server.serve_events = False
    async with running_operator(k8s, operator_settings(control_server.url)) as operator:
        await k8s.post(FUNCTIONS, json=function_body("hello"))
        await k8s.post(PODS, json=pod_body("hello-4", {"app": "hello"}))
        await eventually(lambda: control_server.pods.get("default/hello-4"))
        events = "/api/v1/namespaces/default/events"
        await k8s.post(events, json=pod_event("hello-4.1", "hello-4", "Pulled", "pulled"))

        labels = {"action": "event", "outcome": "unsupported"}
        await eventually(
            lambda: operator.metrics.get_sample_value("tailrace_operator_pod_mirrors_total", labels)
        )
        await k8s.post(events, json=pod_event("hello-4.2", "hello-4", "Started", "started"))
        # The pod itself is still mirrored; Events are no longer sent to a server that lacks them.
        await k8s.patch(
            f"{PODS}/hello-4/status", json={"status": {"phase": "Running"}}, headers=MERGE
        )
        await eventually(
            lambda: (
                (control_server.pods.get("default/hello-4") or {}).get("status", {}).get("phase")
                == "Running"
            )
        )
        assert not control_server.sent(
            "PUT", "/v1/namespaces/default/pods/hello-4/events/hello-4.2"
        )


async def test_pod_the_server_rejects_does_not_fail_its_workload(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    control_server.reject_pods.add("hello-bad")
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(PODS, json=pod_body("hello-bad", {"app": "hello"}))
        await k8s.post(PODS, json=pod_body("hello-good", {"app": "hello"}))
        await k8s.post(FUNCTIONS, json=function_body("hello"))

        await eventually(lambda: control_server.pods.get("default/hello-good"))

        def active() -> bool:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "hello") or {}
            return bool(obj.get("status", {}).get("phase") == "Active")

        await eventually(active)
