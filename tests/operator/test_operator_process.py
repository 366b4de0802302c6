"""`tailrace operator` as a real process: kubeconfig login, kopf peering, health, clean SIGTERM."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
from pathlib import Path

import httpx
import kmock
import pytest

from tailrace_operator import runner, settings
from tests.operator.conftest import KubernetesAPI
from tests.operator.harness import (
    GROUP_VERSION,
    FakeControlServer,
    eventually,
    eventually_async,
    free_port,
    function_body,
)
from tests.support import processes

PEERINGS = "kopf.dev/v1/clusterkopfpeerings"


def kubeconfig_for(api: KubernetesAPI, folder: Path) -> Path:
    path = folder / "kubeconfig"
    url = str(api.url).rstrip("/")
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": url}}],
                "users": [{"name": "test", "user": {"token": "test"}}],
                "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "test"}}],
                "current-context": "kmock",
            }
        )
    )
    return path


async def declare_peering(k8s: KubernetesAPI) -> None:
    """What the chart installs for leader election: kopf's peering CRD and one object."""
    k8s.resources[PEERINGS] = kmock.ResourceInfo(
        kind="ClusterKopfPeering",
        singular="clusterkopfpeering",
        namespaced=False,
        verbs={"get", "list", "watch", "patch"},
    )
    await k8s.post(
        f"/apis/{PEERINGS}",
        json={
            "apiVersion": "kopf.dev/v1",
            "kind": "ClusterKopfPeering",
            "metadata": {"name": "tailrace"},
        },
    )


def operator_process(
    k8s: KubernetesAPI, control_url: str, folder: Path, name: str
) -> tuple[processes.TailraceProcess, str]:
    """`tailrace operator` logging in through a kubeconfig; returns it and its health address."""
    health_addr = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    env["KUBECONFIG"] = str(kubeconfig_for(k8s, folder))
    args = [
        "operator",
        "--server",
        control_url,
        "--webhook-insecure",
        "--webhook-addr",
        f"127.0.0.1:{free_port()}",
        "--health-addr",
        health_addr,
    ]
    return processes.TailraceProcess(args, folder / f"{name}.log", env=env), health_addr


async def readiness(process: processes.TailraceProcess, health_addr: str) -> int:
    assert process.alive(), process.output()
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"http://{health_addr}/readyz")).status_code
    except httpx.HTTPError:
        return 0


async def test_operator_process_serves_workloads_with_peering_and_stops_on_sigterm(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    await declare_peering(k8s)
    operator, health_addr = operator_process(k8s, control_server.url, tmp_path, "operator")
    operator.start()
    try:

        async def ready() -> bool:
            return await readiness(operator, health_addr) == 200

        await eventually_async(ready, timeout=30)
        await k8s.post(
            f"/apis/{GROUP_VERSION}/namespaces/default/functions", json=function_body("hello")
        )
        await eventually(lambda: control_server.workloads.get("default/functions/hello"))
        # The operator announced itself in the peering object (kopf's leader election).
        peering = k8s.get(PEERINGS, None, "tailrace") or {}
        assert len(peering.get("status") or {}) == 1, peering

        operator.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        code = await asyncio.to_thread(operator.proc.wait, 20)  # type: ignore[union-attr]
        assert code == 0, operator.output()
    finally:
        await asyncio.to_thread(operator.stop)


async def test_two_replicas_elect_one_leader_and_only_it_is_ready(
    k8s: KubernetesAPI, control_server: FakeControlServer, tmp_path: Path
) -> None:
    await declare_peering(k8s)
    replicas = [operator_process(k8s, control_server.url, tmp_path, f"replica-{i}") for i in (1, 2)]
    for process, _ in replicas:
        process.start()
    try:

        async def one_leader() -> list[int]:
            codes = sorted([await readiness(p, addr) for p, addr in replicas])
            peering = k8s.get(PEERINGS, None, "tailrace") or {}
            both_known = len(peering.get("status") or {}) == 2
            return codes if both_known and codes == [200, 503] else []

        # Both replicas registered in the peering object; the lower priority paused itself.
        await eventually_async(one_leader, timeout=40)
        await k8s.post(
            f"/apis/{GROUP_VERSION}/namespaces/default/functions", json=function_body("hello")
        )
        await eventually(lambda: control_server.workloads.get("default/functions/hello"))
        assert sorted([await readiness(p, addr) for p, addr in replicas]) == [200, 503]
    finally:
        for process, _ in replicas:
            await asyncio.to_thread(process.stop)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"webhook_addr": "0.0.0.0:9443"}, "--webhook-cert and --webhook-key"),
        ({"health_addr": "8081"}, "--health-addr: expected HOST:PORT"),
        ({"server": "tailrace:8080"}, "--server must be an http(s):// URL"),
    ],
)
def test_unusable_settings_exit_with_code_2_and_say_why(
    overrides: dict[str, str], message: str, caplog: pytest.LogCaptureFixture
) -> None:
    base = settings.OperatorSettings(server="http://127.0.0.1:1", webhook_addr="")
    config = dataclasses.replace(base, **overrides)
    assert runner.run(config) == 2
    assert message in caplog.text
