"""GET /v1/namespaces/{ns}/pods/{pod}/logs: kubectl-logs semantics over real HTTP."""

from __future__ import annotations

from tests.server.harness import T0, Line, Running


async def test_pod_logs_are_plain_text_by_default(server: Running) -> None:
    await server.push([Line("hello", T0), Line("world", T0 + 1)])
    response = await server.http.get("/v1/namespaces/ns/pods/hello-abc/logs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "hello\nworld\n"


async def test_unknown_pod_is_404_with_json_error(server: Running) -> None:
    response = await server.http.get("/v1/namespaces/ns/pods/nope/logs")
    assert response.status_code == 404
    body = response.json()
    assert body["error_code"] == "not_found"
    assert body["details"] == {"namespace": "ns", "pod": "nope"}
    assert "nope" in body["message"]
