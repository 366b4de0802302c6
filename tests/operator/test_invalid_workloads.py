"""Bad specs and an absent server give conditions and Events; the other workloads keep working."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


BAD_SPECS: dict[str, tuple[dict[str, Any], str]] = {
    "negative-limit": (
        {"collector": {"resources": {"limits": {"memory": "-1Gi"}}}},
        "spec.collector.resources.limits.memory",
    ),
    "negative-ring": ({"logs": {"ringBuffer": {"lines": -5}}}, "spec.logs.ringBuffer.lines"),
    "unknown-overflow": ({"logs": {"onOverflow": "wrap"}}, "spec.logs.onOverflow"),
    "unknown-level": ({"logs": {"minLevel": "LOUD"}}, "spec.logs.minLevel"),
    "unknown-mode": ({"collector": {"mode": "daemon"}}, "spec.collector.mode"),
    "tiny-line-limit": ({"logs": {"maxLineBytes": 10}}, "spec.logs.maxLineBytes"),
    "bad-duration": ({"logs": {"retention": {"maxAge": "2 weeks"}}}, "retention.maxAge"),
}


async def test_invalid_specs_get_conditions_and_events_while_a_valid_one_is_served(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    async with running_operator(k8s, operator_settings(control_server.url)):
        for name, (spec, _) in BAD_SPECS.items():
            await k8s.post(FUNCTIONS, json=function_body(name, **spec))
        await k8s.post(FUNCTIONS, json=function_body("fine"))

        for name, (_, field) in BAD_SPECS.items():

            def invalid(name: str = name) -> dict[str, Any] | None:
                obj = k8s.get(f"{GROUP_VERSION}/functions", "default", name)
                return obj if (obj or {}).get("status", {}).get("phase") == "Invalid" else None

            obj = await eventually(invalid)
            spec_valid = condition(obj, "SpecValid")
            assert spec_valid["status"] == "False", name
            assert spec_valid["reason"] == "InvalidSpec", name
            assert field in spec_valid["message"], name
            assert condition(obj, "Ready")["status"] == "False", name
            events = await eventually(lambda name=name: warnings_about(k8s, name, "InvalidSpec"))
            assert field in events[0]["message"], name
            # Never sent to the server.
            assert f"default/functions/{name}" not in control_server.workloads
        # The valid neighbour is registered as usual.
        await eventually(lambda: control_server.workloads.get("default/functions/fine"))


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


async def test_refused_token_is_retried_and_a_rotated_token_file_is_picked_up(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    control_server.token = "right"
    token_file = tmp_path / "token"
    token_file.write_text("wrong\n")
    config = operator_settings(control_server.url, token_file=token_file)
    async with running_operator(k8s, config):
        await k8s.post(FUNCTIONS, json=function_body("guarded"))

        def unauthorized() -> dict[str, Any]:
            obj = k8s.get(f"{GROUP_VERSION}/functions", "default", "guarded")
            found = condition(obj, "ServerReachable")
            return found if found.get("reason") == "Unauthorized" else {}

        assert (await eventually(unauthorized))["status"] == "False"

        token_file.write_text("right\n")  # the Secret was fixed; the projected file changes

        await eventually(lambda: control_server.workloads.get("default/functions/guarded"))
