"""GET /v1/namespaces/{ns}/{functions|pipelines}/{name}/logs: every parameter and format."""

from __future__ import annotations

import orjson
import pytest

from tailrace.server import formats
from tests.server.harness import T0, Line, Running, Source

URL = "/v1/namespaces/ns/functions/hello/logs"
JSON = {"Accept": "application/json"}


async def _messages(server: Running, **params: str) -> list[str]:
    response = await server.http.get(URL, params=params, headers=JSON)
    assert response.status_code == 200, response.text
    return [r["message"] for r in response.json()["records"]]


@pytest.fixture
async def loaded(server: Running) -> Running:
    spec = {"selector": {"matchLabels": {"app": "hello"}}, "logs": {"minLevel": "DEBUG"}}
    await server.register(spec=spec)
    await server.push(
        [
            Line("GET /orders 200", T0, level="INFO", execution_id="e-1"),
            Line("cache miss on orders", T0 + 1, level="WARN", execution_id="e-1"),
            Line("payment failed", T0 + 2, level="ERROR", stream="stderr", execution_id="e-2"),
            Line("debug detail", T0 + 3_000_000_000, level="DEBUG", execution_id="e-2"),
        ]
    )
    await server.push([Line("sidecar says hi", T0 + 4)], Source(container="proxy"))
    return server


async def test_unknown_workload_is_404_with_json_error(server: Running) -> None:
    response = await server.http.get("/v1/namespaces/ns/functions/nope/logs")
    assert response.status_code == 404
    body = response.json()
    assert body["error_code"] == "not_found"
    assert body["details"] == {"namespace": "ns", "kind": "Function", "name": "nope"}


async def test_unknown_resource_type_is_404(server: Running) -> None:
    response = await server.http.get("/v1/namespaces/ns/deployments/x/logs")
    assert response.status_code == 404
    assert response.json()["details"]["expected"] == ["functions", "pipelines"]


async def test_registered_workload_without_logs_is_an_empty_page(server: Running) -> None:
    await server.register(kind="Pipeline", name="wordcount")
    response = await server.http.get("/v1/namespaces/ns/pipelines/wordcount/logs", headers=JSON)
    assert response.json() == {"records": [], "nextCursor": None}


async def test_all_records_in_time_order_by_default(loaded: Running) -> None:
    assert await _messages(loaded) == [
        "GET /orders 200",
        "cache miss on orders",
        "payment failed",
        "sidecar says hi",
        "debug detail",
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "orders"}, ["GET /orders 200", "cache miss on orders"]),
        ({"level": "warn,error"}, ["cache miss on orders", "payment failed"]),
        ({"stream": "stderr"}, ["payment failed"]),
        ({"executionId": "e-2"}, ["payment failed", "debug detail"]),
        ({"container": "proxy"}, ["sidecar says hi"]),
        ({"order": "desc", "limit": "2"}, ["debug detail", "sidecar says hi"]),
        ({"limit": "1"}, ["GET /orders 200"]),
        ({"tailLines": "2"}, ["sidecar says hi", "debug detail"]),
        (
            {"since": "2023-11-14T22:13:20.000000002Z"},
            ["payment failed", "sidecar says hi", "debug detail"],
        ),
        ({"until": "2023-11-14T22:13:20.000000002Z"}, ["GET /orders 200", "cache miss on orders"]),
        (
            {"since": "2023-11-14T23:13:20.000000001+01:00", "until": "2023-11-14T22:13:21Z"},
            ["cache miss on orders", "payment failed", "sidecar says hi"],
        ),
        ({"since": str(T0 + 3_000_000_000)}, ["debug detail"]),
    ],
)
async def test_filter_parameters(
    loaded: Running, params: dict[str, str], expected: list[str]
) -> None:
    assert await _messages(loaded, **params) == expected


