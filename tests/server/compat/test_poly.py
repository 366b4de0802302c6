"""PolyAPI server-function Logs API, line by line of seeds/001.

Execution logs (`/functions/server/{id}/logs`) hold only what the function printed; system logs
(`/system-logs`) add container-level and operator records. GET filters by keyword, lastHours,
lastDays, limit and executionId (empty strings ignored, invalid values refused with a clear
message) and answers `{logsEnabled, logs: [{timestamp, value, level, executionId}]}`, INFO and up
only, never a line over 16,384 bytes. DELETE removes the stored logs of either kind.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tailrace import records
from tests.server.compat.conftest import (
    OPERATOR,
    READER,
    ServerFactory,
    put_pod,
    rate_limited,
    secured_server,
)
from tests.server.harness import Line, Running, Source, pod_object

HOUR_NS = 3_600 * 1_000_000_000
NOW = time.time_ns()
LOGS = "/functions/server/hello/logs"
SYSTEM = "/functions/server/hello/system-logs"
APP = Source(pod="hello-abc", container="app")
INIT = Source(pod="hello-abc", container="init-db")


async def _get(server: Running, url: str, **params: str) -> dict[str, Any]:
    response = await server.http.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


async def _values(server: Running, url: str = LOGS, **params: str) -> list[str]:
    return [log["value"] for log in (await _get(server, url, **params))["logs"]]


@pytest.fixture
async def function(server: Running) -> Running:
    spec = {"selector": {"matchLabels": {"app": "hello"}}, "logs": {"minLevel": "DEBUG"}}
    assert (await server.register(spec=spec)).status_code == 200
    pod = pod_object(
        conditions=[
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2023-11-14T22:13:01Z"}
        ]
    )
    pod["spec"]["initContainers"] = [{"name": "init-db", "image": "migrate:1"}]
    response = await server.http.put("/v1/namespaces/ns/pods/hello-abc", json=pod)
    assert response.status_code == 200, response.text
    await server.push([Line("migrations applied", NOW - 30 * HOUR_NS)], INIT)
    await server.push(
        [
            Line("two days ago foo", NOW - 49 * HOUR_NS, execution_id="e-0"),
            Line("yesterday foo", NOW - 20 * HOUR_NS, execution_id="e-1"),
            Line("debug detail foo", NOW - 3 * HOUR_NS, level="DEBUG", execution_id="e-2"),
            Line("handled foo", NOW - 2 * HOUR_NS, execution_id="e-2"),
            Line("warned foo", NOW - 90 * 60 * 10**9, level="WARN", execution_id="e-3"),
            Line("failed bar", NOW - HOUR_NS, level="ERROR", stream="stderr", execution_id="e-3"),
            Line("x" * 16_384, NOW - 50 * 60 * 10**9, execution_id="e-3"),
            Line("y" * 16_384 + " (cut)", NOW - 40 * 60 * 10**9, flags=records.FLAG_TRUNCATED),
            Line("z" * 100, NOW - 30 * 60 * 10**9, flags=records.FLAG_SPLIT),
            Line("latest foo", NOW - 60 * 10**9, execution_id="e-4"),
        ],
        APP,
    )
    return server


async def test_execution_logs_answer_poly_shape(function: Running) -> None:
    body = await _get(function, LOGS, limit="1")
    assert body == {
        "logsEnabled": True,
        "logs": [
            {
                "timestamp": body["logs"][0]["timestamp"],
                "value": "latest foo",
                "level": "INFO",
                "executionId": "e-4",
            }
        ],
    }
    stamp = body["logs"][0]["timestamp"]
    assert stamp.endswith("Z")
    assert len(stamp) == len("2024-07-15T18:02:42.530938702Z")


async def test_execution_logs_hold_only_what_the_function_printed_info_and_up(
    function: Running,
) -> None:
    assert await _values(function) == [
        "two days ago foo",
        "yesterday foo",
        "handled foo",
        "warned foo",
        "failed bar",
        "x" * 16_384,  # exactly at the limit: kept
        "latest foo",
    ]


async def test_lines_over_16384_bytes_are_not_returned(function: Running) -> None:
    values = await _values(function, SYSTEM)
    assert not any(v.endswith("(cut)") or v == "z" * 100 for v in values)
    native = await function.http.get(
        "/v1/namespaces/ns/functions/hello/logs", params={"limit": "100"}
    )
    assert "(cut)" in native.text  # the native API still shows what was collected


async def test_system_logs_add_container_level_and_operator_records(function: Running) -> None:
    body = await _get(function, SYSTEM)
    values = [log["value"] for log in body["logs"]]
    assert "migrations applied" in values
    assert "Successfully assigned ns/hello-abc to node-1" in values
    assert set(await _values(function)) < set(values)
    assert all(log["level"] in ("INFO", "WARN", "ERROR", "FATAL") for log in body["logs"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (
            {"keyword": "foo"},
            ["two days ago foo", "yesterday foo", "handled foo", "warned foo", "latest foo"],
        ),
        ({"keyword": "bar"}, ["failed bar"]),
        (
            {"lastHours": "3"},
            ["handled foo", "warned foo", "failed bar", "x" * 16_384, "latest foo"],
        ),
        (
            {"lastDays": "1"},
            [
                "yesterday foo",
                "handled foo",
                "warned foo",
                "failed bar",
                "x" * 16_384,
                "latest foo",
            ],
        ),
        (
            {"lastDays": "1", "lastHours": "2"},
            ["warned foo", "failed bar", "x" * 16_384, "latest foo"],
        ),
        ({"limit": "2"}, ["x" * 16_384, "latest foo"]),
        ({"executionId": "e-3"}, ["warned foo", "failed bar", "x" * 16_384]),
        ({"executionId": "nope"}, []),
        # The document's example: the last 5 logs containing "foo" from the past 24 hours.
        (
            {"keyword": "foo", "lastHours": "24", "limit": "5"},
            ["yesterday foo", "handled foo", "warned foo", "latest foo"],
        ),
        ({"keyword": "foo", "lastHours": "24", "limit": "2"}, ["warned foo", "latest foo"]),
    ],
)
async def test_query_parameters_filter(
    function: Running, params: dict[str, str], expected: list[str]
) -> None:
    assert await _values(function, **params) == expected


@pytest.mark.parametrize("name", ["keyword", "lastHours", "lastDays", "limit", "executionId"])
async def test_empty_strings_are_ignored(function: Running, name: str) -> None:
    assert await _values(function, **{name: ""}) == await _values(function)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("lastHours", "0"),
        ("lastHours", "two"),
        ("lastDays", "-1"),
        ("lastDays", "1.5"),
        ("limit", "0"),
        ("limit", "many"),
        ("limit", "100000"),
    ],
)
async def test_invalid_values_are_400_naming_the_parameter(
    function: Running, name: str, value: str
) -> None:
    for url in (LOGS, SYSTEM):
        response = await function.http.get(url, params={name: value})
        assert response.status_code == 400
        body = response.json()
        assert body["statusCode"] == 400
        assert body["error"] == "Bad Request"
        assert name in body["message"]
        assert "integer" in body["message"]


async def test_function_is_found_by_uid_as_well_as_name(function: Running) -> None:
    by_uid = await _values(function, "/functions/server/uid-hello/logs")
    assert by_uid == await _values(function)


async def test_unknown_function_is_404(server: Running) -> None:
    for method in ("GET", "DELETE"):
        for url in ("/functions/server/123/logs", "/functions/server/123/system-logs"):
            response = await server.http.request(method, url)
            assert response.status_code == 404
            body = response.json()
            assert body["statusCode"] == 404
            assert body["error"] == "Not Found"
            assert "123" in body["message"]


async def test_logs_enabled_false_is_reported_with_no_logs(server: Running) -> None:
    spec = {"selector": {"matchLabels": {"app": "quiet"}}, "logs": {"enabled": False}}
    assert (await server.register(name="quiet", spec=spec)).status_code == 200
    await server.push([Line("not stored", NOW)], Source(pod="quiet-1", workload="Function/quiet"))
    for url in ("/functions/server/quiet/logs", "/functions/server/quiet/system-logs"):
        assert await _get(server, url) == {"logsEnabled": False, "logs": []}


async def test_delete_execution_logs_keeps_system_logs(function: Running) -> None:
    response = await function.http.delete(LOGS)
    assert response.status_code == 204
    assert await _values(function) == []
    system = await _values(function, SYSTEM)
    assert "migrations applied" in system
    assert "Successfully assigned ns/hello-abc to node-1" in system


async def test_delete_system_logs_removes_everything(function: Running) -> None:
    response = await function.http.delete(SYSTEM)
    assert response.status_code == 204
    assert await _values(function, SYSTEM) == []
    assert await _values(function) == []


async def test_new_execution_after_delete_is_listed_again(function: Running) -> None:
    await function.http.delete(SYSTEM)
    await put_pod(function, "hello-xyz", uid="uid-2")
    await function.push([Line("fresh run", NOW, execution_id="e-9")], Source(pod="hello-xyz"))
    assert await _values(function, executionId="e-9") == ["fresh run"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer other"}, 403), (READER, 200)],
)
async def test_auth_is_the_native_apis(
    make_server: ServerFactory, headers: dict[str, str], status: int
) -> None:
    server = await secured_server(make_server)
    assert (await server.register(headers=OPERATOR)).status_code == 200
    response = await server.http.get(LOGS, headers=headers)
    assert response.status_code == status
    if status != 200:
        assert response.json()["statusCode"] == status


async def test_rate_limit_is_429_with_retry_after(make_server: ServerFactory) -> None:
    server = await make_server(limiter=rate_limited())
    await server.register()
    assert (await server.http.get(LOGS)).status_code == 200
    response = await server.http.delete(SYSTEM)
    assert response.status_code == 429
    assert response.headers["retry-after"]
    assert response.json()["error"] == "Too Many Requests"
