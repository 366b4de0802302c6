"""PUT /v1/namespaces/{ns}/pods/{pod}/events/{event}: Kubernetes Events as system records."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import ServerFactory
from tests.server.harness import Running, pod_object

EVENTS = "/v1/namespaces/ns/pods/hello-abc/events"
JSON = {"Accept": "application/json"}


def _event(count: int = 1, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "hello-abc.17a", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "name": "hello-abc", "fieldPath": "spec.containers{app}"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container",
        "type": "Warning",
        "count": count,
        "source": {"component": "kubelet"},
        "lastTimestamp": "2023-11-14T22:14:00Z",
        **fields,
    }


async def _system(server: Running) -> list[dict[str, Any]]:
    response = await server.http.get(
        "/v1/namespaces/ns/pods/hello-abc/logs", params={"stream": "system"}, headers=JSON
    )
    return [r for r in response.json()["records"] if r["attrs"].get("component") == "kubelet"]


async def test_event_becomes_a_system_record_once_per_count(server: Running) -> None:
    await server.register()
    await server.http.put("/v1/namespaces/ns/pods/hello-abc", json=pod_object())
    for count in (1, 1, 2, 2):
        response = await server.http.put(f"{EVENTS}/hello-abc.17a", json=_event(count))
        assert response.status_code == 200
        assert response.json() == {}
    records = await _system(server)
    assert [r["attrs"]["count"] for r in records] == [1, 2]
    first = records[0]
    assert first["message"] == "BackOff: Back-off restarting failed container"
    assert first["level"] == "WARN"
    assert first["container"] == "app"
    assert first["time"] == "2023-11-14T22:14:00.000000000Z"
    assert first["workload"] == {"kind": "Function", "name": "hello"}
    assert first["attrs"] == {
        "reason": "BackOff",
        "count": 1,
        "component": "kubelet",
        "event": "hello-abc.17a",
    }


async def test_event_counts_survive_a_restart(make_server: ServerFactory) -> None:
    first = await make_server()
    await first.http.put("/v1/namespaces/ns/pods/hello-abc", json=pod_object())
    await first.http.put(f"{EVENTS}/hello-abc.17a", json=_event(3))
    await first.stop()
    second = await make_server()
    await second.http.put(f"{EVENTS}/hello-abc.17a", json=_event(3))
    assert [r["attrs"]["count"] for r in await _system(second)] == [3]


async def test_event_for_an_unknown_pod_is_accepted_and_ignored(server: Running) -> None:
    response = await server.http.put("/v1/namespaces/ns/pods/ghost/events/ghost.1", json=_event(1))
    assert response.status_code == 200
    assert response.json() == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "Pod"}, "kind"),
        ({"count": 0}, "count"),
        ({"count": "two"}, "count"),
        ({"reason": 5}, "reason"),
    ],
)
async def test_a_body_that_is_not_an_event_is_a_400(
    server: Running, body: dict[str, Any], field: str
) -> None:
    await server.http.put("/v1/namespaces/ns/pods/hello-abc", json=pod_object())
    response = await server.http.put(f"{EVENTS}/e.1", json=_event(**body))
    assert response.status_code == 400
    assert response.json()["details"]["field"] == field
