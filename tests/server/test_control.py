"""The control API: workloads and pods as Kubernetes JSON, selectors, lifecycle records, events."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.harness import T0, Line, Running, Source, pod_object

WORKLOAD = "/v1/namespaces/ns/functions/hello"
JSON = {"Accept": "application/json"}


def _function(spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "tailrace.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "hello", "namespace": "ns", "uid": "u-1", **metadata},
        "spec": spec,
    }


SELECTOR = {"matchLabels": {"app": "hello"}}


async def test_put_workload_applies_defaults_and_reports_matched_pods(server: Running) -> None:
    await server.http.put("/v1/namespaces/ns/pods/hello-1", json=pod_object("hello-1"))
    await server.http.put(
        "/v1/namespaces/ns/pods/other-1", json=pod_object("other-1", labels={"app": "other"})
    )
    response = await server.http.put(WORKLOAD, json=_function({"selector": SELECTOR}))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "kind": "Function",
        "name": "hello",
        "uid": "u-1",
        "pods": ["hello-1"],
    }
    assert server.ctx is not None
    stored = await server.ctx.store.find_workload("ns", "hello")
    assert stored is not None
    logs = stored.spec["logs"]
    assert logs["maxLineBytes"] == 16384
    assert logs["onOverflow"] == "truncate"
    assert logs["minLevel"] == "INFO"
    assert logs["executionId"] == {
        "jsonField": "executionId",
        "podLabel": "tailrace.dev/execution-id",
    }
    assert stored.spec["collector"] == {"mode": "sidecar"}


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({}, "spec.selector"),
        ({"selector": {}}, "spec.selector"),
        ({"selector": {"matchLabels": {"app": 1}}}, "spec.selector.matchLabels.app"),
        (
            {"selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}},
            "spec.selector.matchExpressions[0].operator",
        ),
        (
            {"selector": {"matchExpressions": [{"key": "app", "operator": "In"}]}},
            "spec.selector.matchExpressions[0].values",
        ),
        (
            {
                "selector": {
                    "matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]
                }
            },
            "spec.selector.matchExpressions[0].values",
        ),
        ({"selector": SELECTOR, "logs": {"maxLineBytes": 100}}, "spec.logs.maxLineBytes"),
        ({"selector": SELECTOR, "logs": {"maxLineBytes": 2_000_000}}, "spec.logs.maxLineBytes"),
        ({"selector": SELECTOR, "logs": {"maxLineBytes": "big"}}, "spec.logs.maxLineBytes"),
        ({"selector": SELECTOR, "logs": {"onOverflow": "explode"}}, "spec.logs.onOverflow"),
        ({"selector": SELECTOR, "logs": {"minLevel": "LOUD"}}, "spec.logs.minLevel"),
        ({"selector": SELECTOR, "logs": {"enabled": "yes"}}, "spec.logs.enabled"),
        (
            {"selector": SELECTOR, "logs": {"retention": {"maxAge": "forever"}}},
            "spec.logs.retention",
        ),
        (
            {"selector": SELECTOR, "logs": {"ringBuffer": {"lines": 0}}},
            "spec.logs.ringBuffer.lines",
        ),
        ({"selector": SELECTOR, "collector": {"mode": "daemon"}}, "spec.collector.mode"),
    ],
)
async def test_bad_workload_spec_is_a_400_naming_the_field(
    server: Running, spec: dict[str, Any], field: str
) -> None:
    response = await server.http.put(WORKLOAD, json=_function(spec))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "invalid_body"
    assert body["details"]["field"] == field


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[1, 2]", "body"),
        (b'{"kind": "Pipeline", "spec": {}}', "kind"),
        (b'{"metadata": {"name": "other"}, "spec": {}}', "metadata.name"),
        (b'{"metadata": {"namespace": "elsewhere"}, "spec": {}}', "metadata.namespace"),
    ],
)
async def test_bad_workload_object_is_a_400(server: Running, body: bytes, field: str) -> None:
    response = await server.http.put(
        WORKLOAD, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["details"]["field"] == field


async def test_match_expressions_select_pods(server: Running) -> None:
    spec = {
        "selector": {
            "matchLabels": {"app": "hello"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        }
    }
    for name, labels in {
        "web": {"app": "hello", "tier": "web"},
        "db": {"app": "hello", "tier": "db"},
        "canary": {"app": "hello", "tier": "api", "canary": "true"},
    }.items():
        await server.http.put(
            f"/v1/namespaces/ns/pods/{name}", json=pod_object(name, labels=labels)
        )
    response = await server.http.put(WORKLOAD, json=_function(spec))
    assert response.json()["pods"] == ["web"]


async def test_pod_lifecycle_becomes_system_records(server: Running) -> None:
    await server.register()
    url = "/v1/namespaces/ns/pods/hello-abc"
    scheduled = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2023-11-14T22:13:01Z"}
    ]
    await server.http.put(url, json=pod_object(phase="Pending", conditions=scheduled))
    running = {
        "name": "app",
        "image": "hello:1",
        "imageID": "sha256:abc",
        "restartCount": 0,
        "state": {"running": {"startedAt": "2023-11-14T22:13:05Z"}},
    }
    await server.http.put(url, json=pod_object(conditions=scheduled, statuses=[running]))
    oom = {
        **running,
        "restartCount": 1,
        "state": {"running": {"startedAt": "2023-11-14T22:14:00Z"}},
        "lastState": {
            "terminated": {
                "exitCode": 137,
                "reason": "OOMKilled",
                "finishedAt": "2023-11-14T22:13:59Z",
                "containerID": "containerd://1",
            }
        },
    }
    await server.http.put(url, json=pod_object(conditions=scheduled, statuses=[oom]))
    done = {
        **oom,
        "state": {
            "terminated": {
                "exitCode": 3,
                "reason": "Error",
                "finishedAt": "2023-11-14T22:15:00Z",
                "containerID": "containerd://2",
            }
        },
    }
    await server.http.put(
        url, json=pod_object(phase="Failed", conditions=scheduled, statuses=[done])
    )
    deleted = await server.http.delete(url)
    assert deleted.status_code == 200
    response = await server.http.get(
        "/v1/namespaces/ns/functions/hello/logs",
        params={"stream": "system", "level": "TRACE,DEBUG,INFO,WARN,ERROR,FATAL"},
        headers=JSON,
    )
    records = response.json()["records"]
    messages = [r["message"] for r in records]
    assert "Successfully assigned ns/hello-abc to node-1" in messages
    assert "Pulled image hello:1" in messages
    assert "Started container app" in messages
    assert "Container app was OOMKilled (exit code 137)" in messages
    assert "Container app restarted (restart count 1)" in messages
    assert "Container app terminated with exit code 3 (Error)" in messages
    assert "Pod hello-abc deleted" in messages
    assert all(r["stream"] == "system" for r in records)
    assert all(r["workload"] == {"kind": "Function", "name": "hello"} for r in records)
    oom_record = next(r for r in records if "OOMKilled" in r["message"])
    assert oom_record["level"] == "ERROR"
    assert oom_record["attrs"]["reason"] == "OOMKilled"
    assert oom_record["time"] == "2023-11-14T22:13:59.000000000Z"


async def test_an_execution_pod_gives_call_pending_running_finished_events(server: Running) -> None:
    await server.register()
    labels = {"app": "hello", "tailrace.dev/execution-id": "run-42"}
    url = "/v1/namespaces/ns/pods/hello-run-42"
    for phase in ("Pending", "Running", "Succeeded"):
        response = await server.http.put(
            url, json=pod_object("hello-run-42", labels=labels, phase=phase)
        )
        assert response.status_code == 200
    response = await server.http.get("/v1/namespaces/ns/functions/hello/events")
    events = response.json()["events"]
    assert [e["event"] for e in events] == ["CALL", "PENDING", "RUNNING", "FINISHED"]
    assert {e["executionId"] for e in events} == {"run-42"}
    failed_labels = {"app": "hello", "tailrace.dev/execution-id": "run-43"}
    await server.http.put(
        "/v1/namespaces/ns/pods/hello-run-43",
        json=pod_object("hello-run-43", uid="u-43", labels=failed_labels, phase="Failed"),
    )
    only = await server.http.get(
        "/v1/namespaces/ns/functions/hello/events", params={"executionId": "run-43"}
    )
    assert [e["event"] for e in only.json()["events"]] == ["CALL", "FAILED"]


async def test_pod_put_needs_a_uid_and_matching_names(server: Running) -> None:
    body = pod_object()
    del body["metadata"]["uid"]
    response = await server.http.put("/v1/namespaces/ns/pods/hello-abc", json=body)
    assert response.status_code == 400
    assert response.json()["details"]["field"] == "metadata.uid"
    wrong = await server.http.put("/v1/namespaces/ns/pods/other", json=pod_object())
    assert wrong.json()["details"]["field"] == "metadata.name"


async def test_deleting_unknown_things_is_404(server: Running) -> None:
    assert (await server.http.delete(WORKLOAD)).status_code == 404
    assert (await server.http.delete("/v1/namespaces/ns/pods/ghost")).status_code == 404


async def test_stats_and_delete_of_a_workload(server: Running) -> None:
    await server.register()
    await server.http.put("/v1/namespaces/ns/pods/hello-abc", json=pod_object())
    await server.push(
        [
            Line("a", T0, execution_id="e-1"),
            Line("b", T0 + 1, level="ERROR", execution_id="e-1"),
            Line("c", T0 + 2, execution_id="e-2", flags=1),
        ]
    )
    await server.push([Line("d", T0 + 3)], Source(container="proxy"))
    stats = (await server.http.get(f"{WORKLOAD}/stats")).json()
    assert stats["total"] == 4
    assert stats["byLevel"] == {"INFO": 3, "ERROR": 1}
    assert stats["byContainer"] == {"app": 3, "proxy": 1}
    assert stats["byExecution"] == {"e-1": 2, "e-2": 1}
    assert stats["truncatedLines"] == 1
    assert stats["lastLogAt"] == "2023-11-14T22:13:20.000000003Z"
    assert stats["pods"] == 1
    assert set(stats) == {
        "total",
        "byLevel",
        "byContainer",
        "byExecution",
        "truncatedLines",
        "droppedLines",
        "splitLines",
        "lastLogAt",
        "pods",
    }
    deleted = await server.http.delete(f"{WORKLOAD}/logs")
    assert deleted.json() == {"deleted": 4}
    after = await server.http.get(f"{WORKLOAD}/logs", headers=JSON)
    assert after.json()["records"] == []


async def test_body_over_the_limit_is_413(make_server: Any) -> None:
    server = await make_server(max_request_bytes=1024)
    body = _function({"selector": SELECTOR, "padding": "x" * 4096})
    response = await server.http.put(WORKLOAD, json=body)
    assert response.status_code == 413
    assert response.json()["error_code"] == "body_too_large"
    assert response.json()["details"] == {"limitBytes": 1024}


async def test_changing_the_selector_releases_pods_it_no_longer_matches(server: Running) -> None:
    await server.http.put("/v1/namespaces/ns/pods/hello-1", json=pod_object("hello-1"))
    first = await server.http.put(WORKLOAD, json=_function({"selector": SELECTOR}))
    assert first.json()["pods"] == ["hello-1"]
    narrowed = {"matchLabels": {"app": "hello", "tier": "web"}}
    second = await server.http.put(WORKLOAD, json=_function({"selector": narrowed}))
    assert second.json()["pods"] == []
    assert server.ctx is not None
    pod = await server.ctx.store.get_pod("ns", "hello-1")
    assert pod is not None
    assert pod.workload is None


async def test_a_deleted_workloads_logs_still_expire_by_its_retention(server: Running) -> None:
    spec = {"selector": {"matchLabels": {"app": "hello"}}, "logs": {"retention": {"maxAge": "1h"}}}
    assert (await server.register(spec=spec)).status_code == 200
    now = T0 + 10 * 3600 * 1_000_000_000
    assert await server.push([Line("old", T0), Line("recent", now - 1_000_000_000)]) == 2
    deleted = await server.http.delete("/v1/namespaces/ns/functions/hello")
    assert deleted.status_code == 200
    # Until retention removes them, the logs a deleted workload left stay readable.
    kept = await server.http.get("/v1/namespaces/ns/functions/hello/logs")
    assert kept.text == "old\nrecent\n"
    assert server.ctx is not None
    assert await server.ctx.store.apply_retention(now) == 1
    left = await server.http.get("/v1/namespaces/ns/pods/hello-abc/logs")
    assert left.text == "recent\n"
    # Registering it again brings it back, with the logs that are still kept.
    assert (await server.register(spec=spec)).status_code == 200
    again = await server.http.get("/v1/namespaces/ns/functions/hello/logs")
    assert again.text == "recent\n"