async def test_last_is_a_window_ending_now(server: Running) -> None:
    import time

    await server.register()
    now = time.time_ns()
    await server.push([Line("old", now - 7_200_000_000_000), Line("recent", now - 60_000_000_000)])
    assert await _messages(server, last="5m") == ["recent"]
    assert await _messages(server, last="3h") == ["old", "recent"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "5001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"level": "LOUD"}, "level"),
        ({"level": ","}, "level"),
        ({"stream": "stdin"}, "stream"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2023-13-01T00:00:00Z"}, "since"),
        ({"until": "2023-11-14T22:13:20"}, "until"),
        ({"since": "2023-11-14T22:13:21Z", "until": "2023-11-14T22:13:20Z"}, "until"),
        ({"last": "5 minutes"}, "last"),
        ({"last": "0s"}, "last"),
        ({"last": "5m", "since": "2023-11-14T22:13:20Z"}, "last"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"tailLines": "-1"}, "tailLines"),
        ({"tailLines": "5", "cursor": "x"}, "tailLines"),
        ({"follow": "maybe"}, "follow"),
        ({"follow": "true", "until": "2023-11-14T22:13:20Z"}, "until"),
        ({"follow": "true", "order": "desc"}, "order"),
        ({"q": " "}, "q"),
        ({"q": "x" * 2000}, "q"),
    ],
)
async def test_bad_parameter_is_a_400_naming_it(
    loaded: Running, params: dict[str, str], parameter: str
) -> None:
    response = await loaded.http.get(URL, params=params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error_code"] == "invalid_parameter"
    assert body["details"]["parameter"] == parameter
    assert body["details"]["reason"]
    assert parameter in body["message"]


async def test_formats_by_accept(loaded: Running) -> None:
    text = await loaded.http.get(URL, params={"limit": "2"}, headers={"Accept": "text/plain"})
    assert text.text == "GET /orders 200\ncache miss on orders\n"
    ndjson = await loaded.http.get(
        URL, params={"limit": "2"}, headers={"Accept": "application/x-ndjson"}
    )
    assert [orjson.loads(x)["message"] for x in ndjson.content.splitlines()] == [
        "GET /orders 200",
        "cache miss on orders",
    ]
    sse = await loaded.http.get(URL, params={"limit": "2"}, headers={"Accept": "text/event-stream"})
    assert sse.headers["content-type"].startswith("text/event-stream")
    events = [block for block in sse.text.split("\n\n") if block]
    first = dict(line.split(": ", 1) for line in events[0].splitlines())
    assert first["id"] == orjson.loads(first["data"])["id"]
    assert events[-1].startswith("event: end")
    assert sse.headers["Tailrace-Next-Cursor"]
    weighted = await loaded.http.get(
        URL, headers={"Accept": "text/plain;q=0.5, application/json;q=0.9"}
    )
    assert weighted.headers["content-type"] == "application/json"


async def test_unservable_accept_is_406(loaded: Running) -> None:
    response = await loaded.http.get(URL, headers={"Accept": "image/png"})
    assert response.status_code == 406
    assert response.json()["error_code"] == "not_acceptable"


async def test_time_keeps_nanoseconds_through_since(loaded: Running) -> None:
    page = await loaded.http.get(URL, headers=JSON)
    third = page.json()["records"][2]
    assert third["time"] == formats.format_time(T0 + 2)
    again = await _messages(loaded, since=third["time"], until=formats.format_time(T0 + 3))
    assert again == ["payment failed"]


async def test_pod_records_are_attributed_by_selector_without_agent_workload(
    server: Running,
) -> None:
    from tests.server.harness import pod_object

    await server.register(labels={"app": "hello"})
    put = await server.http.put("/v1/namespaces/ns/pods/node-pod", json=pod_object("node-pod"))
    assert put.json()["workload"] == {"kind": "Function", "name": "hello"}
    await server.push([Line("node mode line", T0)], Source(pod="node-pod", workload=""))
    messages = await _messages(server, stream="stdout")
    assert messages == ["node mode line"]


async def test_namespace_and_global_routes_widen_the_scope(loaded: Running) -> None:
    await loaded.push([Line("elsewhere", T0 + 5)], Source(namespace="other", workload=""))
    namespace = await loaded.http.get("/v1/namespaces/other/logs", headers=JSON)
    assert [r["message"] for r in namespace.json()["records"]] == ["elsewhere"]
    everything = await loaded.http.get("/v1/logs", params={"q": "elsewhere"}, headers=JSON)
    assert [r["namespace"] for r in everything.json()["records"]] == ["other"]
