"""Liveness, readiness and Prometheus metrics on the operator's health address."""

from __future__ import annotations

import httpx

from tests.operator.conftest import KubernetesAPI
from tests.operator.harness import (
    GROUP_VERSION,
    FakeControlServer,
    eventually,
    eventually_async,
    function_body,
    operator_settings,
    running_operator,
)


async def test_health_address_serves_probes_and_operator_metrics(
    k8s: KubernetesAPI, control_server: FakeControlServer
) -> None:
    config = operator_settings(control_server.url)
    async with (
        running_operator(k8s, config),
        httpx.AsyncClient(base_url=f"http://{config.health_addr}") as client,
    ):
        await k8s.post(
            f"/apis/{GROUP_VERSION}/namespaces/default/functions", json=function_body("hello")
        )
        await eventually(lambda: control_server.workloads.get("default/functions/hello"))

        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready"}

        async def reconciled() -> str:
            metrics = await client.get("/metrics")
            text = metrics.text
            return text if 'outcome="ok"' in text else ""

        text = await eventually_async(reconciled)
        assert 'tailrace_operator_reconciles_total{kind="Function",outcome="ok"}' in text
        assert 'tailrace_operator_control_requests_total{code="200",method="PUT"}' in text
        assert "tailrace_operator_webhook_duration_seconds_bucket" in text
