"""The pure injection patch: shapes of pods it meets, idempotence, opt-out, version gating."""

from __future__ import annotations

from typing import Any

import jsonpatch
import kubernetes_validate
import pytest

from tailrace import conventions
from tailrace_operator import sidecar


def config(native: bool) -> sidecar.SidecarConfig:
    return sidecar.SidecarConfig(
        image="registry.example/tailrace:0.1.0",
        agent_server="tailrace.tailrace.svc:7070",
        workload="Pipeline/etl",
        native=native,
    )


def bare_pod(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "etl-0", "namespace": "data"},
        "spec": {"containers": [{"name": "main", "image": "example/etl:2"}], **spec},
    }


POD_SHAPES = [
    pytest.param(bare_pod(), id="bare"),
    pytest.param(
        bare_pod(
            initContainers=[{"name": "init", "image": "busybox"}],
            volumes=[{"name": "cfg", "configMap": {"name": "etl"}}],
        ),
        id="init-and-volumes",
    ),
    pytest.param(
        {**bare_pod(), "metadata": {"name": "etl-0", "annotations": {"a/b~c": "x"}}},
        id="annotated",
    ),
]


@pytest.mark.parametrize("native", [True, False], ids=["native", "plain"])
@pytest.mark.parametrize("pod", POD_SHAPES)
def test_patch_applies_with_rfc6902_and_own_applier_alike(
    pod: dict[str, Any], native: bool
) -> None:
    ops = sidecar.injection_patch(pod, config(native))

    by_library = jsonpatch.apply_patch(pod, ops)
    assert sidecar.apply_patch(pod, ops) == by_library
    kubernetes_validate.validate(by_library, "1.31.0" if native else "1.28.0", strict=True)
    containers = [*by_library["spec"]["containers"], *by_library["spec"].get("initContainers", [])]
    names = [c["name"] for c in containers]
    assert names.count(conventions.COLLECTOR_CONTAINER) == 1
    # Existing containers, volumes and annotations are kept as they were.
    for original in pod["spec"]["containers"]:
        assert original in by_library["spec"]["containers"]
    for volume in pod["spec"].get("volumes", []):
        assert volume in by_library["spec"]["volumes"]
    for key, value in (pod["metadata"].get("annotations") or {}).items():
        assert by_library["metadata"]["annotations"][key] == value


@pytest.mark.parametrize("native", [True, False], ids=["native", "plain"])
def test_injected_pod_gets_no_second_collector(native: bool) -> None:
    pod = bare_pod()
    injected = sidecar.apply_patch(pod, sidecar.injection_patch(pod, config(native)))

    assert sidecar.injection_patch(injected, config(native)) == []
    # Even without the annotation (stripped by some tool), the container name is recognised.
    del injected["metadata"]["annotations"][conventions.INJECTED_ANNOTATION]
    assert sidecar.injection_patch(injected, config(not native)) == []


@pytest.mark.parametrize("value", ["false", "False", "FALSE"])
def test_opt_out_annotation_prevents_injection(value: str) -> None:
    pod = bare_pod()
    pod["metadata"]["annotations"] = {conventions.INJECT_ANNOTATION: value}
    assert sidecar.injection_patch(pod, config(True)) == []


@pytest.mark.parametrize(
    ("version", "native"),
    [
        ("v1.29.0", True),
        ("1.31.2+k3s1", True),
        ("v1.30", True),
        ("2.0.0", True),
        ("v1.28.9", False),
        ("v1.26.4+k3s1", False),
        ("", False),
        ("garbage", False),
    ],
)
def test_native_sidecars_from_kubernetes_1_29(version: str, native: bool) -> None:
    assert sidecar.native_sidecars_supported(version) is native


def test_collector_command_carries_the_line_policy() -> None:
    container = sidecar.collector_container(
        sidecar.SidecarConfig(
            image="i",
            agent_server="s:7070",
            workload="Function/f",
            native=True,
            max_line_bytes=2048,
            on_overflow="drop",
        )
    )
    command = container["command"]
    assert command[command.index("--max-line-bytes") + 1] == "2048"
    assert command[command.index("--on-overflow") + 1] == "drop"
    assert command[command.index("--token-file") + 1] == f"{sidecar.TOKEN_DIR}/token"


def test_applier_rejects_operations_it_does_not_implement() -> None:
    with pytest.raises(ValueError, match="unsupported JSON patch operation 'move'"):
        sidecar.apply_patch({"a": {}}, [{"op": "move", "path": "/a/b", "from": "/c"}])
