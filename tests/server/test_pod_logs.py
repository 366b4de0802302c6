"""GET /v1/namespaces/{ns}/pods/{pod}/logs: kubectl-logs semantics over real HTTP."""

from __future__ import annotations

import orjson

from tailrace import records
from tests.server.harness import T0, Line, Running, Source

JSON = {"Accept": "application/json"}


async def test_pod_logs_are_plain_text_by_default(server: Running) -> None:
    await server.push([Line("hello", T0), Line("world", T0 + 1)])
    response = await server.http.get("/v1/namespaces/ns/pods/hello-abc/logs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "hello\nworld\n"


async def test_pod_without_records_answers_an_empty_page(server: Running) -> None:
    response = await server.http.get("/v1/namespaces/ns/pods/nope/logs", headers=JSON)
    assert response.status_code == 200
    assert response.json() == {"records": [], "nextCursor": None}


async def test_json_record_has_exactly_the_designed_fields(server: Running) -> None:
    await server.push(
        [
            Line(
                "took 5ms",
                T0 + 123_456_789,
                stream="stderr",
                level="WARN",
                execution_id="e-7",
                attrs={"status": 200},
                flags=records.FLAG_TRUNCATED,
            )
        ]
    )
    response = await server.http.get("/v1/namespaces/ns/pods/hello-abc/logs", headers=JSON)
    body = response.json()
    assert body["nextCursor"] is None
    (record,) = body["records"]
    assert set(record) == {
        "id",
        "time",
        "namespace",
        "pod",
        "container",
        "stream",
        "level",
        "message",
        "executionId",
        "workload",
        "truncated",
        "attrs",
    }
    assert record["time"] == "2023-11-14T22:13:20.123456789Z"
    assert record["namespace"] == "ns"
    assert record["pod"] == "hello-abc"
    assert record["container"] == "app"
    assert record["stream"] == "stderr"
    assert record["level"] == "WARN"
    assert record["message"] == "took 5ms"
    assert record["executionId"] == "e-7"
    assert record["workload"] == {"kind": "Function", "name": "hello"}
    assert record["truncated"] is True
    assert record["attrs"] == {"status": 200}
    assert record["id"].isdigit()


async def test_container_parameter_picks_one_container(server: Running) -> None:
    await server.push([Line("from app", T0)], Source(container="app"))
    await server.push([Line("from sidecar", T0 + 1)], Source(container="sidecar"))
    both = await server.http.get("/v1/namespaces/ns/pods/hello-abc/logs")
    assert both.text == "from app\nfrom sidecar\n"
    one = await server.http.get(
        "/v1/namespaces/ns/pods/hello-abc/logs", params={"container": "sidecar"}
    )
    assert one.text == "from sidecar\n"


async def test_previous_reads_the_container_instance_before_the_latest(server: Running) -> None:
    await server.push([Line("first life", T0)], Source(restart=0))
    await server.push([Line("second life", T0 + 10)], Source(restart=1))
    latest = await server.http.get("/v1/namespaces/ns/pods/hello-abc/logs")
    assert latest.text == "first life\nsecond life\n"
    previous = await server.http.get(
        "/v1/namespaces/ns/pods/hello-abc/logs", params={"previous": "true", "container": "app"}
    )
    assert previous.text == "first life\n"


async def test_previous_without_a_restart_is_a_precise_400(server: Running) -> None:
    await server.push([Line("only life", T0)])
    response = await server.http.get(
        "/v1/namespaces/ns/pods/hello-abc/logs", params={"previous": "true"}
    )
    assert response.status_code == 400
    assert response.json()["details"]["parameter"] == "previous"


async def test_tail_lines_returns_the_newest_lines_in_order(server: Running) -> None:
    await server.push([Line(f"line {i}", T0 + i) for i in range(10)])
    response = await server.http.get(
        "/v1/namespaces/ns/pods/hello-abc/logs", params={"tailLines": "3"}
    )
    assert response.text == "line 7\nline 8\nline 9\n"


async def test_ndjson_and_text_carry_the_next_cursor_in_a_header(server: Running) -> None:
    await server.push([Line(f"line {i}", T0 + i) for i in range(5)])
    url = "/v1/namespaces/ns/pods/hello-abc/logs"
    first = await server.http.get(
        url, params={"limit": "2"}, headers={"Accept": "application/x-ndjson"}
    )
    assert first.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in first.content.splitlines()]
    assert [line["message"] for line in lines] == ["line 0", "line 1"]
    cursor = first.headers["Tailrace-Next-Cursor"]
    second = await server.http.get(url, params={"limit": "2", "cursor": cursor})
    assert second.text == "line 2\nline 3\n"
    third = await server.http.get(
        url, params={"limit": "2", "cursor": second.headers["Tailrace-Next-Cursor"]}
    )
    assert third.text == "line 4\n"
    assert "Tailrace-Next-Cursor" not in third.headers


async def test_multiline_messages_stay_one_line_in_text(server: Running) -> None:
    await server.push([Line("Traceback:\n  boom", T0)])
    response = await server.http.get("/v1/namespaces/ns/pods/hello-abc/logs")
    assert response.text == "Traceback:\\n  boom\n"


async def test_container_not_in_a_known_pod_is_a_400_listing_the_choices(server: Running) -> None:
    from tests.server.harness import pod_object

    await server.http.put("/v1/namespaces/ns/pods/hello-abc", json=pod_object())
    response = await server.http.get(
        "/v1/namespaces/ns/pods/hello-abc/logs", params={"container": "nope"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["details"]["parameter"] == "container"
    assert "['app']" in body["details"]["reason"]
