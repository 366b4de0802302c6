"""Bad specs and an absent server give conditions and Events; the other workloads keep working."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.conftest import KubernetesAPI
from tests.operator.harness import (
    GROUP_VERSION,
    FakeControlServer,
    eventually,
    free_port,
    function_body,
    operator_settings,
    running_operator,
)

FUNCTIONS = f"/apis/{GROUP_VERSION}/namespaces/default/functions"
EVENTS = "v1/events"


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def warnings_about(k8s: KubernetesAPI, name: str, reason: str) -> list[dict[str, Any]]:
    return [
        event
        for event in k8s.all(EVENTS)
        if event.get("involvedObject", {}).get("name") == name
        and event.get("reason") == reason
        and event.get("type") == "Warning"
    ]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param(
            {"collector": {"resources": {"limits": {"memory": "-1Gi"}}}},
            "spec.collector.resources.limits.memory",
            id="negative-limit",
        ),
        pytest.param(
            {"logs": {"ringBuffer": {"lines": -5}}}, "ringBuffer.lines", id="negative-ring"
        ),
        pytest.param(
            {"logs": {"onOverflow": "wrap"}}, "spec.logs.onOverflow", id="unknown-overflow"
        ),
        pytest.param({"logs": {"minLevel": "LOUD"}}, "spec.logs.minLevel", id="unknown-level"),
        pytest.param({"collector": {"mode": "daemon"}}, "spec.collector.mode", id="unknown-mode"),
        pytest.param(
            {"logs": {"maxLineBytes": 10}}, "spec.logs.maxLineBytes", id="tiny-line-limit"
        ),
        pytest.param({"logs": {"retention": {"maxAge": "2 weeks"}}}, "maxAge", id="bad-duration"),
    ],
)
async def test_invalid_spec_gets_condition_and_event_while_valid_one_is_served(
    k8s: KubernetesAPI, control_server: FakeControlServer, spec: dict[str, Any], field: str
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("broken", **spec))
        await k8s.post(FUNCTIONS, json=function_body("fine"))

        def invalid() -> dict[str, Any] | None:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "broken")
            return obj if (obj or {}).get("status", {}).get("phase") == "Invalid" else None

        obj = await eventually(invalid)
        spec_valid = condition(obj, "SpecValid")
        assert spec_valid["status"] == "False"
        assert spec_valid["reason"] == "InvalidSpec"
        assert field in spec_valid["message"]
        assert condition(obj, "Ready")["status"] == "False"
        event = (await eventually(lambda: warnings_about(k8s, "broken", "InvalidSpec")))[0]
        assert field in event["message"]
        # Never sent to the server, and the valid neighbour is registered as usual.
        await eventually(lambda: control_server.workloads.get("default/functions/fine"))
        assert "default/functions/broken" not in control_server.workloads


async def test_selector_matching_no_pod_gives_condition_and_event_not_an_error(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("lonely"))

        def selected_none() -> dict[str, Any]:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "lonely")
            return condition(obj, "PodsSelected")

        pods_selected = await eventually(selected_none)
        assert pods_selected["status"] == "False"
        assert pods_selected["reason"] == "NoMatchingPods"
        obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "lonely") or {}
        assert obj["status"]["phase"] == "Active"  # registered all the same: pods may come later
        await eventually(lambda: warnings_about(k8s, "lonely", "NoMatchingPods"))


async def test_fixing_an_invalid_spec_registers_the_workload(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("later", logs={"onOverflow": "wrap"}))
        await eventually(
            lambda: condition(
                k8s.get(f"{GROUP_VERSION}/functions", "default", "later"), "SpecValid"
            )
        )

        await k8s.patch(
            f"{FUNCTIONS}/later",
            json={"spec": {"logs": {"onOverflow": "split"}}},
            headers={"Content-Type": "application/merge-patch+json"},
        )

        await eventually(lambda: control_server.workloads.get("default/functions/later"))
        await eventually(
            lambda: (
                condition(
                    k8s.get(f"{GROUP_VERSION}/functions", "default", "later"), "SpecValid"
                ).get("status")
                == "True"
            )
        )


async def test_server_rejection_gives_condition_and_event(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    control_server.reject.add("refused")
    async with running_operator(k8s, operator_settings(control_server.url)):
        await k8s.post(FUNCTIONS, json=function_body("refused"))

        def rejected() -> dict[str, Any]:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "refused")
            found = condition(obj, "SpecValid")
            return found if found.get("reason") == "ServerRejected" else {}

        assert (await eventually(rejected))["status"] == "False"
        await eventually(lambda: warnings_about(k8s, "refused", "ServerRejected"))


async def test_unreachable_server_is_retried_and_shown_in_status(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with running_operator(k8s, operator_settings(nowhere)) as operator:
        await k8s.post(FUNCTIONS, json=function_body("waiting"))

        def degraded() -> dict[str, Any] | None:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "waiting")
            return obj if (obj or {}).get("status", {}).get("phase") == "Degraded" else None

        obj = await eventually(degraded)
        reachable = condition(obj, "ServerReachable")
        assert reachable["status"] == "False"
        assert reachable["reason"] == "ServerUnreachable"
        # kopf keeps retrying with backoff; every attempt is counted.
        labels = {"kind": "Function", "outcome": "unreachable"}
        await eventually(
            lambda: (
                (
                    operator.metrics.get_sample_value("tailrace_operator_reconciles_total", labels)
                    or 0
                )
                >= 2
            )
        )
