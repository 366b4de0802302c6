"""Error bodies and statuses outside the happy path; health, readiness and metrics."""

from __future__ import annotations

from tests.server.harness import T0, Line, Running

POD_URL = "/v1/namespaces/ns/pods/hello-abc/logs"


async def test_store_down_is_503_and_not_ready(server: Running) -> None:
    await server.push([Line("x", T0)])
    assert server.ctx is not None
    await server.ctx.store.close()
    response = await server.http.get(POD_URL)
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.json()
    assert body["error_code"] == "store_unavailable"
    assert set(body) == {"message", "error_code", "details"}
    ready = await server.http.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["status"] == "unavailable"
    assert (await server.http.get("/healthz")).status_code == 200
    assert (await server.http.get("/metrics")).status_code == 200


async def test_unknown_path_and_wrong_method_answer_json(server: Running) -> None:
    missing = await server.http.get("/v2/whatever")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "not_found"
    wrong = await server.http.post(POD_URL)
    assert wrong.status_code == 405
    assert wrong.json()["error_code"] == "method_not_allowed"


async def test_ready_when_the_store_answers(server: Running) -> None:
    response = await server.http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_metrics_count_requests_by_route_and_code(server: Running) -> None:
    await server.push([Line("one", T0), Line("two", T0 + 1)])
    await server.http.get(POD_URL)
    await server.http.get("/v1/namespaces/ns/functions/nope/logs")
    text = (await server.http.get("/metrics")).text
    sample = server.registry.get_sample_value
    assert (
        sample(
            "tailrace_server_requests_total",
            {"route": "/v1/namespaces/{ns}/pods/{pod}/logs", "code": "200"},
        )
        == 1
    )
    assert (
        sample(
            "tailrace_server_requests_total",
            {"route": "/v1/namespaces/{ns}/{plural}/{name}/logs", "code": "404"},
        )
        == 1
    )
    assert (
        sample(
            "tailrace_server_request_duration_seconds_count",
            {"route": "/v1/namespaces/{ns}/pods/{pod}/logs"},
        )
        == 1
    )
    assert "tailrace_server_store_rows 2.0" in text
    assert "tailrace_server_store_bytes 6.0" in text
    assert "tailrace_server_live_streams_open 0.0" in text
    assert "tailrace_server_ingest" in text  # ingest metrics share the registry


async def test_workloads_listing_is_mounted(server: Running) -> None:
    await server.register()
    response = await server.http.get("/v1/workloads")
    assert response.status_code == 200
    names = [w["name"] for w in response.json()["workloads"]]
    assert names == ["hello"]
